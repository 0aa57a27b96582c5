import { afterEach, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, telemetry, type MqttClient } from "../../helpers/mqtt.js";

let t: TestHub;
const plugs: MqttClient[] = [];
beforeEach(async () => {
  t = await startTestHub();
});
afterEach(async () => {
  for (const p of plugs.splice(0)) p.end(true);
  await t.close();
});

async function plug(id: string) {
  const code = await t.pair(id);
  const p = await connectNativePlug(t.mqttUrl, id, code);
  plugs.push(p);
  return p;
}

describe("telemetry history", () => {
  it("aggregates stored readings into the seed's shape", async () => {
    const p = await plug("t1");
    let base = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000; // 5 whole minutes ago…
    if (base % 3_600_000 > 57 * 60_000) base -= 3 * 60_000; // …with both minutes inside one hour
    // minute 0: 100, 200 W; minute 1: 50 W. Counter-based energy: +2 Wh then +1 Wh.
    const rows = [
      { ts: base + 1_000, power: 100, voltage: 230, current: 0.4, energyWh: 500 },
      { ts: base + 31_000, power: 200, voltage: 232, current: 0.8, energyWh: 502 },
      { ts: base + 61_000, power: 50, voltage: 228, current: 0.2, energyWh: 503 },
    ];
    for (const r of rows) await p.publishAsync("smartplug/t1/telemetry", telemetry(r), { qos: 1 });
    const q = new URLSearchParams({ start: new Date(base).toISOString(), end: new Date(base + 120_000).toISOString(), interval: "1m" });
    const res = await t.api(`/devices/t1/telemetry?${q}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      device_id: "t1",
      start: new Date(base).toISOString(),
      end: new Date(base + 120_000).toISOString(),
      interval: "1m",
      fields: ["power", "voltage", "current", "energy", "on"],
      data: [
        { timestamp: new Date(base).toISOString(), samples: 2, power_avg: 150, power_min: 100, power_max: 200, voltage_avg: 231, current_avg: 0.6, energy_wh: 2, on_seconds: 30 },
        { timestamp: new Date(base + 60_000).toISOString(), samples: 1, power_avg: 50, power_min: 50, power_max: 50, voltage_avg: 228, current_avg: 0.2, energy_wh: 1, on_seconds: 30 },
      ],
      total_points: 2,
    });
    const onlyPower = await (await t.api(`/devices/t1/telemetry?${q}&fields=power`)).json();
    expect(onlyPower.data[0]).toEqual({ timestamp: new Date(base).toISOString(), samples: 2, power_avg: 150, power_min: 100, power_max: 200 });

    // The same answer once the late minutes are rolled up and stored, and at 1 h from the hourly level.
    await t.hub.rollups.run();
    expect((await (await t.api(`/devices/t1/telemetry?${q}`)).json()).data).toHaveLength(2);
    const hourly = await (await t.api(`/devices/t1/telemetry?${new URLSearchParams({ start: new Date(base).toISOString(), end: new Date(base + 120_000).toISOString(), interval: "1h" })}`)).json();
    expect(hourly.data).toEqual([
      { timestamp: new Date(Math.floor(base / 3_600_000) * 3_600_000).toISOString(), samples: 3, power_avg: 116.67, power_min: 50, power_max: 200, voltage_avg: 230, current_avg: 0.4667, energy_wh: 3, on_seconds: 60 },
    ]);

    const latest = await (await t.api("/devices/t1/telemetry/latest")).json();
    expect(latest).toEqual({ device_id: "t1", timestamp: new Date(base + 61_000).toISOString(), voltage: 228, current: 0.2, power: 50, energy_wh: 3, relay_state: true });
  });

  it("A16: refuses a range with too many points, and bad parameters, with problem+json", async () => {
    await plug("t2");
    const tenYears = new URLSearchParams({ start: "2016-01-01T00:00:00Z", end: "2026-01-01T00:00:00Z", interval: "1m" });
    const res = await t.api(`/devices/t2/telemetry?${tenYears}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: "https://smartplug.dev/problems/validation", max_points: 10_000 });
    for (const bad of ["interval=1s", "fields=power,secrets", "start=yesterday", "limit=99999999"]) {
      const r = await t.api(`/devices/t2/telemetry?${bad}`);
      expect(r.status, bad).toBe(400);
    }
    const latest = await t.api("/devices/t2/telemetry/latest");
    expect(latest.status).toBe(404);
  });
});

describe("WebSocket /ws", () => {
  function open(token: string | null, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; frames: unknown[]; next: (pred: (f: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>> }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${t.hub.httpPort}/ws`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
      const frames: Record<string, unknown>[] = [];
      const waiters: { pred: (f: Record<string, unknown>) => boolean; resolve: (f: Record<string, unknown>) => void }[] = [];
      ws.on("message", (d) => {
        const f = JSON.parse(d.toString()) as Record<string, unknown>;
        frames.push(f);
        for (const w of [...waiters]) if (w.pred(f)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(f);
        }
      });
      const next = (pred: (f: Record<string, unknown>) => boolean) =>
        new Promise<Record<string, unknown>>((res) => {
          const hit = frames.find(pred);
          if (hit) return res(hit);
          waiters.push({ pred, resolve: res });
        });
      ws.once("open", () => resolve({ ws, frames, next }));
      ws.once("unexpected-response", (_req, res) => reject(new Error(String(res.statusCode))));
      ws.once("error", reject);
    });
  }

  it("streams readings, status changes and command results of subscribed devices", async () => {
    const token = await t.owner();
    const code = await t.pair("w1");
    await t.pair("w2");
    const { ws, next } = await open(token);
    ws.send(JSON.stringify({ type: "subscribe", device_ids: ["w1", "ghost"] }));
    expect(await next((f) => f.type === "error")).toEqual({ type: "error", code: "not-found", device_id: "ghost", detail: "no such device" });
    expect(await next((f) => f.type === "subscribed")).toEqual({ type: "subscribed", device_ids: ["w1"] });

    const p = await connectNativePlug(t.mqttUrl, "w1", code);
    plugs.push(p);
    expect(await next((f) => f.type === "status")).toMatchObject({ type: "status", device_id: "w1", status: "online" });
    const ts = Date.now();
    await p.publishAsync("smartplug/w1/telemetry", telemetry({ ts, power: 42.5 }), { qos: 1 });
    expect(await next((f) => f.type === "reading")).toEqual({
      type: "reading",
      device_id: "w1",
      timestamp: new Date(ts).toISOString(),
      power: 42.5,
      voltage: 230.1,
      current: 0.263,
      relay_state: true,
      energy_counter_wh: null,
    });
    await t.api("/devices/w1/command", { body: { command: "relay_on", timeout_ms: 200 } });
    expect(await next((f) => f.type === "command_result")).toMatchObject({ type: "command_result", device_id: "w1", command: "relay_on", status: "timeout" });
    ws.close();
  });

  it("A18 (hub side): no token or a bad token is 401 at upgrade, a foreign Origin 403", async () => {
    await expect(open(null)).rejects.toThrow("401");
    await expect(open("not-a-token")).rejects.toThrow("401");
    const token = await t.owner();
    await expect(open(token, { origin: "https://evil.example" })).rejects.toThrow("403");
    const ok = await open(token, { origin: `http://127.0.0.1:${t.hub.httpPort}` });
    ok.ws.close();
  });

  it("closes the socket when its sign-in is revoked", async () => {
    await t.owner();
    const login = await (await t.api("/auth/login", { body: { email: "owner@example.com", password: "correct horse battery" }, token: null })).json();
    const { ws } = await open(login.access_token);
    const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
    await t.api("/auth/logout", { body: { refresh_token: login.refresh_token }, token: null });
    expect(await closed).toBe(4001);
  });
});

describe("operations endpoints", () => {
  it("serves /health in the seed's shape with the hub's components, /metrics, /openapi.json and /docs", async () => {
    const h = await (await t.api("/health", { token: null })).json();
    expect(h).toEqual({
      status: "healthy",
      timestamp: expect.any(String),
      version: "0.1.0",
      uptime_s: expect.any(Number),
      components: {
        database: {
          status: "healthy",
          size_bytes: expect.any(Number),
          used_bytes: expect.any(Number),
          budget_bytes: 256 * 1024 * 1024,
          disk_free_bytes: expect.any(Number),
          storage_full: null,
          last_error: null,
          integrity_after_unclean_shutdown: null,
        },
        mqtt: { status: "healthy", port: t.hub.mqttPort, clients: 0, refused: {} },
        ingest: { status: "healthy", pending: 0, dropped: {}, shed: {} },
        devices: { status: "healthy", paired: 0, online: 0 },
      },
    });
    const metrics = await (await t.api("/metrics", { token: null })).text();
    expect(metrics).toContain("hub_readings_stored_total");
    expect(metrics).toContain("hub_messages_dropped_total");
    const doc = await (await t.api("/openapi.json", { token: null })).json();
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/auth/register", "/auth/login", "/devices", "/devices/{id}", "/devices/{id}/command", "/devices/{id}/telemetry", "/devices/{id}/telemetry/latest", "/health"]));
    expect(doc.components.schemas.CreateDeviceRequest.required).toEqual(["device_id", "name", "pairing_code"]);
    const docs = await t.api("/docs/", { token: null });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain("swagger-ui");
  });
});
