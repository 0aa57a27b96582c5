import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SignJWT, importPKCS8, base64url } from "jose";
import { createPublicKey } from "node:crypto";
import { createHmac } from "node:crypto";
import { startTestHub, OWNER, type TestHub } from "../../helpers/hub.js";

let t: TestHub;
beforeEach(async () => {
  t = await startTestHub();
});
afterEach(async () => {
  await t.close();
});

const problemOf = async (res: Response | { json(): Promise<unknown>; headers: Headers; status: number }) => ({
  status: res.status,
  type: res.headers.get("content-type"),
  body: await res.json(),
});

describe("local accounts", () => {
  it("the first registration creates the owner; after that only the owner adds users", async () => {
    const first = await t.api("/auth/register", { body: { email: "Owner@Example.com", password: "longenough1", name: "Ann" }, token: null });
    expect(first.status).toBe(201);
    expect(await first.json()).toEqual({ id: expect.any(String), email: "owner@example.com", name: "Ann", role: "owner", created_at: expect.any(String) });

    const stranger = await t.api("/auth/register", { body: { email: "x@example.com", password: "longenough2" }, token: null });
    expect(stranger.status).toBe(401);
    expect(stranger.headers.get("www-authenticate")).toMatch(/^Bearer/);

    const login = await (await t.api("/auth/login", { body: { email: "owner@example.com", password: "longenough1" }, token: null })).json();
    expect(login).toEqual({ access_token: expect.any(String), token_type: "bearer", expires_in: 900, refresh_token: expect.any(String), refresh_expires_in: 30 * 86400 });
    const member = await t.api("/auth/register", { body: { email: "kid@example.com", password: "longenough3" }, token: login.access_token });
    expect(member.status).toBe(201);
    expect((await member.json()).role).toBe("member");

    const kid = await (await t.api("/auth/login", { body: { email: "kid@example.com", password: "longenough3" }, token: null })).json();
    const byMember = await t.api("/auth/register", { body: { email: "k2@example.com", password: "longenough4" }, token: kid.access_token });
    expect(byMember.status).toBe(403);
    expect((await t.api("/devices", { token: kid.access_token })).status).toBe(200);
    const pairByMember = await t.api("/devices", { body: { device_id: "x1", name: "x", pairing_code: "12345678" }, token: kid.access_token });
    expect(pairByMember.status).toBe(403);
    expect((await t.api("/users/me", { token: kid.access_token })).status).toBe(200);
  });

  it("rotates refresh tokens; a signed-in phone keeps working without internet for the refresh lifetime", async () => {
    await t.owner();
    const a = await (await t.api("/auth/login", { body: OWNER, token: null })).json();
    const b = await (await t.api("/auth/refresh", { body: { refresh_token: a.refresh_token }, token: null })).json();
    expect(b.refresh_token).not.toBe(a.refresh_token);
    expect((await t.api("/users/me", { token: b.access_token })).status).toBe(200);
    const c = await t.api("/auth/refresh", { body: { refresh_token: b.refresh_token }, token: null });
    expect(c.status).toBe(200);
  });

  it("A13: reuse of a rotated refresh token revokes the whole family", async () => {
    await t.owner();
    const a = await (await t.api("/auth/login", { body: OWNER, token: null })).json();
    const b = await (await t.api("/auth/refresh", { body: { refresh_token: a.refresh_token }, token: null })).json();
    const reuse = await t.api("/auth/refresh", { body: { refresh_token: a.refresh_token }, token: null });
    expect(reuse.status).toBe(401);
    // The thief's and the owner's latest tokens are both dead now.
    expect((await t.api("/auth/refresh", { body: { refresh_token: b.refresh_token }, token: null })).status).toBe(401);
    expect((await t.api("/users/me", { token: b.access_token })).status).toBe(401);
  });

  it("logout revokes the sign-in", async () => {
    await t.owner();
    const a = await (await t.api("/auth/login", { body: OWNER, token: null })).json();
    expect((await t.api("/auth/logout", { body: { refresh_token: a.refresh_token }, token: null })).status).toBe(204);
    expect((await t.api("/users/me", { token: a.access_token })).status).toBe(401);
    expect((await t.api("/auth/refresh", { body: { refresh_token: a.refresh_token }, token: null })).status).toBe(401);
  });
});

describe("A12: forged and broken tokens get 401 with WWW-Authenticate, never 500", () => {
  async function hubKey() {
    const pem = (t.hub.db.sqlite.prepare("SELECT value FROM meta WHERE key = 'signing_key'").get() as { value: string }).value;
    const iss = `urn:smartplug:hub:${(t.hub.db.sqlite.prepare("SELECT value FROM meta WHERE key = 'hub_id'").get() as { value: string }).value}`;
    return { key: await importPKCS8(pem, "EdDSA"), pem, iss };
  }
  const base = (iss: string, o: { iss?: string; aud?: string; typ?: string; exp?: number | null; sub?: string } = {}) => {
    const j = new SignJWT({ role: "owner", fam: "f" }).setProtectedHeader({ alg: "EdDSA", typ: o.typ ?? "at+jwt" }).setSubject(o.sub ?? "nobody").setIssuer(o.iss ?? iss).setAudience(o.aud ?? "smartplug-hub-api").setIssuedAt();
    if (o.exp !== null) j.setExpirationTime(o.exp ?? "5m");
    return j;
  };

  it.each([
    ["wrong issuer", { iss: "urn:evil" }],
    ["wrong audience", { aud: "other-api" }],
    ["wrong typ", { typ: "JWT" }],
    ["no exp", { exp: null }],
    ["expired", { exp: Math.floor(Date.now() / 1000) - 60 }],
  ] as const)("%s", async (_name, o) => {
    await t.owner();
    const { key, iss } = await hubKey();
    const userId = (await (await t.api("/users/me")).json()).id as string;
    const token = await base(iss, { ...o, sub: userId }).sign(key);
    const res = await t.api("/devices", { token });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
  });

  it("alg none, HS256 keyed with the public key, garbage, and a refresh token as access token", async () => {
    await t.owner();
    const { pem, iss } = await hubKey();
    const userId = (await (await t.api("/users/me")).json()).id as string;
    const claims = base64url.encode(JSON.stringify({ sub: userId, iss, aud: "smartplug-hub-api", role: "owner", fam: "f", iat: 1, exp: 9999999999 }));
    const none = `${base64url.encode(JSON.stringify({ alg: "none", typ: "at+jwt" }))}.${claims}.`;
    const spki = createPublicKey(pem).export({ type: "spki", format: "pem" }).toString();
    const hsHead = base64url.encode(JSON.stringify({ alg: "HS256", typ: "at+jwt" }));
    const hs = `${hsHead}.${claims}.${createHmac("sha256", spki).update(`${hsHead}.${claims}`).digest("base64url")}`;
    const login = await (await t.api("/auth/login", { body: OWNER, token: null })).json();
    for (const token of [none, hs, "abc.def.ghi", login.refresh_token]) {
      const res = await t.api("/devices", { token });
      expect(res.status, token).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    const malformed = await t.api("/devices", { headers: { authorization: "Basic Zm9vOmJhcg==" }, token: null });
    expect(malformed.status).toBe(401);
  });
});

describe("A14: brute force", () => {
  it("answers unknown user and wrong password identically, then 429 with Retry-After", async () => {
    await t.owner();
    const wrong = await problemOf(await t.api("/auth/login", { body: { email: OWNER.email, password: "wrong-password" }, token: null }));
    const unknown = await problemOf(await t.api("/auth/login", { body: { email: "nobody@example.com", password: "wrong-password" }, token: null }));
    expect(wrong).toEqual(unknown);
    expect(wrong.status).toBe(401);
    let res: Awaited<ReturnType<typeof t.api>> | null = null;
    for (let i = 0; i < 10; i++) {
      res = await t.api("/auth/login", { body: { email: OWNER.email, password: `guess-${i}` }, token: null });
      if (res.status === 429) break;
    }
    expect(res!.status).toBe(429);
    expect(Number(res!.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await res!.json()).toMatchObject({ type: "https://smartplug.dev/problems/too-many-requests", status: 429 });
    // Even the right password is refused while limited, so guessing cannot continue.
    expect((await t.api("/auth/login", { body: OWNER, token: null })).status).toBe(429);
  });
});

describe("A11 and A15: bad request bodies", () => {
  it("A11: unknown fields (owner_id, role, __proto__) are a 400 and change nothing", async () => {
    await t.owner();
    await t.pair("d1");
    for (const extra of [{ owner_id: "x" }, { role: "owner" }, JSON.parse('{"__proto__":{"admin":true}}')]) {
      const res = await t.api("/devices/d1", { method: "PATCH", body: JSON.stringify({ name: "Hacked", ...extra }) });
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
    }
    const reg = await t.api("/auth/register", { body: { email: "m@example.com", password: "longenough", role: "owner" } });
    expect(reg.status).toBe(400);
    expect((await (await t.api("/devices/d1")).json()).name).toBe("Plug d1");
  });

  it("A15: > 100 KB is 413, bad JSON and invalid UTF-8 are 400, a wrong content type is 415; the hub stays responsive", async () => {
    await t.owner();
    const big = await t.api("/devices", { body: JSON.stringify({ device_id: "x", name: "y".repeat(110_000), pairing_code: "12345678" }) });
    expect(big.status).toBe(413);
    expect((await big.json()).type).toBe("https://smartplug.dev/problems/payload-too-large");
    const bad = await t.api("/devices", { body: "{not json" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ type: "https://smartplug.dev/problems/bad-json", title: "Body is not valid JSON", status: 400, detail: "the body is not valid JSON", instance: "/devices" });
    const deep = await t.api("/devices", { body: "[".repeat(5000) + "]".repeat(5000) });
    expect(deep.status).toBe(400);
    const utf8 = await fetch(`${t.url}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.from([0x7b, 0x22, 0x65, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) });
    expect(utf8.status).toBe(400);
    const form = await t.api("/devices", { body: "device_id=x", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(form.status).toBe(415);
    expect((await t.api("/health", { token: null })).status).toBe(200);
  });

  it("unknown routes and invalid ids are problem+json 404s like a missing device", async () => {
    await t.owner();
    const a = await t.api("/devices/%23%2B");
    const b = await t.api("/devices/nope");
    expect(a.status).toBe(404);
    expect(b.status).toBe(404);
    expect((await a.json()).title).toBe((await b.json()).title);
    expect((await t.api("/nothing-here")).status).toBe(404);
  });
});
