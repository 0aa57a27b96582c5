// Energy and cost per device per day/week/month (issue 5 §6), like the hub's (hub/energy/energy-report.ts):
// from the 1h rollups in InfluxDB, each hour's Wh priced at the hub's tariff in force at that local hour
// (tariff windows are whole hours, so this is exact). Periods are local to the hub's time zone.
import { DateTime } from "luxon";
import type { Tariff } from "../../shared/schemas/energy.js";
import { ValidationError } from "../../shared/problem.js";
import type { RollupStore } from "./rollup-store.js";

export type Period = "day" | "week" | "month";
const MAX_PERIODS = 400;

/** The price per kWh at a local time. A copy of the hub's `priceAt`; it belongs in shared/. */
export function priceAt(tariff: Tariff, local: DateTime): number {
  if (tariff.type === "flat") return tariff.price_per_kwh;
  const minute = local.hour * 60 + local.minute;
  for (const w of tariff.windows) {
    if (!w.days.includes(local.weekday)) continue;
    const from = Number(w.from.slice(0, 2)) * 60;
    const to = Number(w.to.slice(0, 2)) * 60;
    const inside = from <= to ? minute >= from && minute < to : minute >= from || minute < to;
    if (inside) return w.price_per_kwh;
  }
  return tariff.default_price_per_kwh;
}

export async function energyReport(
  rollups: RollupStore,
  q: { hubId: string; deviceId: string; period: Period; startMs: number; endMs: number; timeZone: string; tariff: Tariff | null },
) {
  const zone = q.timeZone;
  const unit = q.period;
  let cursor = DateTime.fromMillis(q.startMs, { zone }).startOf(unit);
  const end = DateTime.fromMillis(q.endMs, { zone });
  const bounds: [DateTime, DateTime][] = [];
  while (cursor < end) {
    const next = cursor.plus({ [`${unit}s`]: 1 });
    bounds.push([cursor, next]);
    if (bounds.length > MAX_PERIODS) throw new ValidationError(`more than ${MAX_PERIODS} ${q.period}s in range; use a longer period or a shorter range`);
    cursor = next;
  }
  if (bounds.length === 0) throw new ValidationError("'end' must be after 'start'");
  const hours = await rollups.query(q.hubId, q.deviceId, bounds[0]![0].toMillis(), bounds[bounds.length - 1]![1].toMillis(), "1h", ["energy"]);
  const data = bounds.map(([a, b]) => ({ start: a.toMillis(), end: b.toMillis(), wh: 0, cost: 0 }));
  let i = 0;
  for (const h of hours) {
    const ts = Date.parse(h.timestamp);
    while (i < data.length && ts >= data[i]!.end) i++;
    const d = data[i];
    if (!d) break;
    const wh = h.energy_wh ?? 0;
    d.wh += wh;
    if (q.tariff) d.cost += (wh / 1000) * priceAt(q.tariff, DateTime.fromMillis(ts, { zone }));
  }
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  const r4 = (v: number) => Math.round(v * 10000) / 10000;
  return {
    device_id: q.deviceId,
    period: q.period,
    time_zone: zone,
    currency: q.tariff?.currency ?? null,
    data: data.map((d) => ({ start: new Date(d.start).toISOString(), end: new Date(d.end).toISOString(), energy_kwh: r3(d.wh / 1000), cost: q.tariff ? r4(d.cost) : null })),
    total_kwh: r3(data.reduce((n, d) => n + d.wh, 0) / 1000),
    total_cost: q.tariff ? r4(data.reduce((n, d) => n + d.cost, 0)) : null,
  };
}
