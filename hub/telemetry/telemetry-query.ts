// Telemetry history from raw readings: bucketed in SQL, energy per bucket from the same reset-aware
// accounting as the device totals (PROTOCOLS.md §5). Issue 4 adds rollups for long ranges.
import type { HubDb } from "../db/open-db.js";
import { INTERVALS, MAX_TELEMETRY_POINTS, type IntervalName, type TelemetryField } from "../../shared/schemas/telemetry.js";
import { ValidationError } from "../../shared/problem.js";
import { accumulateEnergy, EMPTY_ENERGY } from "../devices/energy.js";
import { rowToReading } from "../devices/device-service.js";

export interface TelemetryPointOut {
  timestamp: string;
  power_avg?: number;
  power_min?: number;
  power_max?: number;
  voltage_avg?: number;
  current_avg?: number;
  energy_wh?: number;
  samples: number;
}

const round = (v: number | null, digits: number) => (v === null ? undefined : Math.round(v * 10 ** digits) / 10 ** digits);

export class TelemetryQueries {
  private readonly buckets;
  private readonly raw;
  private readonly energyRows;

  constructor(db: HubDb, private readonly maxGapMs: number) {
    // The key is (ts, device): a range on ts, filtered by device.
    this.buckets = db.sqlite.prepare(
      `SELECT CAST(ts / @b AS INTEGER) * @b AS bucket, avg(power_dw) AS p_avg, min(power_dw) AS p_min, max(power_dw) AS p_max,
              avg(voltage_dv) AS v_avg, avg(current_ma) AS c_avg, count(*) AS n
       FROM readings WHERE ts >= @start AND ts < @end AND device = @device GROUP BY bucket ORDER BY bucket`,
    );
    this.raw = db.sqlite.prepare(
      "SELECT ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh FROM readings WHERE ts >= ? AND ts < ? AND device = ? ORDER BY ts LIMIT ?",
    );
    this.energyRows = db.sqlite.prepare(
      "SELECT ts, power_dw, counter_mwh FROM readings WHERE ts >= ? AND ts < ? AND device = ? ORDER BY ts",
    );
  }

  query(deviceIdx: number, startMs: number, endMs: number, interval: IntervalName, fields: TelemetryField[]): TelemetryPointOut[] {
    if (!(endMs > startMs)) throw new ValidationError("'end' must be after 'start'");
    const stepSec = INTERVALS[interval];
    const want = new Set(fields);
    if (stepSec === 0) return this.rawPoints(deviceIdx, startMs, endMs, want);
    const b = stepSec * 1000;
    const expected = Math.ceil((endMs - startMs) / b);
    if (expected > MAX_TELEMETRY_POINTS) {
      throw new ValidationError(`range of ${expected} ${interval} buckets exceeds ${MAX_TELEMETRY_POINTS}; use a coarser interval or a shorter range`, {
        max_points: MAX_TELEMETRY_POINTS,
      });
    }
    const rows = this.buckets.all({ b, start: startMs, end: endMs, device: deviceIdx }) as Record<string, number | null>[];
    const energy = want.has("energy") ? this.energyPerBucket(deviceIdx, startMs, endMs, b) : null;
    return rows.map((r) => {
      const p: TelemetryPointOut = { timestamp: new Date(r.bucket as number).toISOString(), samples: r.n as number };
      if (want.has("power")) {
        p.power_avg = round(r.p_avg === null ? null : (r.p_avg as number) / 10, 2);
        p.power_min = round(r.p_min === null ? null : (r.p_min as number) / 10, 1);
        p.power_max = round(r.p_max === null ? null : (r.p_max as number) / 10, 1);
      }
      if (want.has("voltage")) p.voltage_avg = round(r.v_avg === null ? null : (r.v_avg as number) / 10, 2);
      if (want.has("current")) p.current_avg = round(r.c_avg === null ? null : (r.c_avg as number) / 1000, 4);
      if (energy) p.energy_wh = round(energy.get(r.bucket as number) ?? 0, 3);
      return p;
    });
  }

  private rawPoints(deviceIdx: number, startMs: number, endMs: number, want: Set<TelemetryField>): TelemetryPointOut[] {
    const rows = this.raw.all(startMs, endMs, deviceIdx, MAX_TELEMETRY_POINTS + 1) as Record<string, number | null>[];
    if (rows.length > MAX_TELEMETRY_POINTS) {
      throw new ValidationError(`more than ${MAX_TELEMETRY_POINTS} raw samples in range; use an interval or a shorter range`, { max_points: MAX_TELEMETRY_POINTS });
    }
    return rows.map((row) => {
      const r = rowToReading(row);
      const p: TelemetryPointOut = { timestamp: new Date(r.ts).toISOString(), samples: 1 };
      if (want.has("power")) p.power_avg = p.power_min = p.power_max = r.power ?? undefined;
      if (want.has("voltage")) p.voltage_avg = r.voltage ?? undefined;
      if (want.has("current")) p.current_avg = r.current ?? undefined;
      if (want.has("energy") && r.counterWh !== null) p.energy_wh = r.counterWh;
      return p;
    });
  }

  private energyPerBucket(deviceIdx: number, startMs: number, endMs: number, b: number): Map<number, number> {
    const out = new Map<number, number>();
    let s = { ...EMPTY_ENERGY };
    for (const row of this.energyRows.iterate(startMs, endMs, deviceIdx) as Iterable<Record<string, number | null>>) {
      const before = s.energyWh;
      s = accumulateEnergy(s, { ts: row.ts as number, power: row.power_dw === null ? null : (row.power_dw as number) / 10, voltage: null, current: null, relayOn: null, counterWh: row.counter_mwh === null ? null : (row.counter_mwh as number) / 1000 }, this.maxGapMs);
      const bucket = Math.floor((row.ts as number) / b) * b;
      out.set(bucket, (out.get(bucket) ?? 0) + (s.energyWh - before));
    }
    return out;
  }
}
