// Exact rollups (issue 4 §3). The definition, shared by the incremental service and the brute-force test:
// for each device, readings in time order; each reading r with predecessor p contributes
//   - its own values to the bucket of r.ts (sample count, power/voltage/current sums and counts, min, max);
//   - energy: the counter delta p→r (reset-aware, PROTOCOLS.md §5) when r has a counter, else the trapezoid
//     of power over p→r when the gap is ≤ maxGap and no counter was seen before (the next counter delta
//     covers the interval: see accumulateEnergy); to the bucket of r.ts;
//   - on-time: r.ts − p.ts (capped at maxGap) when p's relay was on; to the bucket of r.ts.
// Values are the integer scales of `readings` (0.1 W, 0.1 V, mA), so sums and min/max are exact.
import { RESET_FRACTION } from "../devices/energy.js";

export interface RawRow {
  ts: number;
  device: number;
  power_dw: number | null;
  voltage_dv: number | null;
  current_ma: number | null;
  relay: number | null;
  counter_mwh: number | null;
}

export interface Bucket {
  bucket: number;
  device: number;
  samples: number;
  power_sum: number;
  power_n: number;
  power_min: number | null;
  power_max: number | null;
  voltage_sum: number;
  voltage_n: number;
  current_sum: number;
  current_n: number;
  /** Wh */
  energy_wh: number;
  on_ms: number;
}

/** What the fold needs to know of a device's previous reading. */
export interface Carry {
  ts: number;
  power_dw: number | null;
  relay: number | null;
  /** The counter baseline (mWh) the next delta is taken from. */
  counter_mwh: number | null;
}

export function emptyBucket(bucket: number, device: number): Bucket {
  return { bucket, device, samples: 0, power_sum: 0, power_n: 0, power_min: null, power_max: null, voltage_sum: 0, voltage_n: 0, current_sum: 0, current_n: 0, energy_wh: 0, on_ms: 0 };
}

/** Energy (Wh) and on-time (ms) that reading r adds after predecessor p; returns the new carry too. */
export function step(p: Carry | undefined, r: RawRow, maxGapMs: number): { energyWh: number; onMs: number; carry: Carry } {
  let energyWh = 0;
  let onMs = 0;
  let baseline = p?.counter_mwh ?? null;
  if (r.counter_mwh !== null) {
    if (baseline !== null) {
      const d = r.counter_mwh - baseline;
      if (d >= 0) {
        energyWh = d / 1000;
        baseline = r.counter_mwh;
      } else if (-d >= RESET_FRACTION * baseline) {
        energyWh = r.counter_mwh / 1000;
        baseline = r.counter_mwh;
      } // else: noise, keep the baseline
    } else baseline = r.counter_mwh;
  } else if (baseline === null && p && p.power_dw !== null && r.power_dw !== null && r.ts - p.ts <= maxGapMs) {
    energyWh = ((p.power_dw + r.power_dw) / 20) * ((r.ts - p.ts) / 3_600_000);
  }
  if (p && p.relay === 1) onMs = Math.min(r.ts - p.ts, maxGapMs);
  return { energyWh, onMs, carry: { ts: r.ts, power_dw: r.power_dw ?? p?.power_dw ?? null, relay: r.relay ?? p?.relay ?? null, counter_mwh: baseline } };
}

export function addSample(b: Bucket, r: RawRow, energyWh: number, onMs: number): void {
  b.samples++;
  if (r.power_dw !== null) {
    b.power_sum += r.power_dw;
    b.power_n++;
    b.power_min = b.power_min === null ? r.power_dw : Math.min(b.power_min, r.power_dw);
    b.power_max = b.power_max === null ? r.power_dw : Math.max(b.power_max, r.power_dw);
  }
  if (r.voltage_dv !== null) {
    b.voltage_sum += r.voltage_dv;
    b.voltage_n++;
  }
  if (r.current_ma !== null) {
    b.current_sum += r.current_ma;
    b.current_n++;
  }
  b.energy_wh += energyWh;
  b.on_ms += onMs;
}

/** Merges finer buckets into a coarser one (1m → 1h, 1m → 1d): every field is a sum, min or max. */
export function mergeInto(into: Bucket, b: Bucket): void {
  into.samples += b.samples;
  into.power_sum += b.power_sum;
  into.power_n += b.power_n;
  if (b.power_min !== null) into.power_min = into.power_min === null ? b.power_min : Math.min(into.power_min, b.power_min);
  if (b.power_max !== null) into.power_max = into.power_max === null ? b.power_max : Math.max(into.power_max, b.power_max);
  into.voltage_sum += b.voltage_sum;
  into.voltage_n += b.voltage_n;
  into.current_sum += b.current_sum;
  into.current_n += b.current_n;
  into.energy_wh += b.energy_wh;
  into.on_ms += b.on_ms;
}

/**
 * Folds time-ordered raw rows into buckets of `bucketOf(ts)`, continuing from `carry` (per device) and
 * updating it. Returns the buckets keyed `${bucket}:${device}`.
 */
export function foldRaw(rows: Iterable<RawRow>, bucketOf: (ts: number) => number, carry: Map<number, Carry>, maxGapMs: number): Map<string, Bucket> {
  const out = new Map<string, Bucket>();
  for (const r of rows) {
    const s = step(carry.get(r.device), r, maxGapMs);
    carry.set(r.device, s.carry);
    const bucket = bucketOf(r.ts);
    const key = `${bucket}:${r.device}`;
    let b = out.get(key);
    if (!b) out.set(key, (b = emptyBucket(bucket, r.device)));
    addSample(b, r, s.energyWh, s.onMs);
  }
  return out;
}
