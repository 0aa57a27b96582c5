// Hubs, claiming (A17), devices, sharing and the BOLA matrix (A10–A11), on both metadata backends.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInflux, type TestInflux } from "../../helpers/influx.js";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";
import { SERVICE_START_MS, hubAuth, startTestCloud, type Backend, type TestCloud, type TestUser } from "../../helpers/cloud.js";

let influx: TestInflux;
let postgres: TestPostgres;
beforeAll(async () => {
  [influx, postgres] = await Promise.all([startInflux(), startPostgres()]);
}, SERVICE_START_MS);
afterAll(async () => {
  await Promise.all([influx?.close(), postgres?.close()]);
});

const HUB = { hub_id: expect.stringMatching(/^[0-9a-f-]{36}$/), name: expect.any(String), role: "owner", link: "disconnected", last_seen: expect.any(String), device_count: 0, time_zone: "UTC", created_at: expect.any(String), claimed_at: expect.any(String) };

describe.each<Backend>(["pglite", "postgres"])("hubs and devices on %s", (backend) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres });
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  it("a hub registers itself, its owner claims it; list, rename, remove", async () => {
    const ann = await t.user("ann");
    const reg = await t.api("/hubs/register", { body: { name: "Home", mqtt_host: "pi.local", mqtt_port: 1883 } });
    expect(reg.status).toBe(201);
    const cred = await reg.json();
    expect(cred).toEqual({ hub_id: expect.stringMatching(/^[0-9a-f-]{36}$/), hub_secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), claim_code: expect.stringMatching(/^[0-9A-Z]{5}-[0-9A-Z]{5}$/), claim_expires_at: expect.any(String) });
    expect(Date.parse(cred.claim_expires_at) - Date.now()).toBeGreaterThan(9 * 60_000);
    expect((await t.api("/hubs", { token: ann.token }).then((r) => r.json())) as unknown[]).toEqual([]);

    const claim = await t.api("/hubs/claim", { body: { claim_code: cred.claim_code.toLowerCase().replace("-", " ") }, token: ann.token });
    expect(claim.status).toBe(200);
    expect(await claim.json()).toEqual({ ...HUB, hub_id: cred.hub_id, name: "Home" });
    expect(await (await t.api("/hubs", { token: ann.token })).json()).toEqual([{ ...HUB, hub_id: cred.hub_id, name: "Home" }]);

    const renamed = await t.api(`/hubs/${cred.hub_id}`, { method: "PATCH", body: { name: "Cottage" }, token: ann.token });
    expect((await renamed.json()).name).toBe("Cottage");
    await t.device(ann, cred.hub_id, "plug-1");
    expect((await (await t.api(`/hubs/${cred.hub_id}`, { token: ann.token })).json()).device_count).toBe(1);

    // The hub's own credential works for hub routes; removing the hub revokes it along with its devices.
    const fresh = await t.api("/hub/claim-code", { method: "POST", headers: hubAuth(cred) });
    expect(fresh.status).toBe(200);
    expect(await fresh.json()).toEqual({ claim_code: expect.stringMatching(/^[0-9A-Z]{5}-[0-9A-Z]{5}$/), claim_expires_at: expect.any(String) });
    expect((await t.api("/hub/claim-code", { method: "POST", headers: hubAuth({ ...cred, hub_secret: "x".repeat(43) }) })).status).toBe(401);
    expect((await t.api(`/hubs/${cred.hub_id}`, { method: "DELETE", token: ann.token })).status).toBe(204);
    expect(await (await t.api("/hubs", { token: ann.token })).json()).toEqual([]);
    expect(await (await t.api("/devices", { token: ann.token })).json()).toEqual([]);
    expect((await t.api("/hub/claim-code", { method: "POST", headers: hubAuth(cred) })).status).toBe(401);
  });

  it("pairs a device on one of your hubs and answers with what to type into the plug", async () => {
    const bo = await t.user("bo");
    const hub = await t.hub(bo);
    const res = await t.api("/devices", { body: { hub_id: hub.hub_id, device_id: "kitchen-1", name: "Kettle", pairing_code: "s3cret-code" }, token: bo.token });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe("/devices/kitchen-1");
    expect(await res.json()).toEqual({
      device_id: "kitchen-1",
      name: "Kettle",
      family: "native",
      channel: 0,
      status: "offline",
      relay_state: null,
      firmware_version: null,
      last_seen: null,
      power: null,
      energy_kwh: 0,
      created_at: expect.any(String),
      mqtt: { host: "hub.local", port: 1883, client_id: "kitchen-1", username: "kitchen-1", password: "s3cret-code", topic: "smartplug/kitchen-1" },
    });
    const again = await t.api("/devices", { body: { hub_id: hub.hub_id, device_id: "kitchen-1", name: "Kettle", pairing_code: "s3cret-code" }, token: bo.token });
    expect(again.status).toBe(409);
    const dev = { device_id: "kitchen-1", name: "Kettle", family: "native", channel: 0, status: "offline", relay_state: null, firmware_version: null, last_seen: null, power: null, energy_kwh: 0, created_at: expect.any(String) };
    expect(await (await t.api("/devices/kitchen-1", { token: bo.token })).json()).toEqual(dev);
    expect(await (await t.api("/devices", { token: bo.token })).json()).toEqual([dev]);
    const renamed = await t.api("/devices/kitchen-1", { method: "PATCH", body: { name: "Toaster" }, token: bo.token });
    expect(await renamed.json()).toEqual({ ...dev, name: "Toaster" });

    // The same hub-local id on a second hub: the plain id is ambiguous, the qualified one is not.
    const hub2 = await t.hub(bo);
    await t.device(bo, hub2.hub_id, "kitchen-1");
    const amb = await t.api("/devices/kitchen-1", { token: bo.token });
    expect(amb.status).toBe(409);
    expect((await amb.json()).candidates.sort()).toEqual([`${hub.hub_id}~kitchen-1`, `${hub2.hub_id}~kitchen-1`].sort());
    expect((await (await t.api(`/devices/${hub2.hub_id}~kitchen-1`, { token: bo.token })).json()).name).toBe("Plug kitchen-1");
    expect((await t.api(`/devices/${hub2.hub_id}~kitchen-1`, { method: "DELETE", token: bo.token })).status).toBe(204);
    expect((await t.api("/devices/kitchen-1", { token: bo.token })).status).toBe(200);
    expect((await t.api("/devices/kitchen-1", { method: "DELETE", token: bo.token })).status).toBe(204);
    expect((await t.api("/devices/kitchen-1", { token: bo.token })).status).toBe(404);
  });

  it("issue 6 §5: the seed's body without hub_id pairs on the user's only hub; with several hubs (or none) it is a 400 naming hub_id", async () => {
    const cy = await t.user("cy-seed");
    const seed = { device_id: "seed-1", name: "Seed plug", pairing_code: "seed-code-1" };
    const none = await t.api("/devices", { body: seed, token: cy.token });
    expect(none.status).toBe(400);
    expect(await none.json()).toEqual({
      type: "https://smartplug.dev/problems/validation",
      title: "Request is invalid",
      status: 400,
      detail: "you own no hub to pair this device on: claim your hub first (POST /hubs/claim)",
      instance: "/devices",
      errors: [{ path: "hub_id", message: "you own no hub" }],
    });
    const hub = await t.hub(cy);
    const res = await t.api("/devices", { body: seed, token: cy.token });
    expect(res.status).toBe(201);
    expect((await res.json()).mqtt).toEqual({ host: "hub.local", port: 1883, client_id: "seed-1", username: "seed-1", password: "seed-code-1", topic: "smartplug/seed-1" });
    expect((await (await t.api(`/devices/${hub.hub_id}~seed-1`, { token: cy.token })).json()).name).toBe("Seed plug");
    const hub2 = await t.hub(cy);
    const several = await t.api("/devices", { body: { ...seed, device_id: "seed-2" }, token: cy.token });
    expect(several.status).toBe(400);
    const problem = await several.json();
    expect(problem).toEqual({
      type: "https://smartplug.dev/problems/validation",
      title: "Request is invalid",
      status: 400,
      detail: "you own several hubs: say which one in hub_id",
      instance: "/devices",
      errors: [{ path: "hub_id", message: "required when you own more than one hub" }],
      hub_ids: expect.any(Array),
    });
    expect([...problem.hub_ids].sort()).toEqual([hub.hub_id, hub2.hub_id].sort());
    expect((await t.api("/devices", { body: { ...seed, device_id: "seed-2", hub_id: hub2.hub_id }, token: cy.token })).status).toBe(201);
  });

  it("shares a device and a whole hub as viewer or controller, and revokes", async () => {
    const [own, friend] = [await t.user("own"), await t.user("friend")];
    const hub = await t.hub(own);
    await t.device(own, hub.hub_id, "lamp");
    await t.device(own, hub.hub_id, "fan");
    const share = await t.api("/devices/lamp/shares", { body: { email: "Friend@example.com", role: "viewer" }, token: own.token });
    expect(share.status).toBe(201);
    expect(await share.json()).toEqual({ user_id: friend.id, email: "friend@example.com", name: "friend", role: "viewer", created_at: expect.any(String) });
    expect((await (await t.api("/devices", { token: friend.token })).json()).map((d: { device_id: string }) => d.device_id)).toEqual(["lamp"]);
    expect((await t.api("/devices/fan", { token: friend.token })).status).toBe(404);
    expect((await t.api("/devices/lamp/command", { body: { command: "relay_on" }, token: friend.token })).status).toBe(403);

    const hubShare = await t.api(`/hubs/${hub.hub_id}/shares`, { body: { email: friend.email, role: "controller" }, token: own.token });
    expect(hubShare.status).toBe(201);
    expect((await (await t.api("/devices", { token: friend.token })).json()).map((d: { device_id: string }) => d.device_id).sort()).toEqual(["fan", "lamp"]);
    expect((await t.api("/devices/lamp/command", { body: { command: "relay_on" }, token: friend.token })).status).toBe(202);
    expect(await (await t.api("/hubs", { token: friend.token })).json()).toEqual([{ ...HUB, hub_id: hub.hub_id, role: "controller", device_count: 2 }]);
    expect(await (await t.api(`/hubs/${hub.hub_id}/shares`, { token: own.token })).json()).toEqual([{ user_id: friend.id, email: friend.email, name: "friend", role: "controller", created_at: expect.any(String) }]);
    expect((await t.api(`/hubs/${hub.hub_id}/shares`, { token: friend.token })).status).toBe(403);

    expect((await t.api(`/hubs/${hub.hub_id}/shares/${friend.id}`, { method: "DELETE", token: own.token })).status).toBe(204);
    expect((await t.api(`/devices/lamp/shares/${friend.id}`, { method: "DELETE", token: own.token })).status).toBe(204);
    expect(await (await t.api("/devices", { token: friend.token })).json()).toEqual([]);
    expect((await t.api(`/devices/lamp/shares/${friend.id}`, { method: "DELETE", token: own.token })).status).toBe(404);
    expect((await t.api("/devices/lamp/shares", { body: { email: "nobody@example.com", role: "viewer" }, token: own.token })).status).toBe(404);
  });

  it("issue 5 §9: writes one audit row (action, actor, target, detail, address) for each kind of change", async () => {
    const { auditLogs, commands, refreshTokens } = await import("../../../cloud/db/schema.js");
    const { and, desc, eq, gt, isNotNull } = await import("drizzle-orm");
    const friend = await t.user("audit-friend");
    const last = (await t.cloud.db.orm.select({ id: auditLogs.id }).from(auditLogs).orderBy(desc(auditLogs.id)).limit(1))[0]?.id ?? 0;
    const ok = async (res: ReturnType<typeof t.api>, status: number) => {
      const r = await res;
      expect(r.status, `${r.url} ${await r.clone().text()}`).toBe(status);
      return r;
    };

    const au = await t.user("audit-owner");
    await ok(t.api("/users/me", { method: "PATCH", body: { name: "Auditor" }, token: au.token }), 200);
    const second = await (await ok(t.api("/auth/login", { body: { email: au.email, password: au.password } }), 200)).json();
    await ok(t.api("/auth/logout", { body: { refresh_token: second.refresh_token } }), 204);
    const revoked = await t.cloud.db.orm.selectDistinct({ familyId: refreshTokens.familyId }).from(refreshTokens).where(and(eq(refreshTokens.userId, au.id), isNotNull(refreshTokens.revokedAt)));
    expect(revoked).toHaveLength(1);
    await ok(t.api("/users/me/password", { body: { current_password: au.password, new_password: "audited-new-password" }, token: au.token }), 204);

    const cred = await (await ok(t.api("/hubs/register", { body: { name: "Audited", mqtt_host: "hub.local", mqtt_port: 1883 } }), 201)).json();
    const code = await (await ok(t.api("/hub/claim-code", { method: "POST", headers: hubAuth(cred) }), 200)).json();
    const hubId: string = cred.hub_id;
    await ok(t.api("/hubs/claim", { body: { claim_code: code.claim_code }, token: au.token }), 200);
    await ok(t.api(`/hubs/${hubId}`, { method: "PATCH", body: { name: "Audited home" }, token: au.token }), 200);
    await ok(t.api(`/hubs/${hubId}/tariff`, { method: "PUT", body: { type: "flat", currency: "EUR", price_per_kwh: 0.3 }, token: au.token }), 200);
    await ok(t.api(`/hubs/${hubId}/shares`, { body: { email: friend.email, role: "controller" }, token: au.token }), 201);
    await ok(t.api(`/hubs/${hubId}/shares/${friend.id}`, { method: "DELETE", token: au.token }), 204);
    const grant = await (await ok(t.api(`/hubs/${hubId}/local-grant`, { method: "POST", token: au.token }), 200)).json();
    const jti = JSON.parse(Buffer.from(grant.grant.split(".")[1], "base64url").toString()).jti as string;

    await t.device(au, hubId, "audited");
    const devicePk = (await t.cloud.devices.deviceKey(hubId, "audited"))!;
    await ok(t.api("/devices/audited", { method: "PATCH", body: { name: "Renamed" }, token: au.token }), 200);
    await ok(t.api("/devices/audited/shares", { body: { email: friend.email, role: "viewer" }, token: au.token }), 201);
    await ok(t.api(`/devices/audited/shares/${friend.id}`, { method: "DELETE", token: au.token }), 204);
    await ok(t.api("/devices/audited/command", { body: { command: "relay_off", command_id: "audit-cmd-1" }, token: au.token }), 202);
    const [command] = await t.cloud.db.orm.select({ id: commands.id }).from(commands).where(eq(commands.commandId, "audit-cmd-1"));
    await ok(t.api("/devices/audited", { method: "DELETE", token: au.token }), 204);
    await ok(t.api(`/hubs/${hubId}`, { method: "DELETE", token: au.token }), 204);

    const rows = await t.cloud.db.orm.select().from(auditLogs).where(gt(auditLogs.id, last)).orderBy(auditLogs.id);
    const row = (action: string, targetType: string, targetId: string, detail: unknown = null, actor: { user?: string | null; hub?: string | null } = {}) => ({
      id: expect.any(Number),
      at: expect.any(Date),
      actorUserId: actor.user === undefined ? au.id : actor.user,
      actorHubId: actor.hub ?? null,
      action,
      targetType,
      targetId,
      detail,
      ip: "127.0.0.1",
    });
    expect(rows).toEqual([
      row("user.register", "user", au.id),
      row("user.update", "user", au.id, { fields: ["name"] }),
      row("session.revoke", "session", revoked[0]!.familyId, { why: "logout" }),
      row("user.password", "user", au.id),
      row("hub.register", "hub", hubId, null, { user: null, hub: hubId }),
      row("hub.claim_code", "hub", hubId, null, { user: null, hub: hubId }),
      row("hub.claim", "hub", hubId),
      row("hub.rename", "hub", hubId),
      row("hub.tariff", "hub", hubId),
      row("hub.share", "share", hubId, { user_id: friend.id, role: "controller" }),
      row("hub.unshare", "share", hubId, { user_id: friend.id }),
      row("hub.local_grant", "hub", hubId, { jti, role: "owner", device_ids: null, expires_at: grant.expires_at }),
      row("device.create", "device", devicePk, { hub_id: hubId, device_id: "audited" }),
      row("device.rename", "device", devicePk),
      row("device.share", "share", devicePk, { user_id: friend.id, role: "viewer" }),
      row("device.unshare", "share", devicePk, { user_id: friend.id }),
      row("command.submit", "command", command!.id, { device: devicePk, command: "relay_off", command_id: "audit-cmd-1" }),
      // The removal also carries the tombstone's version while issue 6's config sync is in progress.
      row("device.remove", "device", devicePk, expect.objectContaining({ hub_id: hubId, device_id: "audited" })),
      row("hub.remove", "hub", hubId),
    ]);
  });
});

describe.each<Backend>(["pglite", "postgres"])("A17: claim codes on %s", (backend) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres, env: { CLOUD_CLAIM_CODE_TTL_S: "60" } });
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });
  const register = async () => (await t.api("/hubs/register", { body: { mqtt_host: "hub.local", mqtt_port: 1883 } })).json();

  it("A17: a claim code carries at least 40 bits and is unpredictable", async () => {
    const codes = new Set<string>();
    for (let i = 0; i < 5; i++) codes.add((await register()).claim_code);
    expect(codes.size).toBe(5);
    // 10 symbols of a 32-letter alphabet = 50 bits.
    for (const c of codes) expect(c.replace("-", "")).toMatch(/^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{10}$/);
  });

  it("A17: reusing a consumed code is 410; claiming an owned hub is 409", async () => {
    const [a, b] = [await t.user("claim-a"), await t.user("claim-b")];
    const cred = await register();
    expect((await t.api("/hubs/claim", { body: { claim_code: cred.claim_code }, token: a.token })).status).toBe(200);
    const reuse = await t.api("/hubs/claim", { body: { claim_code: cred.claim_code }, token: b.token });
    expect(reuse.status).toBe(410);
    expect(await reuse.json()).toEqual({ type: "https://smartplug.dev/problems/gone", title: "Gone", status: 410, detail: "this claim code was already used", instance: "/hubs/claim" });
    // The hub shows a fresh code while owned: it cannot be used to take the hub over.
    const fresh = await (await t.api("/hub/claim-code", { method: "POST", headers: hubAuth(cred) })).json();
    const owned = await t.api("/hubs/claim", { body: { claim_code: fresh.claim_code }, token: b.token });
    expect(owned.status).toBe(409);
    expect(await owned.json()).toEqual({ type: "https://smartplug.dev/problems/conflict", title: "Conflict", status: 409, detail: "this hub already has an owner; the owner must remove it first", instance: "/hubs/claim" });
    expect(await (await t.api("/hubs", { token: b.token })).json()).toEqual([]);
  });

  it("A17: an expired code is 410", async () => {
    const u = await t.user("claim-late");
    const cred = await register();
    const { hubs } = await import("../../../cloud/db/schema.js");
    const { eq } = await import("drizzle-orm");
    await t.cloud.db.orm.update(hubs).set({ claimExpiresAt: new Date(Date.now() - 1000) }).where(eq(hubs.id, cred.hub_id));
    const res = await t.api("/hubs/claim", { body: { claim_code: cred.claim_code }, token: u.token });
    expect(res.status).toBe(410);
    expect((await res.json()).detail).toBe("this claim code has expired; ask the hub for a new one");
  });

  it("A17: guessing codes is 429 with Retry-After after a few failures, even for a right code", async () => {
    const guesser = await t.user("guesser");
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await t.api("/hubs/claim", { body: { claim_code: `ZZZZZ-${String(i).padStart(5, "0")}` }, token: guesser.token })).status);
    // The earlier tests in this block spent part of this address's budget; guesses fail then get limited.
    expect(statuses.filter((s) => s === 404).length).toBeGreaterThan(0);
    expect(statuses.at(-1)).toBe(429);
    const cred = await register();
    const limited = await t.api("/hubs/claim", { body: { claim_code: cred.claim_code }, token: guesser.token });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
  });
});

/** Every route that takes an id, and what each role gets (A10: strangers get the missing-device answer). */
const ROUTES: { name: string; method: string; path: (id: string) => string; body?: unknown; owner: number; controller: number; viewer: number }[] = [
  { name: "GET /devices/{id}", method: "GET", path: (id) => `/devices/${id}`, owner: 200, controller: 200, viewer: 200 },
  { name: "PATCH /devices/{id}", method: "PATCH", path: (id) => `/devices/${id}`, body: { name: "Pwned" }, owner: 200, controller: 403, viewer: 403 },
  { name: "POST /devices/{id}/command", method: "POST", path: (id) => `/devices/${id}/command`, body: { command: "relay_toggle" }, owner: 202, controller: 202, viewer: 403 },
  { name: "GET /devices/{id}/telemetry", method: "GET", path: (id) => `/devices/${id}/telemetry?interval=1h`, owner: 200, controller: 200, viewer: 200 },
  { name: "GET /devices/{id}/telemetry/latest", method: "GET", path: (id) => `/devices/${id}/telemetry/latest`, owner: 200, controller: 200, viewer: 200 },
  { name: "GET /devices/{id}/energy", method: "GET", path: (id) => `/devices/${id}/energy?period=week`, owner: 200, controller: 200, viewer: 200 },
  { name: "GET /devices/{id}/shares", method: "GET", path: (id) => `/devices/${id}/shares`, owner: 200, controller: 403, viewer: 403 },
  { name: "POST /devices/{id}/shares", method: "POST", path: (id) => `/devices/${id}/shares`, body: { email: "third@example.com", role: "viewer" }, owner: 201, controller: 403, viewer: 403 },
  { name: "DELETE /devices/{id}/shares/{userId}", method: "DELETE", path: (id) => `/devices/${id}/shares/00000000-0000-0000-0000-000000000000`, owner: 404, controller: 403, viewer: 403 },
  { name: "DELETE /devices/{id}", method: "DELETE", path: (id) => `/devices/${id}`, owner: 204, controller: 403, viewer: 403 },
  // Schedules (issue 6 §5): owners and controllers write, viewers read. `/schedules/{sid}` names the fixture's schedule.
  { name: "GET /devices/{id}/schedules", method: "GET", path: (id) => `/devices/${id}/schedules`, owner: 200, controller: 200, viewer: 200 },
  { name: "POST /devices/{id}/schedules", method: "POST", path: (id) => `/devices/${id}/schedules`, body: { type: "weekly", days: [1], at: "07:00", action: "on" }, owner: 201, controller: 201, viewer: 403 },
  { name: "GET /schedules/{sid}", method: "GET", path: (id) => `/schedules/${scheduleOf.get(id) ?? id}`, owner: 200, controller: 200, viewer: 200 },
  { name: "PATCH /schedules/{sid}", method: "PATCH", path: (id) => `/schedules/${scheduleOf.get(id) ?? id}`, body: { name: "Pwned" }, owner: 200, controller: 200, viewer: 403 },
  // The controller deletes it; the owner, coming last, finds it gone.
  { name: "DELETE /schedules/{sid}", method: "DELETE", path: (id) => `/schedules/${scheduleOf.get(id) ?? id}`, owner: 404, controller: 204, viewer: 403 },
];
/** The schedule each fixture device has (device id → schedule id). */
const scheduleOf = new Map<string, string>();
const HUB_ROUTES: { name: string; method: string; path: (id: string) => string; body?: unknown; owner: number; controller: number; viewer: number }[] = [
  { name: "GET /hubs/{id}", method: "GET", path: (id) => `/hubs/${id}`, owner: 200, controller: 200, viewer: 200 },
  { name: "PATCH /hubs/{id}", method: "PATCH", path: (id) => `/hubs/${id}`, body: { name: "Mine" }, owner: 200, controller: 403, viewer: 403 },
  { name: "PUT /hubs/{id}/tariff", method: "PUT", path: (id) => `/hubs/${id}/tariff`, body: { type: "flat", currency: "EUR", price_per_kwh: 0.3 }, owner: 200, controller: 403, viewer: 403 },
  { name: "GET /hubs/{id}/tariff", method: "GET", path: (id) => `/hubs/${id}/tariff`, owner: 200, controller: 200, viewer: 200 },
  { name: "GET /hubs/{id}/shares", method: "GET", path: (id) => `/hubs/${id}/shares`, owner: 200, controller: 403, viewer: 403 },
  { name: "POST /hubs/{id}/shares", method: "POST", path: (id) => `/hubs/${id}/shares`, body: { email: "third@example.com", role: "controller" }, owner: 201, controller: 403, viewer: 403 },
  { name: "DELETE /hubs/{id}/shares/{userId}", method: "DELETE", path: (id) => `/hubs/${id}/shares/00000000-0000-0000-0000-000000000000`, owner: 404, controller: 403, viewer: 403 },
  { name: "POST /hubs/{id}/local-grant", method: "POST", path: (id) => `/hubs/${id}/local-grant`, owner: 200, controller: 200, viewer: 200 },
  { name: "DELETE /hubs/{id}", method: "DELETE", path: (id) => `/hubs/${id}`, owner: 204, controller: 403, viewer: 403 },
];

describe.each<Backend>(["pglite", "postgres"])("A10/A11: BOLA matrix on %s", (backend) => {
  let t: TestCloud;
  let owner: TestUser, controller: TestUser, viewer: TestUser, stranger: TestUser;
  let n = 0;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres });
    [owner, controller, viewer, stranger] = [await t.user("owner"), await t.user("controller"), await t.user("viewer"), await t.user("stranger")];
    await t.user("third");
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  /** A fresh device per case, shared per `via` (a device share or a whole-hub share), with a latest reading. */
  async function fixture(via: "device" | "hub") {
    const hub = await t.hub(owner);
    const id = `bola-${++n}`;
    await t.device(owner, hub.hub_id, id);
    await t.cloud.devices.setLatest(hub.hub_id, { device_id: id, ts: Date.now(), power: 5, voltage: 230, current: 0.02, energy_wh: 1, relay_state: false });
    const share = async (u: TestUser, role: string) => {
      const path = via === "device" ? `/devices/${id}/shares` : `/hubs/${hub.hub_id}/shares`;
      const r = await t.api(path, { body: { email: u.email, role }, token: owner.token });
      if (r.status !== 201) throw new Error(`share failed ${r.status}`);
    };
    await share(controller, "controller");
    await share(viewer, "viewer");
    await t.api(`/hubs/${hub.hub_id}/tariff`, { method: "PUT", body: { type: "flat", currency: "EUR", price_per_kwh: 0.25 }, token: owner.token });
    const sched = await t.api(`/devices/${id}/schedules`, { body: { type: "window", from: "18:00", to: "23:00" }, token: owner.token });
    if (sched.status !== 201) throw new Error(`schedule failed ${sched.status}`);
    scheduleOf.set(id, (await sched.json()).id as string);
    return { id, hubId: hub.hub_id };
  }

  /** Non-destructive routes share one fixture per kind of share; DELETE routes get their own. */
  const shared = new Map<string, Promise<{ id: string; hubId: string }>>();
  const fixtureFor = (r: (typeof ROUTES)[number], via: "device" | "hub") => {
    if (r.method === "DELETE" && !r.name.includes("/shares/")) return fixture(via);
    let f = shared.get(via);
    if (!f) shared.set(via, (f = fixture(via)));
    return f;
  };

  const call = (r: (typeof ROUTES)[number], id: string, u: TestUser) => t.api(r.path(id), { method: r.method, body: r.body, token: u.token });

  for (const via of ["device", "hub"] as const) {
    for (const r of ROUTES) {
      it(`A10: ${r.name}: owner ${r.owner}, controller ${r.controller}, viewer ${r.viewer} (shared per ${via}); a stranger gets the missing-device 404`, async () => {
        // One device per case: the stranger first, then the roles in rising order, so the owner's DELETE comes last.
        const { id } = await fixtureFor(r, via);
        const missing = `missing-${n}`;
        const theirs = await call(r, id, stranger);
        const none = await call(r, missing, stranger);
        expect(theirs.status).toBe(404);
        const norm = (b: Record<string, unknown>, ...xs: string[]) => JSON.parse(xs.reduce((j, x) => j.split(x).join("ID"), JSON.stringify(b)));
        expect(norm(await theirs.json(), scheduleOf.get(id) ?? id, id)).toEqual(norm(await none.json(), missing));
        // Nothing changed for the owner.
        const before = await (await t.api(`/devices/${id}`, { token: owner.token })).json();
        expect((await call(r, id, stranger)).status).toBe(404);
        expect(await (await t.api(`/devices/${id}`, { token: owner.token })).json()).toEqual(before);
        for (const [u, want] of [[viewer, r.viewer], [controller, r.controller], [owner, r.owner]] as const) {
          expect((await call(r, id, u)).status, `${u.email} ${r.name}`).toBe(want);
        }
      });
    }
  }

  for (const r of HUB_ROUTES) {
    it(`A10: ${r.name}: owner ${r.owner}, controller ${r.controller}, viewer ${r.viewer}; a stranger gets the missing-hub 404`, async () => {
      const { hubId } = await fixtureFor(r, "hub");
      const missing = "00000000-0000-4000-8000-000000000000";
      const theirs = await call(r, hubId, stranger);
      const none = await call(r, missing, stranger);
      expect(theirs.status).toBe(404);
      const norm = (b: Record<string, unknown>, x: string) => JSON.parse(JSON.stringify(b).split(x).join("ID"));
      expect(norm(await theirs.json(), hubId)).toEqual(norm(await none.json(), missing));
      for (const [u, want] of [[viewer, r.viewer], [controller, r.controller], [owner, r.owner]] as const) {
        expect((await call(r, hubId, u)).status, `${u.email} ${r.name}`).toBe(want);
      }
    });
  }

  it("A10: a stranger cannot pair a device on someone else's hub (404 like a missing hub)", async () => {
    const { hubId } = await fixture("hub");
    const res = await t.api("/devices", { body: { hub_id: hubId, device_id: "sneaky", name: "x", pairing_code: "12345678" }, token: stranger.token });
    expect(res.status).toBe(404);
    const viaViewer = await t.api("/devices", { body: { hub_id: hubId, device_id: "sneaky", name: "x", pairing_code: "12345678" }, token: viewer.token });
    expect(viaViewer.status).toBe(403);
  });

  it("A10: a stranger sending a bad body still gets 404, not 400 (ownership is checked first)", async () => {
    const { id } = await fixture("device");
    expect((await t.api(`/devices/${id}`, { method: "PATCH", body: { name: "" }, token: stranger.token })).status).toBe(404);
    expect((await t.api(`/devices/${id}/command`, { body: { command: "explode" }, token: stranger.token })).status).toBe(404);
  });

  it("A11: writes with unknown fields (owner_id, role, __proto__) are 400 and change nothing", async () => {
    const { id, hubId } = await fixture("device");
    for (const extra of [{ owner_id: stranger.id }, { role: "owner" }, JSON.parse('{"__proto__":{"admin":true}}'), { hub_id: hubId }]) {
      const res = await t.api(`/devices/${id}`, { method: "PATCH", body: JSON.stringify({ name: "Hacked", ...extra }), token: owner.token });
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      const hubRes = await t.api(`/hubs/${hubId}`, { method: "PATCH", body: JSON.stringify({ name: "Hacked", ...extra }), token: owner.token });
      expect(hubRes.status).toBe(400);
    }
    const share = await t.api(`/devices/${id}/shares`, { body: { email: stranger.email, role: "owner" }, token: owner.token });
    expect(share.status).toBe(400);
    expect((await (await t.api(`/devices/${id}`, { token: owner.token })).json()).name).toBe(`Plug ${id}`);
    expect((await t.api(`/devices/${id}`, { token: stranger.token })).status).toBe(404);
  });
});
