// Local grants on the hub (issue 6 §7): every access-list entry of a user merged into one set of rights, and
// the verifier's pins (RELIABILITY fact 4, A12). Real jose keys and tokens; only the clock is a double.
import { describe, expect, it } from "vitest";
import { SignJWT, exportSPKI, generateKeyPair, type CryptoKey } from "jose";
import { GrantVerifier, isGrant, mergeAccess } from "../../../hub/sync/grants.js";
import type { CloudAccess } from "../../../hub/sync/sync-service.js";
import type { LinkAccess } from "../../../shared/schemas/sync.js";

type Entry = LinkAccess["users"][number];
const e = (user_id: string, role: Entry["role"], device_ids: string[] | null): Entry => ({ user_id, email: `${user_id}@example.com`, role, device_ids });

describe("mergeAccess: one user's access-list entries → what the hub enforces", () => {
  it("a user with no entry has no access", () => {
    expect(mergeAccess([e("ann", "owner", null)], "bob")).toBeNull();
  });

  it("the hub's owner is owner of everything, whatever device shares it also has", () => {
    expect(mergeAccess([e("ann", "viewer", ["lamp"]), e("ann", "owner", null)], "ann")).toEqual({ role: "owner", deviceIds: null, controlIds: null });
  });

  it("a hub share: controller → member on every device; viewer → viewer on every device", () => {
    expect(mergeAccess([e("bob", "controller", null)], "bob")).toEqual({ role: "member", deviceIds: null, controlIds: null });
    expect(mergeAccess([e("bob", "viewer", null)], "bob")).toEqual({ role: "viewer", deviceIds: null, controlIds: null });
  });

  it("controller on one plug and viewer on another (two entries): sees both, controls only the first", () => {
    const list = [e("ann", "owner", null), e("bob", "controller", ["lamp"]), e("bob", "viewer", ["fan", "heater"])];
    expect(mergeAccess(list, "bob")).toEqual({ role: "member", deviceIds: ["fan", "heater", "lamp"], controlIds: ["lamp"] });
  });

  it("the entry order does not matter: the strongest role per device wins", () => {
    const a = [e("bob", "viewer", ["lamp", "fan"]), e("bob", "controller", ["lamp"])];
    expect(mergeAccess(a, "bob")).toEqual({ role: "member", deviceIds: ["fan", "lamp"], controlIds: ["lamp"] });
    expect(mergeAccess([...a].reverse(), "bob")).toEqual(mergeAccess(a, "bob"));
  });

  it("device shares that control every shared device need no per-device list", () => {
    expect(mergeAccess([e("bob", "controller", ["lamp"]), e("bob", "controller", ["fan"])], "bob")).toEqual({ role: "member", deviceIds: ["fan", "lamp"], controlIds: null });
  });

  it("only viewer device shares: a viewer of those devices", () => {
    expect(mergeAccess([e("bob", "viewer", ["lamp"])], "bob")).toEqual({ role: "viewer", deviceIds: ["lamp"], controlIds: null });
  });

  it("a hub viewer with a controller share on one plug sees every device and controls that one", () => {
    expect(mergeAccess([e("bob", "viewer", null), e("bob", "controller", ["lamp"])], "bob")).toEqual({ role: "member", deviceIds: null, controlIds: ["lamp"] });
  });

  it("a hub controller with a viewer device share still controls everything", () => {
    expect(mergeAccess([e("bob", "viewer", ["lamp"]), e("bob", "controller", null)], "bob")).toEqual({ role: "member", deviceIds: null, controlIds: null });
  });

  it("an `owner` device entry never makes a hub owner: it controls that device only", () => {
    expect(mergeAccess([e("bob", "owner", ["lamp"])], "bob")).toEqual({ role: "member", deviceIds: ["lamp"], controlIds: null });
  });
});

describe("GrantVerifier pins key, algorithm, issuer, audience, typ and exp (RELIABILITY fact 4, A12)", () => {
  const HUB = "0b9a3c54-5d2e-4b43-9a51-0f4e1c2d3e4f";
  const ISS = "urn:smartplug:cloud";
  const now = Date.parse("2026-03-01T12:00:00Z");
  const clock = { now: () => now };

  async function setup() {
    const cloud = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const access: CloudAccess = {
      users: [e("ann", "owner", null), e("bob", "controller", ["lamp"]), e("bob", "viewer", ["fan"])],
      publicKeyPem: await exportSPKI(cloud.publicKey),
      issuer: ISS,
      issuedAt: now,
    };
    const state = { access: access as CloudAccess | null };
    const verifier = new GrantVerifier(() => state.access, () => HUB, clock);
    const sign = (o: { key?: CryptoKey; sub?: string; iss?: string; aud?: string; typ?: string; exp?: number | null; iat?: number } = {}) => {
      let j = new SignJWT({ role: "owner" })
        .setProtectedHeader({ alg: "EdDSA", typ: o.typ ?? "smartplug-grant+jwt" })
        .setSubject(o.sub ?? "ann")
        .setIssuer(o.iss ?? ISS)
        .setAudience(o.aud ?? `smartplug-hub:${HUB}`)
        .setIssuedAt(Math.floor((o.iat ?? now - 60_000) / 1000));
      if (o.exp !== null) j = j.setExpirationTime(Math.floor((o.exp ?? now + 8 * 86_400_000) / 1000));
      return j.sign(o.key ?? cloud.privateKey);
    };
    return { state, verifier, sign };
  }

  it("a grant of the cloud for this hub opens it with the merged rights of the access list", async () => {
    const { verifier, sign } = await setup();
    expect(await verifier.verify(await sign())).toEqual({ userId: "cloud:ann", familyId: "grant:ann", role: "owner", deviceIds: null, controlIds: null });
    expect(await verifier.verify(await sign({ sub: "bob" }))).toEqual({ userId: "cloud:bob", familyId: "grant:bob", role: "member", deviceIds: ["fan", "lamp"], controlIds: ["lamp"] });
  });

  it("refuses another key, another issuer, another hub, another typ, no exp, an expired grant", async () => {
    const { verifier, sign } = await setup();
    const other = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const cases: [string, Promise<string>, RegExp][] = [
      ["another key", sign({ key: other.privateKey }), /signature verification failed/],
      ["another issuer", sign({ iss: "urn:evil" }), /unexpected "iss" claim value/],
      ["another hub", sign({ aud: "smartplug-hub:11111111-2222-4333-8444-555555555555" }), /unexpected "aud" claim value/],
      ["the cloud API audience", sign({ aud: "smartplug-cloud-api" }), /unexpected "aud" claim value/],
      ["an access token typ", sign({ typ: "at+jwt" }), /unexpected "typ" JWT header value/],
      ["no exp", sign({ exp: null }), /missing required "exp" claim/],
      ["expired by the hub's clock", sign({ iat: now - 9 * 86_400_000, exp: now - 1000 }), /"exp" claim timestamp check failed/],
    ];
    for (const [what, token, why] of cases) await expect(verifier.verify(await token), what).rejects.toThrow(why);
  });

  it("refuses alg:none", async () => {
    const { verifier } = await setup();
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const token = `${b64({ alg: "none", typ: "smartplug-grant+jwt" })}.${b64({ sub: "ann", iss: ISS, aud: `smartplug-hub:${HUB}`, iat: now / 1000, exp: now / 1000 + 3600 })}.`;
    expect(isGrant(token)).toBe(true);
    await expect(verifier.verify(token)).rejects.toThrow();
  });

  it("the access list is authoritative: a user dropped from it is refused with a valid grant", async () => {
    const { state, verifier, sign } = await setup();
    const grant = await sign({ sub: "bob" });
    await verifier.verify(grant);
    state.access = { ...state.access!, users: state.access!.users.filter((u) => u.user_id !== "bob") };
    await expect(verifier.verify(grant)).rejects.toThrow("this cloud user no longer has access to this hub");
  });

  it("no grant works before the hub has an access list, or with one stored before the cloud sent its issuer", async () => {
    const { state, verifier, sign } = await setup();
    const grant = await sign();
    state.access = { ...state.access!, issuer: null };
    await expect(verifier.verify(grant)).rejects.toThrow(/predates issuer pinning/);
    state.access = null;
    await expect(verifier.verify(grant)).rejects.toThrow("this hub has no cloud access list yet");
  });
});
