// GET /hub/link (issue 6) and remote control through it: the hub is a real ws client speaking the frames of
// shared/schemas/sync.ts; commands go through the real POST /devices/{id}/command; the clock is injected so
// expiry is tested without waiting (STYLE.md §7).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import { startInflux, type TestInflux } from "../../helpers/influx.js";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";
import { SERVICE_START_MS, startTestCloud, type Backend, type TestCloud, type TestUser } from "../../helpers/cloud.js";
import { openLink, openLive, type Frame } from "../../helpers/link-client.js";
import { eventually } from "../../helpers/mqtt.js";
import { commands, deviceTombstones, devices } from "../../../cloud/db/schema.js";
import { verifySecret } from "../../../cloud/auth/secrets.js";

let influx: TestInflux;
let postgres: TestPostgres;
beforeAll(async () => {
  [influx, postgres] = await Promise.all([startInflux(), startPostgres()]);
}, SERVICE_START_MS);
afterAll(async () => {
  await Promise.all([influx?.close(), postgres?.close()]);
});

const isCommand = (f: Frame) => f.type === "command";
const isAccess = (f: Frame) => f.type === "access";

describe.each<Backend>(["pglite", "postgres"])("hub link on %s", (backend) => {
  let t: TestCloud;
  let offset = 0;
  let ann: TestUser, bob: TestUser;
  let hub: { hub_id: string; hub_secret: string };
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres, options: { clock: { now: () => Date.now() + offset } } });
    [ann, bob] = [await t.user("ann"), await t.user("bob")];
    hub = await t.hub(ann);
    for (const id of ["lamp", "fan", "heater"]) await t.device(ann, hub.hub_id, id);
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  it("refuses an upgrade without or with a wrong hub credential with 401 problem+json, never 500", async () => {
    for (const cred of [null, { ...hub, hub_secret: "y".repeat(43) }, { hub_id: "not-a-uuid", hub_secret: "z" }]) {
      const err = (await openLink(t.url, cred).then(
        () => null,
        (e: unknown) => e,
      )) as { status: number; body: string; headers: Record<string, string> } | null;
      expect(err?.status).toBe(401);
      expect(err!.headers["content-type"]).toBe("application/problem+json");
      expect(JSON.parse(err!.body)).toMatchObject({ type: "https://smartplug.dev/problems/unauthorized", status: 401, instance: "/hub/link" });
    }
    // A user's bearer token is not a hub credential either.
    await expect(openLink(t.url, null, { authorization: `Bearer ${ann.token}` })).rejects.toMatchObject({ status: 401 });
  });

  it("sends the access list on connect; shows the link in /health and GET /hubs; a new link replaces the old", async () => {
    const link = await openLink(t.url, hub);
    try {
      const access = await link.next(isAccess);
      expect(access).toEqual({
        type: "access",
        users: [{ user_id: ann.id, email: ann.email, role: "owner", device_ids: null }],
        public_key_pem: t.cloud.tokens.publicKeyPem,
        issuer: "urn:smartplug:cloud",
        issued_at: expect.any(Number),
      });
      expect(access.public_key_pem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
      expect((await (await t.api("/health")).json()).components.link).toEqual({
        status: "healthy",
        connected_hubs: 1,
        hubs: { connected: 1, disconnected: 0, disconnected_over_24h: 0, unclaimed_connected: 0 },
      });
      expect((await (await t.api(`/hubs/${hub.hub_id}`, { token: ann.token })).json()).link).toBe("connected");

      const second = await openLink(t.url, hub);
      expect(await link.closed).toEqual({ code: 4000, reason: "replaced by a newer link" });
      await second.next(isAccess);
      expect((await (await t.api("/health")).json()).components.link.connected_hubs).toBe(1);
      second.ws.close();
      await second.closed;
    } finally {
      link.ws.terminate();
    }
  });

  it("issue 6 §8: /health counts claimed hubs by link state (connected, disconnected, not seen for 24 h) and connected unclaimed hubs; GET /hubs has each hub's state", async () => {
    const states = async () => (await (await t.api("/health")).json()).components.link;
    const fresh = (await (await t.api("/hubs/register", { body: { mqtt_host: "hub.local", mqtt_port: 1883 } })).json()) as { hub_id: string; hub_secret: string };
    const link = await openLink(t.url, hub);
    const unclaimed = await openLink(t.url, fresh);
    try {
      await link.next(isAccess);
      expect(await states()).toEqual({ status: "healthy", connected_hubs: 2, hubs: { connected: 1, disconnected: 0, disconnected_over_24h: 0, unclaimed_connected: 1 } });
    } finally {
      link.ws.close();
      unclaimed.ws.close();
      await Promise.all([link.closed, unclaimed.closed]);
    }
    const gone = await eventually(states, (l) => l.connected_hubs === 0, "links closed");
    expect(gone).toEqual({ status: "healthy", connected_hubs: 0, hubs: { connected: 0, disconnected: 1, disconnected_over_24h: 0, unclaimed_connected: 0 } });
    expect((await (await t.api(`/hubs/${hub.hub_id}`, { token: ann.token })).json()).link).toBe("disconnected");
    offset = 25 * 3_600_000; // a day later (the cloud's clock), not back
    try {
      expect((await states()).hubs).toEqual({ connected: 0, disconnected: 0, disconnected_over_24h: 1, unclaimed_connected: 0 });
    } finally {
      offset = 0;
    }
  });

  it("the access list is sent again after a share change (device share, then hub share, then unshare)", async () => {
    const link = await openLink(t.url, hub);
    try {
      await link.next(isAccess);
      expect((await t.api("/devices/lamp/shares", { body: { email: bob.email, role: "viewer" }, token: ann.token })).status).toBe(201);
      expect((await link.next((f) => isAccess(f) && (f.users as unknown[]).length === 2)).users).toEqual([
        { user_id: ann.id, email: ann.email, role: "owner", device_ids: null },
        { user_id: bob.id, email: bob.email, role: "viewer", device_ids: ["lamp"] },
      ]);
      expect((await t.api(`/hubs/${hub.hub_id}/shares`, { body: { email: bob.email, role: "controller" }, token: ann.token })).status).toBe(201);
      expect((await link.next((f) => isAccess(f) && (f.users as unknown[]).length === 3)).users).toEqual([
        { user_id: ann.id, email: ann.email, role: "owner", device_ids: null },
        { user_id: bob.id, email: bob.email, role: "controller", device_ids: null },
        { user_id: bob.id, email: bob.email, role: "viewer", device_ids: ["lamp"] },
      ]);
      expect((await t.api(`/hubs/${hub.hub_id}/shares/${bob.id}`, { method: "DELETE", token: ann.token })).status).toBe(204);
      expect((await t.api(`/devices/lamp/shares/${bob.id}`, { method: "DELETE", token: ann.token })).status).toBe(204);
      expect((await link.next((f) => isAccess(f) && (f.users as unknown[]).length === 1)).users).toEqual([{ user_id: ann.id, email: ann.email, role: "owner", device_ids: null }]);
    } finally {
      link.ws.terminate();
    }
  });

  it("a command offered while connected arrives as a LinkCommand; the hub's confirmed result answers 200 with relay_state", async () => {
    const link = await openLink(t.url, hub);
    try {
      await link.next(isAccess);
      const live = await openLive(t.url, ann.token, ["lamp"]);
      const pending = t.api("/devices/lamp/command", { body: { command: "relay_on", command_id: "cmd-live-0001" }, token: ann.token });
      const cmd = await link.next(isCommand);
      expect(cmd).toEqual({ type: "command", id: expect.stringMatching(/^[0-9a-f-]{36}$/), device_id: "lamp", command: "relay_on", expires_at: expect.any(String) });
      const at = Date.now();
      link.send({ type: "command_result", id: cmd.id, status: "confirmed", relay_state: true, reason: null, at });
      const res = await pending;
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ command_id: "cmd-live-0001", device_id: "lamp", command: "relay_on", status: "confirmed", relay_state: true, timestamp: new Date(at).toISOString(), expires_at: cmd.expires_at });
      expect(await live.next((f) => f.type === "command_result" && f.status === "confirmed")).toEqual({
        type: "command_result",
        command_id: "cmd-live-0001",
        device_id: "lamp",
        command: "relay_on",
        status: "confirmed",
        relay_state: true,
        timestamp: new Date(at).toISOString(),
      });
      live.ws.close();
      // The same command_id never runs twice: the stored answer, and nothing sent to the hub.
      const again = await t.api("/devices/lamp/command", { body: { command: "relay_on", command_id: "cmd-live-0001" }, token: ann.token });
      expect(again.status).toBe(200);
      expect((await again.json()).status).toBe("confirmed");
      expect(link.frames.filter(isCommand)).toHaveLength(1);
    } finally {
      link.ws.terminate();
    }
  });

  it("the hub's other statuses answer with distinct HTTP statuses", async () => {
    const link = await openLink(t.url, hub);
    try {
      await link.next(isAccess);
      const want = { offline: 409, timeout: 504, failed: 502, rejected: 422, expired: 410 } as const;
      for (const [status, http] of Object.entries(want)) {
        const pending = t.api("/devices/fan/command", { body: { command: "relay_toggle" }, token: ann.token });
        const cmd = await link.next(isCommand);
        link.send({ type: "command_result", id: cmd.id, status, relay_state: null, reason: "as the test says", at: Date.now() });
        const res = await pending;
        expect([status, res.status]).toEqual([status, http]);
        expect((await res.json()).status).toBe(status);
      }
    } finally {
      link.ws.terminate();
    }
  });

  it("hub offline: 202 queued with its expiry; delivered on reconnect; the result updates the command row", async () => {
    const res = await t.api("/devices/heater/command", { body: { command: "relay_off", command_id: "cmd-queued-0001" }, token: ann.token });
    expect(res.status).toBe(202);
    const body = await res.json();
    expect(body).toEqual({ command_id: "cmd-queued-0001", device_id: "heater", command: "relay_off", status: "queued", relay_state: null, timestamp: expect.any(String), expires_at: expect.any(String) });
    expect(Date.parse(body.expires_at) - Date.parse(body.timestamp)).toBe(300_000);

    const link = await openLink(t.url, hub);
    try {
      const cmd = await link.next(isCommand);
      expect(cmd).toEqual({ type: "command", id: expect.any(String), device_id: "heater", command: "relay_off", expires_at: body.expires_at });
      // Frames on connect: access, then commands.
      expect(link.frames.findIndex(isAccess)).toBeLessThan(link.frames.findIndex(isCommand));
      const live = await openLive(t.url, ann.token, ["heater"]);
      link.send({ type: "command_result", id: cmd.id, status: "confirmed", relay_state: false, reason: null, at: Date.now() });
      await live.next((f) => f.type === "command_result" && f.status === "confirmed");
      live.ws.close();
      const [row] = await t.cloud.db.orm.select().from(commands).where(eq(commands.id, String(cmd.id)));
      expect(row).toMatchObject({ status: "confirmed", relayOn: false, completedAt: expect.any(Date) });
      const again = await t.api("/devices/heater/command", { body: { command: "relay_off", command_id: "cmd-queued-0001" }, token: ann.token });
      expect([again.status, (await again.json()).status]).toEqual([200, "confirmed"]);
    } finally {
      link.ws.terminate();
    }
  });

  it("F13: a command that expired while the hub was away is not delivered and reads `expired`", async () => {
    const res = await t.api("/devices/heater/command", { body: { command: "relay_on", command_id: "cmd-expire-0001" }, token: ann.token });
    expect((await res.json()).status).toBe("queued");
    const fresh = await t.api("/devices/fan/command", { body: { command: "relay_on", command_id: "cmd-fresh-0001" }, token: ann.token });
    expect(fresh.status).toBe(202);
    const [freshRow] = await t.cloud.db.orm.select().from(commands).where(eq(commands.commandId, "cmd-fresh-0001"));
    await t.cloud.db.orm.update(commands).set({ expiresAt: new Date(Date.now() + 3_600_000) }).where(eq(commands.id, freshRow!.id));
    offset = 10 * 60_000; // past the 300 s TTL of the first, not of the second
    try {
      const link = await openLink(t.url, hub);
      try {
        const cmd = await link.next(isCommand);
        expect(cmd.id).toBe(freshRow!.id);
        const [row] = await t.cloud.db.orm.select().from(commands).where(eq(commands.commandId, "cmd-expire-0001"));
        expect(row!.status).toBe("expired");
        expect(link.frames.filter(isCommand)).toHaveLength(1);
        const again = await t.api("/devices/heater/command", { body: { command: "relay_on", command_id: "cmd-expire-0001" }, token: ann.token });
        expect([again.status, (await again.json()).status]).toEqual([410, "expired"]);
        link.send({ type: "command_result", id: cmd.id, status: "confirmed", relay_state: true, reason: null, at: Date.now() });
      } finally {
        link.ws.terminate();
      }
    } finally {
      offset = 0;
    }
  });

  it("LinkState makes GET /devices/{id}, /telemetry/latest and /ws live; bad frames are counted and the link stays up", async () => {
    const link = await openLink(t.url, hub);
    try {
      await link.next(isAccess);
      const live = await openLive(t.url, ann.token, ["lamp"]);
      link.send("this is not json");
      link.send({ type: "state", devices: "nope" });
      link.send({ type: "command_result", id: "00000000-0000-4000-8000-000000000000", status: "confirmed", relay_state: true, reason: null, at: 1 });
      link.send(Buffer.from([1, 2, 3]));
      const ts = Date.now();
      link.send({ type: "state", devices: [{ device_id: "lamp", ts, online: true, firmware_version: "9.1", power: 61.5, voltage: 229.8, current: 0.27, energy_wh: 1500, relay_state: true }] });
      expect(await live.next((f) => f.type === "reading")).toEqual({ type: "reading", device_id: "lamp", timestamp: new Date(ts).toISOString(), power: 61.5, voltage: 229.8, current: 0.27, relay_state: true, energy_wh: 1500 });
      live.ws.close();
      const latest = await t.api("/devices/lamp/telemetry/latest", { token: ann.token });
      expect(await latest.json()).toEqual({ device_id: "lamp", timestamp: new Date(ts).toISOString(), voltage: 229.8, current: 0.27, power: 61.5, energy_wh: 1500, relay_state: true });
      const dev = await (await t.api("/devices/lamp", { token: ann.token })).json();
      expect(dev).toMatchObject({ status: "online", relay_state: true, firmware_version: "9.1", power: 61.5 });
      const metrics = await (await t.api("/metrics")).text();
      expect(metrics).toMatch(/cloud_link_bad_frames_total\{reason="not_json"\} 2/);
      expect(metrics).toMatch(/cloud_link_bad_frames_total\{reason="invalid"\} 1/);
      expect(metrics).toMatch(/cloud_link_bad_frames_total\{reason="unknown_command"\} 1/);
      expect(link.ws.readyState).toBe(link.ws.OPEN);
      // A frame over 64 KiB closes the link with 1009; the cloud stays up.
      link.send(JSON.stringify({ type: "state", devices: [], pad: "x".repeat(70 * 1024) }));
      expect((await link.closed).code).toBe(1009);
      expect((await t.api("/health")).status).toBe(200);
    } finally {
      link.ws.terminate();
    }
  });

  it("a rename in the cloud is pushed as LinkDeviceConfig while connected and again on connect until the hub echoes it", async () => {
    const link = await openLink(t.url, hub);
    let version: number;
    try {
      await link.next(isAccess);
      expect((await t.api("/devices/fan", { method: "PATCH", body: { name: "Ceiling fan" }, token: ann.token })).status).toBe(200);
      const cfg = await link.next((f) => f.type === "device_config" && f.name === "Ceiling fan");
      expect(cfg).toEqual({ type: "device_config", device_id: "fan", name: "Ceiling fan", version: expect.any(Number) });
      version = cfg.version as number;
    } finally {
      link.ws.terminate();
      await link.closed;
    }
    const again = await openLink(t.url, hub);
    try {
      expect(await again.next((f) => f.type === "device_config" && f.device_id === "fan")).toEqual({ type: "device_config", device_id: "fan", name: "Ceiling fan", version });
    } finally {
      again.ws.terminate();
      await again.closed;
    }
    // The hub applied it and echoes the same version back in a device row: nothing is owed any more.
    const echo = await fetch(`${t.url}/hub/sync`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(`${hub.hub_id}:${hub.hub_secret}`).toString("base64")}`, "content-type": "application/json" },
      body: JSON.stringify({ rows: [{ seq: 1, kind: "device", device_id: "fan", deleted: false, name: "Ceiling fan", family: "native", channel: 0, version }] }),
    });
    expect(echo.status).toBe(200);
    const [row] = await t.cloud.db.orm.select().from(devices).where(and(eq(devices.hubId, hub.hub_id), eq(devices.deviceId, "fan")));
    expect(row).toMatchObject({ name: "Ceiling fan", nameVersion: version, namePending: false });
  });

  /** Rows as the hub's uplink sends them (seqs above the ones earlier cases used). */
  const hubSync = async (rows: unknown[]) => {
    const res = await fetch(`${t.url}/hub/sync`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(`${hub.hub_id}:${hub.hub_secret}`).toString("base64")}`, "content-type": "application/json" },
      body: JSON.stringify({ rows }),
    });
    expect(res.status).toBe(200);
  };

  it("issue 6 §5: a cloud-created device goes to the hub as LinkDevicePairing (the code's scrypt hash, never the code) until the hub's row confirms it; a cloud deletion goes as LinkDeviceRemoved until echoed, and no row of the deleted pairing brings it back", async () => {
    const created = await t.api("/devices", { body: { hub_id: hub.hub_id, device_id: "kettle", name: "Kettle", pairing_code: "kettle-code-1" }, token: ann.token });
    expect(created.status).toBe(201);
    const pairedAt = Date.parse((await created.json()).created_at);
    const link = await openLink(t.url, hub);
    let pairing: Frame;
    try {
      pairing = await link.next((f) => f.type === "device_pairing" && f.device_id === "kettle");
      expect(pairing).toEqual({ type: "device_pairing", device_id: "kettle", name: "Kettle", name_version: pairedAt, family: "native", channel: 0, secret_hash: expect.stringMatching(/^scrypt\$/), paired_at: pairedAt });
      expect(await verifySecret("kettle-code-1", pairing.secret_hash as string)).toBe(true);
      expect(JSON.stringify(link.frames)).not.toContain("kettle-code-1");
    } finally {
      link.ws.terminate();
      await link.closed;
    }
    // The hub's row for that pairing confirms it: nothing owed, and the cloud forgets the hash.
    await hubSync([{ seq: 11, kind: "device", device_id: "kettle", deleted: false, name: "Kettle", family: "native", channel: 0, version: pairedAt, paired_at: pairedAt }]);
    const kettle = async () => (await t.cloud.db.orm.select().from(devices).where(and(eq(devices.hubId, hub.hub_id), eq(devices.deviceId, "kettle"))))[0];
    expect(await kettle()).toMatchObject({ pairingPending: false, namePending: false, secretHash: null });

    expect((await t.api("/devices/kettle", { method: "DELETE", token: ann.token })).status).toBe(204);
    const again = await openLink(t.url, hub);
    let removed: Frame;
    try {
      removed = await again.next((f) => f.type === "device_removed");
      expect(removed).toEqual({ type: "device_removed", device_id: "kettle", version: expect.any(Number) });
      expect(removed.version as number).toBeGreaterThan(pairedAt);
      expect(again.frames.some((f) => f.type === "device_pairing" && f.device_id === "kettle")).toBe(false);
    } finally {
      again.ws.terminate();
      await again.closed;
    }
    const tomb = async () => (await t.cloud.db.orm.select().from(deviceTombstones).where(and(eq(deviceTombstones.hubId, hub.hub_id), eq(deviceTombstones.deviceId, "kettle"))))[0];
    // A rename the hub made to the old pairing meanwhile (a newer version) does not bring it back: deletions are final.
    await hubSync([{ seq: 12, kind: "device", device_id: "kettle", deleted: false, name: "Renamed on the hub", family: "native", channel: 0, version: (removed.version as number) + 1000, paired_at: pairedAt }]);
    expect((await t.api("/devices/kettle", { token: ann.token })).status).toBe(404);
    expect(await tomb()).toMatchObject({ version: removed.version, pending: true });
    // The hub's deletion echo settles it.
    await hubSync([{ seq: 13, kind: "device", device_id: "kettle", deleted: true, name: null, family: null, channel: null, version: removed.version }]);
    expect(await tomb()).toMatchObject({ pending: false });
    // Paired again on the hub after the deletion: a new device.
    await hubSync([{ seq: 14, kind: "device", device_id: "kettle", deleted: false, name: "New kettle", family: "native", channel: 0, version: (removed.version as number) + 5000, paired_at: (removed.version as number) + 5000 }]);
    expect(await (await t.api("/devices/kettle", { token: ann.token })).json()).toMatchObject({ device_id: "kettle", name: "New kettle", created_at: new Date((removed.version as number) + 5000).toISOString() });
    expect(await tomb()).toBeUndefined();
  });
});
