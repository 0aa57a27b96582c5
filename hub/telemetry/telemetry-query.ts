// Telemetry history (issue 2 §7, issue 4 §3): each interval is answered from the coarsest stored level
// that fits (1d, 1h, 1m rollups), plus the not-yet-rolled tail computed the same way from finer data, so
// a year at 1 d costs about what a day at 1 m does, and the newest minutes are never missing.
import type { HubDb } from "../db/open-db.js";
import { INTERVALS, MAX_TELEMETRY_POINTS, type IntervalName, type TelemetryField } from "../../shared/schemas/telemetry.js";
import { ValidationError } from "../../shared/problem.js";
import { rowToReading } from "../devices/device-service.js";
import { startOfLocalDay } from "../../shared/time-zone.js";
import { emptyBucket, foldRaw, mergeInto, type Bucket, type Carry, type RawRow } from "../rollups/rollup-math.js";
import { HOUR, MINUTE, type RollupService } from "../rollups/rollup-service.js";

export interface TelemetryPointOut {
  timestamp: string;
  power_avg?: number;
  power_min?: number;
  power_max?: number;
  voltage_avg?: number;
  current_avg?: number;
  energy_wh?: number;
  on_seconds?: number;
  samples: number;
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
const COLS = "bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms";

export class TelemetryQueries {
  private readonly q;

  constructor(
    db: HubDb,
    private readonly rollups: RollupService,
    private readonly opts: { maxGapMs: number; timeZone: string },
  ) {
    const s = db.sqlite;
    this.q = {
      raw: s.prepare("SELECT ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh FROM readings WHERE ts >= ? AND ts < ? AND device = ? ORDER BY ts LIMIT ?"),
      rawAll: s.prepare("SELECT ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh FROM readings WHERE ts >= ? AND ts < ? AND device = ? ORDER BY ts"),
      m: s.prepare(`SELECT ${COLS} FROM rollup_1m WHERE bucket >= ? AND bucket < ? AND device = ? ORDER BY bucket`),
      h: s.prepare(`SELECT ${COLS} FROM rollup_1h WHERE device = ? AND bucket >= ? AND bucket < ? ORDER BY bucket`),
      d: s.prepare(`SELECT ${COLS} FROM rollup_1d WHERE device = ? AND bucket >= ? AND bucket < ? ORDER BY bucket`),
    };
  }

  query(device: number, startMs: number, endMs: number, interval: IntervalName, fields: TelemetryField[]): TelemetryPointOut[] {
    if (!(endMs > startMs)) throw new ValidationError("'end' must be after 'start'");
    const want = new Set(fields);
    if (interval === "raw") return this.rawPoints(device, startMs, endMs, want);
    const step = INTERVALS[interval] * 1000;
    const expected = Math.ceil((endMs - startMs) / step);
    if (expected > MAX_TELEMETRY_POINTS) {
      throw new ValidationError(`range of ${expected} ${interval} buckets exceeds ${MAX_TELEMETRY_POINTS}; use a coarser interval or a shorter range`, { max_points: MAX_TELEMETRY_POINTS });
    }
    let buckets: Bucket[];
    if (interval === "1d") buckets = this.days(device, startMs, endMs);
    else if (interval === "1h") buckets = this.hours(device, startMs, endMs);
    else {
      const from = Math.floor(startMs / step) * step;
      buckets = step === MINUTE ? this.minutes(device, from, endMs) : regroup(this.minutes(device, from, endMs), (t) => Math.floor(t / step) * step);
    }
    return buckets.map((b) => toPoint(b, want));
  }

  /** Where a level's stored rows stop being current for this device (its watermark, or earlier after late readings). */
  private storedUntil(device: number, levelUntil: number, bucketOf: (t: number) => number): number {
    const dirty = this.rollups.dirtyFrom(device);
    return dirty === undefined ? levelUntil : Math.min(levelUntil, bucketOf(dirty));
  }

  /** 1-minute buckets in [from, to): stored rows up to the rollup watermark, then folded from raw. */
  private minutes(device: number, from: number, to: number): Bucket[] {
    const until = this.storedUntil(device, this.rollups.until1m, (t) => t);
    const stored = from < until ? (this.q.m.all(from, Math.min(to, until), device) as Bucket[]) : [];
    if (to <= until) return stored;
    const tailFrom = Math.max(from, until);
    const carry = new Map<number, Carry>();
    // At the watermark the rollup's own carry is exact; elsewhere start from the previous stored reading.
    const c = tailFrom === this.rollups.until1m && this.rollups.dirtyFrom(device) === undefined ? this.rollups.carryOf(device) : this.rollups.carryBefore(device, tailFrom);
    if (c) carry.set(device, { ...c });
    const rows = this.q.rawAll.all(tailFrom, to, device) as RawRow[];
    const tail = [...foldRaw(rows, (ts) => Math.floor(ts / MINUTE) * MINUTE, carry, this.opts.maxGapMs).values()];
    return [...stored, ...tail];
  }

  private hours(device: number, start: number, end: number): Bucket[] {
    const from = Math.floor(start / HOUR) * HOUR;
    const until = this.storedUntil(device, this.rollups.until1h, (t) => Math.floor(t / HOUR) * HOUR);
    const stored = from < until ? (this.q.h.all(device, from, Math.min(end, until)) as Bucket[]) : [];
    if (end <= until) return stored;
    const tailFrom = Math.max(from, until);
    return [...stored, ...regroup(this.minutes(device, tailFrom, end), (t) => Math.floor(t / HOUR) * HOUR)];
  }

  private days(device: number, start: number, end: number): Bucket[] {
    const tz = this.opts.timeZone;
    const from = startOfLocalDay(start, tz);
    const until = this.storedUntil(device, this.rollups.until1d, (t) => startOfLocalDay(t, tz));
    const stored = from < until ? (this.q.d.all(device, from, Math.min(end, until)) as Bucket[]) : [];
    if (end <= until) return stored;
    const tailFrom = Math.max(from, until);
    // Today so far: its stored hours, then minutes (a zone whose days start off the hour, Asia/Kolkata say, from minutes).
    const finer = tailFrom % HOUR === 0 ? this.hours(device, tailFrom, end) : this.minutes(device, tailFrom, end);
    return [...stored, ...regroup(finer, (t) => startOfLocalDay(t, tz))];
  }

  private rawPoints(device: number, startMs: number, endMs: number, want: Set<TelemetryField>): TelemetryPointOut[] {
    const rows = this.q.raw.all(startMs, endMs, device, MAX_TELEMETRY_POINTS + 1) as Record<string, number | null>[];
    if (rows.length > MAX_TELEMETRY_POINTS) {
      throw new ValidationError(`more than ${MAX_TELEMETRY_POINTS} raw samples in range; use an interval or a shorter range`, { max_points: MAX_TELEMETRY_POINTS });
    }
    return rows.map((row) => {
      const r = rowToReading(row);
      const p: TelemetryPointOut = { timestamp: new Date(r.ts).toISOString(), samples: 1 };
      if (want.has("power") && r.power !== null) p.power_avg = p.power_min = p.power_max = r.power;
      if (want.has("voltage") && r.voltage !== null) p.voltage_avg = r.voltage;
      if (want.has("current") && r.current !== null) p.current_avg = r.current;
      if (want.has("energy") && r.counterWh !== null) p.energy_wh = r.counterWh;
      return p;
    });
  }
}

function regroup(buckets: Bucket[], bucketOf: (t: number) => number): Bucket[] {
  const out = new Map<number, Bucket>();
  for (const b of buckets) {
    const k = bucketOf(b.bucket);
    let o = out.get(k);
    if (!o) out.set(k, (o = emptyBucket(k, b.device)));
    mergeInto(o, b);
  }
  return [...out.values()].sort((a, b) => a.bucket - b.bucket);
}

function toPoint(b: Bucket, want: Set<TelemetryField>): TelemetryPointOut {
  const p: TelemetryPointOut = { timestamp: new Date(b.bucket).toISOString(), samples: b.samples };
  if (want.has("power") && b.power_n > 0) {
    p.power_avg = round(b.power_sum / b.power_n / 10, 2);
    p.power_min = b.power_min! / 10;
    p.power_max = b.power_max! / 10;
  }
  if (want.has("voltage") && b.voltage_n > 0) p.voltage_avg = round(b.voltage_sum / b.voltage_n / 10, 2);
  if (want.has("current") && b.current_n > 0) p.current_avg = round(b.current_sum / b.current_n / 1000, 4);
  if (want.has("energy")) p.energy_wh = round(b.energy_wh, 3);
  if (want.has("on")) p.on_seconds = round(b.on_ms / 1000, 1);
  return p;
}
