import { afterEach, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, telemetry } from "../../helpers/mqtt.js";

let t: TestHub;
afterEach(async () => {
  await t.close();
});

it("retention purges each level by its age in small slices while ingest goes on (issue 4 §4)", async () => {
  const DAY = 86_400_000;
  const clock = { now: Math.floor((Date.now() - 10 * DAY) / 3_600_000) * 3_600_000 };
  t = await startTestHub({ env: { HUB_RETENTION_RAW_DAYS: "7", HUB_RETENTION_1M_DAYS: "8" }, hubOptions: { clock: { now: () => clock.now }, scheduleTimers: false } });
  const code = await t.pair("r1");
  const idx = t.hub.devices.state("r1").idx;
  const ins = t.hub.db.sqlite.prepare("INSERT INTO readings (ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh) VALUES (?, ?, 500, 2300, 200, 1, NULL)");
  const start = clock.now;
  // Ten days of one reading every 30 s.
  t.hub.db.sqlite.transaction(() => {
    for (let ts = start; ts < start + 10 * DAY; ts += 30_000) ins.run(ts, idx);
  })();
  clock.now = start + 10 * DAY;
  await t.hub.rollups.run();
  const count = (sql: string) => (t.hub.db.sqlite.prepare(sql).get() as { n: number }).n;
  const rawBefore = count("SELECT count(*) AS n FROM readings");

  // A plug keeps reporting while the purge runs; every reading it sends is acknowledged and kept.
  const p = await connectNativePlug(t.mqttUrl, "r1", code);
  let acked = 0;
  const sending = (async () => {
    for (let i = 0; i < 40; i++) {
      await p.publishAsync("smartplug/r1/telemetry", telemetry({ ts: clock.now - 60_000 + 5 + i * 100, power: 1 }), { qos: 1 });
      acked++;
    }
  })();
  await t.hub.retention.run();
  await sending;
  p.end(true);

  const cutoffRaw = clock.now - 7 * DAY;
  expect(count(`SELECT count(*) AS n FROM readings WHERE ts < ${cutoffRaw}`)).toBe(0);
  // The last 7 days of history, plus the 40 live readings (stamped within the last minute).
  expect(count(`SELECT count(*) AS n FROM readings WHERE ts >= ${cutoffRaw}`)).toBe(7 * 2880 + 40);
  expect(count("SELECT count(*) AS n FROM readings")).toBe(rawBefore - 3 * 2880 + 40);
  expect(acked).toBe(40);
  expect(count(`SELECT count(*) AS n FROM rollup_1m WHERE bucket < ${clock.now - 8 * DAY}`)).toBe(0);
  expect(count(`SELECT count(*) AS n FROM rollup_1m`)).toBeGreaterThan(0);
  // Hourly rows survive (1 year), so old history still answers at 1 h.
  const q = new URLSearchParams({ start: new Date(start).toISOString(), end: new Date(start + DAY).toISOString(), interval: "1h" });
  const h = await (await t.api(`/devices/r1/telemetry?${q}`)).json();
  expect(h.data.length).toBe(24);
  expect(h.data[0]).toMatchObject({ samples: 120, power_avg: 50 });
});
