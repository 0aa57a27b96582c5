import { afterEach, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, eventually, telemetry, type MqttClient } from "../../helpers/mqtt.js";

let t: TestHub;
const plugs: MqttClient[] = [];
afterEach(async () => {
  for (const p of plugs.splice(0)) p.end(true);
  await t.close();
});

function metric(text: string, name: string, reason: string): number {
  const m = new RegExp(`^${name}\\{reason="${reason}"\\} (\\d+)`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

it("F9: over the storage budget nothing unpersisted is acked, reads are served, and ingest resumes once space is freed", async () => {
  t = await startTestHub({ env: { HUB_DISK_BUDGET_MB: "2" } });
  await t.owner();
  const code = await t.pair("f9");
  const idx = t.hub.devices.state("f9").idx;
  const base = Date.now() - 3_600_000;
  // Fill the database past its 2 MiB budget with an hour of old readings of another device index.
  const ins = t.hub.db.sqlite.prepare("INSERT INTO readings (ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh) VALUES (?, ?, 100, 2300, 40, 1, NULL)");
  t.hub.db.sqlite.transaction(() => {
    for (let i = 0; i < 120_000; i++) ins.run(base + i, 999);
  })();
  t.hub.storage.check();
  expect(t.hub.storage.full).toBe(true);

  const p = await connectNativePlug(t.mqttUrl, "f9", code, { reconnectPeriod: 0 });
  plugs.push(p);
  const closed = new Promise<void>((r) => p.once("close", () => r()));
  let acked = false;
  p.publish("smartplug/f9/telemetry", telemetry({ ts: Date.now() - 1000, power: 42 }), { qos: 1 }, (err) => {
    if (!err) acked = true;
  });
  await closed; // refused before the PUBACK: the plug keeps the reading
  expect(acked).toBe(false);
  const health = await t.api("/health", { token: null });
  expect(health.status).toBe(503);
  const h = await health.json();
  expect(h.components.database).toMatchObject({ status: "unhealthy", storage_full: "database budget exceeded" });
  const alerts = await (await t.api("/alerts?active=true")).json();
  expect(alerts.map((a: { kind: string }) => a.kind)).toEqual(["storage"]);
  // Reads keep working.
  expect((await t.api("/devices/f9/telemetry?interval=1m")).status).toBe(200);
  expect(metric(await (await t.api("/metrics", { token: null })).text(), "hub_messages_dropped_total", "storage_full")).toBeGreaterThan(0);

  // Free space (what retention does), then ingest resumes by itself at the next check.
  t.hub.db.sqlite.prepare("DELETE FROM readings WHERE device = 999").run();
  t.hub.storage.check();
  expect(t.hub.storage.full).toBe(false);
  const p2 = await connectNativePlug(t.mqttUrl, "f9", code, { reconnectPeriod: 0 });
  plugs.push(p2);
  await p2.publishAsync("smartplug/f9/telemetry", telemetry({ ts: Date.now() - 500, power: 43 }), { qos: 1 });
  const raw = await (await t.api(`/devices/f9/telemetry?interval=raw&start=${new Date(Date.now() - 60_000).toISOString()}`)).json();
  expect(raw.data.map((d: { power_avg: number }) => d.power_avg)).toEqual([43]);
  await eventually(async () => (await (await t.api("/alerts?active=true")).json()).length, (n) => n === 0, "storage alert resolved");
  expect(idx).toBeGreaterThan(0);
});
