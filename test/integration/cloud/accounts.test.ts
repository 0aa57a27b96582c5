// Cloud accounts against both metadata backends (embedded PGlite and a real PostgreSQL 15), with a real InfluxDB.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, importPKCS8, base64url } from "jose";
import { createHmac, createPublicKey, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startInflux, type TestInflux } from "../../helpers/influx.js";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";
import { SERVICE_START_MS, startTestCloud, type Backend, type TestCloud } from "../../helpers/cloud.js";
import { KEY_FILE, CLOUD_AUDIENCE } from "../../../cloud/auth/token-service.js";

let influx: TestInflux;
let postgres: TestPostgres;
beforeAll(async () => {
  [influx, postgres] = await Promise.all([startInflux(), startPostgres()]);
}, SERVICE_START_MS);
afterAll(async () => {
  await Promise.all([influx?.close(), postgres?.close()]);
});

const problemOf = async (res: { json(): Promise<unknown>; headers: Headers; status: number }) => ({
  status: res.status,
  type: res.headers.get("content-type"),
  body: await res.json(),
});

describe.each<Backend>(["pglite", "postgres"])("accounts on %s", (backend) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres });
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  it("register and login answer the seed's shapes exactly", async () => {
    const reg = await t.api("/auth/register", { body: { email: "Ann@Example.com", password: "longenough1", name: "Ann" } });
    expect(reg.status).toBe(201);
    const user = await reg.json();
    expect(user).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), email: "ann@example.com", name: "Ann", role: "member", created_at: expect.any(String) });
    const login = await t.api("/auth/login", { body: { email: "ann@example.com", password: "longenough1" } });
    expect(login.status).toBe(200);
    expect(await login.json()).toEqual({ access_token: expect.any(String), token_type: "bearer", expires_in: 900, refresh_token: expect.any(String), refresh_expires_in: 30 * 86400 });
    const dup = await t.api("/auth/register", { body: { email: "ann@example.com", password: "longenough2" } });
    expect(dup.status).toBe(409);
    expect(await dup.json()).toEqual({ type: "https://smartplug.dev/problems/conflict", title: "Conflict", status: 409, detail: "a user with this email exists", instance: "/auth/register" });
  });

  it("GET/PATCH /users/me and a password change that revokes the other sign-ins", async () => {
    const u = await t.user("bob");
    const me = await t.api("/users/me", { token: u.token });
    expect(await me.json()).toEqual({ id: u.id, email: "bob@example.com", name: "bob", role: "member", created_at: expect.any(String) });
    const patched = await t.api("/users/me", { method: "PATCH", body: { name: "Robert" }, token: u.token });
    expect(patched.status).toBe(200);
    expect((await patched.json()).name).toBe("Robert");
    expect((await t.api("/users/me", { method: "PATCH", body: { name: "x", email: "evil@example.com" }, token: u.token })).status).toBe(400);

    const other = await (await t.api("/auth/login", { body: { email: u.email, password: u.password } })).json();
    const wrong = await t.api("/users/me/password", { body: { current_password: "nope-nope", new_password: "brand-new-password" }, token: u.token });
    expect(wrong.status).toBe(401);
    const ok = await t.api("/users/me/password", { body: { current_password: u.password, new_password: "brand-new-password" }, token: u.token });
    expect(ok.status).toBe(204);
    expect((await t.api("/users/me", { token: u.token })).status).toBe(200);
    expect((await t.api("/users/me", { token: other.access_token })).status).toBe(401);
    expect((await t.api("/auth/refresh", { body: { refresh_token: other.refresh_token } })).status).toBe(401);
    expect((await t.api("/auth/login", { body: { email: u.email, password: u.password } })).status).toBe(401);
    expect((await t.api("/auth/login", { body: { email: u.email, password: "brand-new-password" } })).status).toBe(200);
  });

  it("rotates refresh tokens", async () => {
    const u = await t.user("carol");
    const b = await (await t.api("/auth/refresh", { body: { refresh_token: u.refresh } })).json();
    expect(b).toEqual({ access_token: expect.any(String), token_type: "bearer", expires_in: 900, refresh_token: expect.any(String), refresh_expires_in: 30 * 86400 });
    expect(b.refresh_token).not.toBe(u.refresh);
    expect((await t.api("/users/me", { token: b.access_token })).status).toBe(200);
    expect((await t.api("/auth/refresh", { body: { refresh_token: b.refresh_token } })).status).toBe(200);
  });

  it("A13: reuse of a rotated refresh token is 401 and revokes the whole family", async () => {
    const u = await t.user("dave");
    const b = await (await t.api("/auth/refresh", { body: { refresh_token: u.refresh } })).json();
    const reuse = await t.api("/auth/refresh", { body: { refresh_token: u.refresh } });
    expect(reuse.status).toBe(401);
    expect(reuse.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await t.api("/auth/refresh", { body: { refresh_token: b.refresh_token } })).status).toBe(401);
    expect((await t.api("/users/me", { token: b.access_token })).status).toBe(401);
    expect((await t.api("/users/me", { token: u.token })).status).toBe(401);
  });

  it("A13: two concurrent refreshes of one token rotate it once", async () => {
    const u = await t.user("erin");
    const [a, b] = await Promise.all([t.api("/auth/refresh", { body: { refresh_token: u.refresh } }), t.api("/auth/refresh", { body: { refresh_token: u.refresh } })]);
    expect([a.status, b.status].sort()).toEqual([200, 401]);
  });

  it("logout revokes the sign-in", async () => {
    const u = await t.user("frank");
    expect((await t.api("/auth/logout", { body: { refresh_token: u.refresh } })).status).toBe(204);
    expect((await t.api("/users/me", { token: u.token })).status).toBe(401);
    expect((await t.api("/auth/refresh", { body: { refresh_token: u.refresh } })).status).toBe(401);
  });

  describe("A12: forged and broken tokens get 401 with WWW-Authenticate, never 500", () => {
    const key = async () => importPKCS8(readFileSync(join(t.dataDir, KEY_FILE), "utf8"), "EdDSA");
    const base = (o: { iss?: string; aud?: string; typ?: string; exp?: number | null; sub: string; fam?: string | null }) => {
      const j = new SignJWT(o.fam === null ? {} : { fam: o.fam ?? "00000000-0000-0000-0000-000000000000" })
        .setProtectedHeader({ alg: "EdDSA", typ: o.typ ?? "at+jwt" })
        .setSubject(o.sub)
        .setIssuer(o.iss ?? "urn:smartplug:cloud")
        .setAudience(o.aud ?? CLOUD_AUDIENCE)
        .setIssuedAt();
      if (o.exp !== null) j.setExpirationTime(o.exp ?? "5m");
      return j;
    };

    it("a token signed by the cloud's key with the right claims works (control)", async () => {
      const u = await t.user("gina");
      const token = await base({ sub: u.id }).sign(await key());
      expect((await t.api("/users/me", { token })).status).toBe(200);
    });

    it.each([
      ["wrong issuer", { iss: "urn:evil" }],
      ["wrong audience", { aud: "smartplug-hub-api" }],
      ["wrong typ", { typ: "JWT" }],
      ["no exp", { exp: null }],
      ["expired", { exp: Math.floor(Date.now() / 1000) - 60 }],
      ["no family claim", { fam: null }],
    ] as const)("%s", async (_name, o) => {
      const u = await t.user(`a12-${_name.replace(/\s/g, "-")}`);
      const token = await base({ ...o, sub: u.id }).sign(await key());
      const res = await t.api("/devices", { token });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(await res.json()).toEqual({
        type: "https://smartplug.dev/problems/unauthorized",
        title: "Authentication required",
        status: 401,
        detail: "access token is invalid or expired",
        instance: "/devices",
      });
    });

    it("alg none, HS256 keyed with the public key, a foreign Ed25519 key, an RSA key, garbage, and a refresh token as access token", async () => {
      const u = await t.user("hank");
      const pem = readFileSync(join(t.dataDir, KEY_FILE), "utf8");
      const claims = base64url.encode(JSON.stringify({ sub: u.id, iss: "urn:smartplug:cloud", aud: CLOUD_AUDIENCE, fam: "f", iat: 1, exp: 9999999999 }));
      const none = `${base64url.encode(JSON.stringify({ alg: "none", typ: "at+jwt" }))}.${claims}.`;
      const spki = createPublicKey(pem).export({ type: "spki", format: "pem" }).toString();
      const hsHead = base64url.encode(JSON.stringify({ alg: "HS256", typ: "at+jwt" }));
      const hs = `${hsHead}.${claims}.${createHmac("sha256", spki).update(`${hsHead}.${claims}`).digest("base64url")}`;
      const foreign = await base({ sub: u.id }).sign(generateKeyPairSync("ed25519").privateKey);
      const rsa = await new SignJWT({ fam: "f" })
        .setProtectedHeader({ alg: "RS256", typ: "at+jwt" })
        .setSubject(u.id)
        .setIssuer("urn:smartplug:cloud")
        .setAudience(CLOUD_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey);
      for (const token of [none, hs, foreign, rsa, "abc.def.ghi", u.refresh]) {
        const res = await t.api("/devices", { token });
        expect(res.status, token).toBe(401);
        expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      }
      expect((await t.api("/devices", { headers: { authorization: "Basic Zm9vOmJhcg==" } })).status).toBe(401);
      expect((await t.api("/devices")).status).toBe(401);
    });
  });

  it("A11: unknown fields are a 400 and change nothing", async () => {
    const reg = await t.api("/auth/register", { body: { email: "mallory@example.com", password: "longenough", role: "owner" } });
    expect(reg.status).toBe(400);
    const proto = await t.api("/auth/register", { body: '{"email":"m2@example.com","password":"longenough","__proto__":{"admin":true}}' });
    expect(proto.status).toBe(400);
    expect((await t.api("/auth/login", { body: { email: "mallory@example.com", password: "longenough" } })).status).toBe(401);
  });

  it("A15: > 100 KB is 413, bad JSON and invalid UTF-8 are 400, a wrong content type is 415", async () => {
    const big = await t.api("/auth/register", { body: JSON.stringify({ email: "big@example.com", password: "y".repeat(110_000) }) });
    expect(big.status).toBe(413);
    const bad = await t.api("/auth/login", { body: "{not json" });
    expect(await bad.json()).toEqual({ type: "https://smartplug.dev/problems/bad-json", title: "Body is not valid JSON", status: 400, detail: "the body is not valid JSON", instance: "/auth/login" });
    const utf8 = await fetch(`${t.url}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.from([0x7b, 0x22, 0x65, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) });
    expect(utf8.status).toBe(400);
    const form = await t.api("/auth/login", { body: "email=x", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(form.status).toBe(415);
  });
});

describe.each<Backend>(["pglite", "postgres"])("A14: brute force on %s", (backend) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres });
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  it("answers unknown user and wrong password identically, then 429 with Retry-After, even for the right password", async () => {
    const u = await t.user("victim");
    const wrong = await problemOf(await t.api("/auth/login", { body: { email: u.email, password: "wrong-password" } }));
    const unknown = await problemOf(await t.api("/auth/login", { body: { email: "nobody@example.com", password: "wrong-password" } }));
    expect(wrong).toEqual(unknown);
    expect(wrong).toEqual({
      status: 401,
      type: "application/problem+json; charset=utf-8",
      body: { type: "https://smartplug.dev/problems/unauthorized", title: "Authentication required", status: 401, detail: "email or password is wrong", instance: "/auth/login" },
    });
    let res: Awaited<ReturnType<typeof t.api>> | null = null;
    for (let i = 0; i < 10; i++) {
      res = await t.api("/auth/login", { body: { email: `stuffed-${i}@example.com`, password: `guess-${i}` } });
      if (res.status === 429) break;
    }
    expect(res!.status).toBe(429);
    expect(Number(res!.headers.get("retry-after"))).toBe(60);
    expect(await res!.json()).toEqual({ type: "https://smartplug.dev/problems/too-many-requests", title: "Too many requests", status: 429, detail: "too many failed sign-ins; try again later", retry_after: 60, instance: "/auth/login" });
    expect((await t.api("/auth/login", { body: { email: u.email, password: u.password } })).status).toBe(429);
  });
});
