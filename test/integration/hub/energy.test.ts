import { afterEach, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../helpers/hub.js";

let t: TestHub;
afterEach(async () => {
  await t.close();
});

it("energy and cost per local day under a time-of-use tariff (issue 4 §5)", async () => {
  let now = Date.parse("2026-11-30T23:00:00Z");
  t = await startTestHub({ env: { HUB_TIMEZONE: "Europe/Berlin" }, hubOptions: { clock: { now: () => now }, scheduleTimers: false } });
  await t.owner();
  await t.pair("e1");
  const idx = t.hub.devices.state("e1").idx;
  // A counter rising 100 Wh every hour from 2026-12-01T00:00 local (23:00Z the day before) for 48 hours.
  const ins = t.hub.db.sqlite.prepare("INSERT INTO readings (ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh) VALUES (?, ?, 1000, 2300, 435, 1, ?)");
  const t0 = Date.parse("2026-11-30T23:00:00Z");
  for (let h = 0; h <= 48; h++) ins.run(t0 + h * 3_600_000 + 1000, idx, 5_000_000 + h * 100_000);
  now = Date.parse("2026-12-03T12:00:00Z");
  await t.hub.rollups.run();

  expect((await t.api("/tariff")).status).toBe(404);
  const bad = await t.api("/tariff", { method: "PUT", body: { type: "time_of_use", currency: "EUR", default_price_per_kwh: 0.3, windows: [{ from: "07:30", to: "22:00", price_per_kwh: 0.4 }] } });
  expect(bad.status).toBe(400);
  const tariff = { type: "time_of_use", currency: "EUR", default_price_per_kwh: 0.2, windows: [{ days: [1, 2, 3, 4, 5, 6, 7], from: "07:00", to: "22:00", price_per_kwh: 0.4 }] };
  expect((await t.api("/tariff", { method: "PUT", body: tariff })).status).toBe(200);

  const q = new URLSearchParams({ period: "day", start: "2026-11-30T23:00:00Z", end: "2026-12-02T23:00:00Z" });
  const res = await t.api(`/devices/e1/energy?${q}`);
  expect(res.status).toBe(200);
  // Hour h's 100 Wh lands in the bucket of the reading that closes it (h+1, local 01:00…24:00).
  // Dec 1: readings at local 01..23 carry a delta (00:00's is the baseline): 15 hours (07–21) at 0.40, 8 at 0.20.
  // Dec 2: local 00..23: 15 at 0.40, 9 at 0.20.
  expect(await res.json()).toEqual({
    device_id: "e1",
    period: "day",
    time_zone: "Europe/Berlin",
    currency: "EUR",
    data: [
      { start: "2026-11-30T23:00:00.000Z", end: "2026-12-01T23:00:00.000Z", energy_kwh: 2.3, cost: 0.76 },
      { start: "2026-12-01T23:00:00.000Z", end: "2026-12-02T23:00:00.000Z", energy_kwh: 2.4, cost: 0.78 },
    ],
    total_kwh: 4.7,
    total_cost: 1.54,
  });
  const week = await (await t.api(`/devices/e1/energy?period=week&start=2026-11-30T23:00:00Z&end=2026-12-02T23:00:00Z`)).json();
  // The ISO week (Mon 30 Nov – Sun 6 Dec) also holds Dec 3's 00:00 delta: +0.1 kWh at 0.20.
  expect(week.data).toEqual([{ start: "2026-11-29T23:00:00.000Z", end: "2026-12-06T23:00:00.000Z", energy_kwh: 4.8, cost: 1.56 }]);
  expect((await t.api(`/devices/e1/energy?period=year`)).status).toBe(400);
});
