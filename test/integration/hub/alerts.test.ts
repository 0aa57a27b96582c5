import { afterEach, expect, it } from "vitest";
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
