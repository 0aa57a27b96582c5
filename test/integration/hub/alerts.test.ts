import { afterEach, expect, it } from "vitest";
import WebSocket from "ws";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, eventually, telemetry, type MqttClient } from "../../helpers/mqtt.js";

let t: TestHub;
const plugs: MqttClient[] = [];
afterEach(async () => {
  for (const p of plugs.splice(0)) p.end(true);
  await t.close();
});

it("raises offline, power-above and appliance-finished alerts once per condition; lists, acknowledges and counts them (issue 4 §6)", async () => {
  const clock = { now: Date.now() };
  t = await startTestHub({ hubOptions: { clock: { now: () => clock.now }, scheduleTimers: false } });
  await t.owner();
  const code = await t.pair("a1");
  expect(await (await t.api("/devices/a1/alert-settings")).json()).toEqual({ offline_grace_s: 300, power_above_w: null, finished_above_w: null, finished_idle_min: 5 });
  expect((await t.api("/devices/a1/alert-settings", { method: "PUT", body: { power_above_w: -1 } })).status).toBe(400);
  const put = await t.api("/devices/a1/alert-settings", { method: "PUT", body: { offline_grace_s: 60, power_above_w: 2000, finished_above_w: 50, finished_idle_min: 3 } });
  expect(await put.json()).toEqual({ offline_grace_s: 60, power_above_w: 2000, finished_above_w: 50, finished_idle_min: 3 });

  const p = await connectNativePlug(t.mqttUrl, "a1", code);
  plugs.push(p);
  const send = (power: number) => p.publishAsync("smartplug/a1/telemetry", telemetry({ ts: clock.now, power }), { qos: 1 });
  // A kettle-like run: above 2000 W twice (one alert), then idle for 3 minutes → finished.
  await send(2100);
  clock.now += 1000;
  await send(2200);
  clock.now += 1000;
  await send(10);
  clock.now += 2 * 60_000;
  t.hub.alerts.check();
  expect((await (await t.api("/alerts?active=true")).json()).map((a: { kind: string }) => a.kind)).toEqual([]);
  clock.now += 61_000;
  t.hub.alerts.check();
  t.hub.alerts.check();
  const all = await (await t.api("/alerts")).json();
  expect(all.map((a: { kind: string; resolved_at: string | null }) => [a.kind, a.resolved_at !== null])).toEqual([
    ["appliance_finished", true],
    ["power_above", true],
  ]);
  expect(all[1]).toEqual({
    id: expect.any(String),
    device_id: "a1",
    kind: "power_above",
    message: "power 2100 W is above 2000 W",
    details: { power_w: 2100, threshold_w: 2000 },
    started_at: expect.any(String),
    resolved_at: expect.any(String),
    acknowledged_at: null,
  });

  // Offline: nothing within the grace period, one alert after it however often checked, resolved on return.
  p.stream.destroy();
  await eventually(async () => (await (await t.api("/devices/a1")).json()).status, (s) => s === "offline", "offline");
  clock.now += 30_000;
  t.hub.alerts.check();
  expect(await (await t.api("/alerts?active=true")).json()).toEqual([]);
  clock.now += 31_000;
  t.hub.alerts.check();
  t.hub.alerts.check();
  const active = await (await t.api("/alerts?active=true")).json();
  expect(active.map((a: { kind: string }) => a.kind)).toEqual(["device_offline"]);
  const acked = await (await t.api(`/alerts/${active[0].id}/ack`, { method: "POST" })).json();
  expect(acked.acknowledged_at).not.toBeNull();
  expect((await t.api("/alerts/nope/ack", { method: "POST" })).status).toBe(404);
  const back = await connectNativePlug(t.mqttUrl, "a1", code);
  plugs.push(back);
  await eventually(async () => (await (await t.api("/alerts?active=true")).json()).length, (n) => n === 0, "offline alert resolved");
  const metrics = await (await t.api("/metrics", { token: null })).text();
  expect(metrics).toMatch(/hub_alerts_total\{kind="device_offline"\} 1/);
  expect(metrics).toMatch(/hub_alerts_total\{kind="power_above"\} 1/);
  expect(metrics).toMatch(/hub_alerts_total\{kind="appliance_finished"\} 1/);
});

type Frame = Record<string, unknown>;

/** A /ws client that keeps every frame it receives, each parsed whole. */
async function liveClient(token: string): Promise<{ ws: WebSocket; frames: Frame[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${t.hub.httpPort}/ws`, { headers: { authorization: `Bearer ${token}` } });
  const frames: Frame[] = [];
  ws.on("message", (d, isBinary) => {
    expect(isBinary).toBe(false);
    frames.push(JSON.parse(d.toString()) as Frame);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  await eventually(() => frames.length, (n) => n > 0, "welcome");
  return { ws, frames };
}

const alertFrames = (frames: Frame[]) => frames.filter((f) => f.type === "alert");

it("pushes alerts over /ws as whole frames (the /alerts body plus type): raised and resolved to clients subscribed to the device, hub-wide ones to every client (issue 4 §6)", async () => {
  t = await startTestHub();
  const token = await t.owner();
  const c1 = await t.pair("w1");
  const c2 = await t.pair("w2");
  for (const id of ["w1", "w2"]) await t.api(`/devices/${id}/alert-settings`, { method: "PUT", body: { offline_grace_s: 300, power_above_w: 1000, finished_above_w: null, finished_idle_min: 5 } });
  const sub = await liveClient(token); // subscribed to w1 only
  const other = await liveClient(token); // subscribed to nothing
  sub.ws.send(JSON.stringify({ type: "subscribe", device_ids: ["w1"] }));
  await eventually(() => sub.frames.some((f) => f.type === "subscribed"), (v) => v, "subscribed");

  const p1 = await connectNativePlug(t.mqttUrl, "w1", c1);
  const p2 = await connectNativePlug(t.mqttUrl, "w2", c2);
  plugs.push(p1, p2);
  await p1.publishAsync("smartplug/w1/telemetry", telemetry({ power: 1500 }), { qos: 1 });
  const raised = await eventually(() => alertFrames(sub.frames), (a) => a.length === 1, "alert frame");
  const [stored] = await (await t.api("/alerts?active=true")).json();
  expect(raised[0]).toEqual({ type: "alert", ...stored });
  expect(raised[0]).toEqual({
    type: "alert",
    id: expect.any(String),
    device_id: "w1",
    kind: "power_above",
    message: "power 1500 W is above 1000 W",
    details: { power_w: 1500, threshold_w: 1000 },
    started_at: expect.any(String),
    resolved_at: null,
    acknowledged_at: null,
  });

  // Still above: no second alert, no second frame. Back below: the same alert, resolved.
  await p1.publishAsync("smartplug/w1/telemetry", telemetry({ power: 1600 }), { qos: 1 });
  await p1.publishAsync("smartplug/w1/telemetry", telemetry({ power: 400 }), { qos: 1 });
  const frames = await eventually(() => alertFrames(sub.frames), (a) => a.length === 2, "resolved frame");
  const [resolved] = (await (await t.api("/alerts")).json()) as Frame[];
  expect(frames[1]).toEqual({ type: "alert", ...resolved, id: stored.id, resolved_at: expect.any(String) });

  // w2's alert reaches nobody here: neither client subscribed to w2.
  await p2.publishAsync("smartplug/w2/telemetry", telemetry({ power: 2000 }), { qos: 1 });
  await eventually(async () => (await (await t.api("/alerts?active=true")).json()).length, (n) => n === 1, "w2 alert stored");
  // A hub-wide alert (the anomaly detector's hook, device null) goes to every client.
  const id = t.hub.alerts.raise({ deviceId: null, kind: "anomaly", message: "consumption unlike last week", details: { score: 0.97 } });
  const hubWide = { type: "alert", id, device_id: null, kind: "anomaly", message: "consumption unlike last week", details: { score: 0.97 }, started_at: expect.any(String), resolved_at: null, acknowledged_at: null };
  await eventually(() => alertFrames(other.frames).length, (n) => n === 1, "hub-wide alert to the unsubscribed client");
  await eventually(() => alertFrames(sub.frames).length, (n) => n === 3, "hub-wide alert to the subscribed client");
  expect(alertFrames(other.frames)).toEqual([hubWide]);
  expect(alertFrames(sub.frames).map((f) => [f.device_id, f.kind, f.resolved_at === null])).toEqual([
    ["w1", "power_above", true],
    ["w1", "power_above", false],
    [null, "anomaly", true],
  ]);
  expect(alertFrames(sub.frames)[2]).toEqual(hubWide);
  sub.ws.close();
  other.ws.close();
});
