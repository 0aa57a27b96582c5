// WebSocket /ws (A18, A10 for subscriptions) and the operations endpoints: /health, /metrics, /openapi.json,
// /docs, /redoc, CORS; on both metadata backends (PGlite and a real PostgreSQL 15, issue 5 §1).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
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

describe.each<Backend>(["pglite", "postgres"])("on %s", (backend) => {
  let t: TestCloud;
  let ann: TestUser, bob: TestUser;
  let hubId: string;
  let hubCred: { hub_id: string; hub_secret: string };
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres, env: { CLOUD_CORS_ORIGINS: "https://app.example" }, options: { wsMaxBufferedBytes: 64 * 1024 } });
    [ann, bob] = [await t.user("ann"), await t.user("bob")];
    hubCred = await t.hub(ann);
    hubId = hubCred.hub_id;
    for (const id of ["w1", "w2", "shared-1"]) await t.device(ann, hubId, id);
    await t.api("/devices/shared-1/shares", { body: { email: bob.email, role: "viewer" }, token: ann.token });
    const bobHub = (await t.hub(bob)).hub_id;
    await t.device(bob, bobHub, "bobs");
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  type Frame = Record<string, unknown>;
  function open(token: string | null, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; frames: Frame[]; next: (pred: (f: Frame) => boolean) => Promise<Frame> }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${t.cloud.httpPort}/ws`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
      const frames: Frame[] = [];
      const waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
      const unread: Frame[] = [];
      ws.on("message", (d) => {
        const f = JSON.parse(d.toString()) as Frame;
        frames.push(f);
        const w = waiters.find((x) => x.pred(f));
        if (w) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(f);
        } else unread.push(f);
      });
      /** The next frame matching `pred`, each frame handed out once. */
      const next = (pred: (f: Frame) => boolean) =>
        new Promise<Frame>((res) => {
          const hit = unread.find(pred);
          if (hit) {
            unread.splice(unread.indexOf(hit), 1);
            return res(hit);
          }
          waiters.push({ pred, resolve: res });
        });
      ws.once("open", () => resolve({ ws, frames, next }));
      ws.once("unexpected-response", (_req, res) => reject(new Error(String(res.statusCode))));
      ws.once("error", reject);
    });
  }

  describe("WebSocket /ws", () => {
    it("streams readings, status changes and command results of subscribed devices only", async () => {
      const { ws, next, frames } = await open(ann.token);
      expect(await next((f) => f.type === "welcome")).toEqual({ type: "welcome", user_id: ann.id });
      ws.send(JSON.stringify({ type: "subscribe", device_ids: ["w1", "ghost"] }));
      expect(await next((f) => f.type === "error")).toEqual({ type: "error", code: "not-found", device_id: "ghost", detail: "no such device" });
      expect(await next((f) => f.type === "subscribed")).toEqual({ type: "subscribed", device_ids: ["w1"] });

      const ts = Date.now();
      await t.cloud.devices.setLatest(hubId, { device_id: "w2", ts, power: 1, voltage: 230, current: 0.01, energy_wh: 1, relay_state: true });
      await t.cloud.devices.setLatest(hubId, { device_id: "w1", ts, online: true, power: 42.5, voltage: 230.1, current: 0.185, energy_wh: 12.5, relay_state: true });
      expect(await next((f) => f.type === "reading")).toEqual({ type: "reading", device_id: "w1", timestamp: new Date(ts).toISOString(), power: 42.5, voltage: 230.1, current: 0.185, relay_state: true, energy_wh: 12.5 });
      expect(await next((f) => f.type === "status")).toEqual({ type: "status", device_id: "w1", status: "online", timestamp: new Date(ts).toISOString() });
      await t.api("/devices/w1/command", { body: { command: "relay_off", command_id: "ws-cmd-0001" }, token: ann.token });
      expect(await next((f) => f.type === "command_result")).toEqual({ type: "command_result", command_id: "ws-cmd-0001", device_id: "w1", command: "relay_off", status: "queued", relay_state: null, timestamp: expect.any(String) });
      expect(frames.filter((f) => f.device_id === "w2")).toEqual([]);
      ws.close();
    });

    it("A10/A18: another user's device gets the same error frame as a missing one, and never data", async () => {
      const { ws, next, frames } = await open(bob.token);
      ws.send(JSON.stringify({ type: "subscribe", device_ids: ["w1", "no-such-device", "shared-1"] }));
      const e1 = await next((f) => f.type === "error");
      const e2 = await next((f) => f.type === "error");
      expect([e1, e2]).toEqual([
        { type: "error", code: "not-found", device_id: "w1", detail: "no such device" },
        { type: "error", code: "not-found", device_id: "no-such-device", detail: "no such device" },
      ]);
      expect(await next((f) => f.type === "subscribed")).toEqual({ type: "subscribed", device_ids: ["shared-1"] });
      ws.send(JSON.stringify({ type: "subscribe", device_ids: "*" }));
      await next((f) => f.type === "subscribed");
      await t.cloud.devices.setLatest(hubId, { device_id: "w1", ts: Date.now(), power: 99, voltage: 230, current: 0.4, energy_wh: 13, relay_state: true });
      await t.cloud.devices.setLatest(hubId, { device_id: "shared-1", ts: Date.now(), power: 3, voltage: 230, current: 0.01, energy_wh: 1, relay_state: true });
      expect((await next((f) => f.type === "reading")).device_id).toBe("shared-1");
      expect(frames.filter((f) => f.device_id === "w1" && f.type !== "error")).toEqual([]);

      // Revoking the share stops the stream at once.
      const readings = () => frames.filter((f) => f.type === "reading").length;
      const before = readings();
      await t.api(`/devices/shared-1/shares/${bob.id}`, { method: "DELETE", token: ann.token });
      await new Promise((r) => setTimeout(r, 200));
      await t.cloud.devices.setLatest(hubId, { device_id: "shared-1", ts: Date.now() + 1000, power: 4, voltage: 230, current: 0.01, energy_wh: 1, relay_state: true });
      await new Promise((r) => setTimeout(r, 200));
      expect(readings()).toBe(before);
      await t.api("/devices/shared-1/shares", { body: { email: bob.email, role: "viewer" }, token: ann.token });
      ws.close();
    });

    it("issue 5 §8: alerts a hub syncs up are pushed to the sockets that may see the device; a hub-wide alert only to the hub's owner", async () => {
      const a = await open(ann.token);
      a.ws.send(JSON.stringify({ type: "subscribe", device_ids: ["w1"] }));
      await a.next((f) => f.type === "subscribed");
      const b = await open(bob.token); // sees shared-1 through a device share, nothing else of ann's hub
      b.ws.send(JSON.stringify({ type: "subscribe", device_ids: "*" }));
      await b.next((f) => f.type === "subscribed");
      const stranger = await open((await t.user("alert-stranger")).token);
      stranger.ws.send(JSON.stringify({ type: "subscribe", device_ids: "*" }));
      await stranger.next((f) => f.type === "subscribed");

      const started = Date.parse("2026-03-10T12:00:00Z");
      const alert = (seq: number, id: string, deviceId: string | null, kind: string, message: string, resolvedAt: number | null = null) => ({
        seq,
        kind: "alert",
        alert_id: id,
        device_id: deviceId,
        alert_kind: kind,
        message,
        started_at: started,
        resolved_at: resolvedAt,
        acknowledged_at: null,
      });
      const rows = [
        alert(1, "al-w1", "w1", "power_above", "w1 draws 2100 W"),
        alert(2, "al-shared", "shared-1", "device_offline", "shared-1 is offline"),
        alert(3, "al-storage", null, "storage", "hub storage 95% full"),
        alert(4, "al-w1", "w1", "power_above", "w1 draws 2100 W", started + 60_000),
      ];
      const res = await fetch(`${t.url}/hub/sync`, { method: "POST", headers: { ...hubAuth(hubCred), "content-type": "application/json" }, body: JSON.stringify({ rows }) });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ acked_seq: 4, stored: 4 });

      const frame = (id: string, deviceId: string | null, kind: string, message: string, resolvedAt: string | null = null) => ({
        type: "alert",
        id,
        device_id: deviceId,
        kind,
        message,
        details: null,
        started_at: "2026-03-10T12:00:00.000Z",
        resolved_at: resolvedAt,
        acknowledged_at: null,
      });
      expect(await a.next((f) => f.type === "alert" && f.resolved_at === null && f.id === "al-w1")).toEqual(frame("al-w1", "w1", "power_above", "w1 draws 2100 W"));
      expect(await a.next((f) => f.type === "alert" && f.id === "al-storage")).toEqual(frame("al-storage", null, "storage", "hub storage 95% full"));
      expect(await a.next((f) => f.type === "alert" && f.resolved_at !== null)).toEqual(frame("al-w1", "w1", "power_above", "w1 draws 2100 W", "2026-03-10T12:01:00.000Z"));
      expect(await b.next((f) => f.type === "alert")).toEqual(frame("al-shared", "shared-1", "device_offline", "shared-1 is offline"));
      // The hub-wide alert's access check is asynchronous: give it time to (wrongly) arrive before asserting it did not.
      await new Promise((r) => setTimeout(r, 300));
      expect(a.frames.filter((f) => f.type === "alert").map((f) => f.id)).toEqual(["al-w1", "al-storage", "al-w1"]);
      expect(b.frames.filter((f) => f.type === "alert").map((f) => f.id)).toEqual(["al-shared"]);
      expect(stranger.frames.filter((f) => f.type !== "welcome" && f.type !== "subscribed")).toEqual([]);
      for (const s of [a, b, stranger]) s.ws.close();
    });

    it("A18: no token or a bad token is 401 at upgrade, a foreign Origin 403; a configured origin is allowed", async () => {
      await expect(open(null)).rejects.toThrow("401");
      await expect(open("not-a-token")).rejects.toThrow("401");
      await expect(open(ann.refresh)).rejects.toThrow("401");
      await expect(open(ann.token, { origin: "https://evil.example" })).rejects.toThrow("403");
      const ok = await open(ann.token, { origin: "https://app.example" });
      ok.ws.close();
      expect((await t.api("/health")).status).toBe(200);
    });

    it("A18: a frame over 64 KiB closes the socket with 1009; the server stays up", async () => {
      const { ws } = await open(ann.token);
      const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
      ws.on("error", () => undefined);
      ws.send(JSON.stringify({ type: "subscribe", device_ids: ["x".repeat(70 * 1024)] }));
      expect(await closed).toBe(1009);
      const again = await open(ann.token);
      again.ws.close();
    });

    it("A18: a client that does not read is dropped instead of buffered without bound", async () => {
      const { ws } = await open(ann.token);
      ws.send(JSON.stringify({ type: "subscribe", device_ids: ["w2"] }));
      await new Promise((r) => setTimeout(r, 100));
      // Stop reading: the kernel buffers fill, then the server's send buffer passes its cap (64 KiB here).
      (ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const closed = new Promise<void>((r) => ws.once("close", () => r()));
      const devicePk = (await t.cloud.devices.deviceKey(hubId, "w2"))!;
      const slowDrops = async () => (await t.cloud.metrics.wsDropped.get()).values.find((v) => v.labels.reason === "slow")?.value ?? 0;
      // Bounded: at most 100 rounds of 5,000 frames (~75 MB), stopping as soon as the server drops the client.
      for (let round = 0; round < 100 && (await slowDrops()) === 0; round++) {
        for (let i = 0; i < 5000; i++) t.cloud.bus.emit("readingReported", { devicePk, deviceId: "w2", ts: Date.now(), power: i, voltage: 230, current: 1, energyWh: i, relayOn: true });
        await new Promise((r) => setImmediate(r));
      }
      expect(await slowDrops()).toBe(1);
      (ws as unknown as { _socket: { resume(): void } })._socket.resume();
      await closed;
    });

    it("A13: a socket closes with 4001 when its sign-in is revoked", async () => {
      const u = await t.user("revokee");
      const { ws } = await open(u.token);
      const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
      await t.api("/auth/logout", { body: { refresh_token: u.refresh } });
      expect(await closed).toBe(4001);
    });
  });

  describe("operations endpoints", () => {
    it("serves /health in the seed's shape with database, influxdb and link components", async () => {
      const res = await t.api("/health");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        status: "healthy",
        timestamp: expect.any(String),
        version: "0.1.0",
        uptime_s: expect.any(Number),
        components: {
          database: { status: "healthy", backend, last_error: null },
          influxdb: { status: "healthy", last_error: null },
          link: { status: "healthy", connected_hubs: 0, hubs: { connected: 0, disconnected: expect.any(Number), disconnected_over_24h: 0, unclaimed_connected: 0 } },
        },
      });
    });

    it("serves Prometheus /metrics from its own registry", async () => {
      const text = await (await t.api("/metrics")).text();
      expect(text).toContain("cloud_http_requests_total");
      expect(text).toContain('cloud_commands_total{status="queued"}');
      expect(text).toContain("cloud_influx_write_lines_total");
    });

    it("serves /openapi.json generated from the zod schemas, Swagger UI at /docs and ReDoc at /redoc from local files", async () => {
      const doc = await (await t.api("/openapi.json")).json();
      expect(doc.openapi).toBe("3.1.0");
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining(["/auth/register", "/auth/login", "/devices", "/devices/{id}", "/devices/{id}/command", "/devices/{id}/telemetry", "/devices/{id}/telemetry/latest", "/hubs/claim", "/health"]),
      );
      expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(["Device", "CreatedDevice", "TelemetryResponse", "Hub", "HubCredential", "CloudCommandResponse", "Problem"]));
      expect(await (await t.api("/docs/")).text()).toContain("swagger-ui");
      const redoc = await (await t.api("/redoc")).text();
      expect(redoc).toContain('<redoc spec-url="/openapi.json">');
      expect(redoc).not.toMatch(/https?:\/\//);
      const bundle = await t.api("/redoc/redoc.standalone.js");
      expect(bundle.status).toBe(200);
      expect(bundle.headers.get("content-type")).toContain("javascript");
    });

    it("answers CORS for configured origins only", async () => {
      const pre = await t.api("/devices", { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "GET", "access-control-request-headers": "authorization" } });
      expect(pre.status).toBe(204);
      expect(pre.headers.get("access-control-allow-origin")).toBe("https://app.example");
      expect(pre.headers.get("access-control-allow-headers")).toBe("Authorization, Content-Type");
      const get = await t.api("/devices", { token: ann.token, headers: { origin: "https://app.example" } });
      expect(get.headers.get("access-control-allow-origin")).toBe("https://app.example");
      const evil = await t.api("/devices", { token: ann.token, headers: { origin: "https://evil.example" } });
      expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    });
  });
});
