// Rollups in InfluxDB (issue 5 §2, §6): one database per level (1m, 1h, 1d), each with its own retention
// policy, created at start when missing. Points are keyed by (hub, device, bucket start), so a redelivered
// batch overwrites itself: the cloud holds each rollup once (RELIABILITY F2). Queries pick the level that fits
// the interval and re-aggregate sums and counts exactly for 5m/15m.
import { Point, escape } from "@influxdata/influxdb-client";
import type { Logger } from "../../shared/logger.js";
import { INTERVALS, MAX_TELEMETRY_POINTS, type IntervalName, type TelemetryField } from "../../shared/schemas/telemetry.js";
import { ROLLUP_LEVELS, ROLLUP_STEP_MS, type RollupLevel, type RollupPoint } from "../../shared/schemas/rollups.js";
import { ValidationError } from "../../shared/problem.js";
import type { InfluxV1 } from "./influx-v1.js";

export const MEASUREMENT = "rollup";
/** Cloud retention per level (ARCHITECTURE §4). */
export const RETENTION: Record<RollupLevel, string> = { "1m": "30d", "1h": "365d", "1d": "1825d" };
const RP_NAME = "rollups";
/** Lines per InfluxDB write request on the sync path, and how many such requests may be in flight at once. */
const WRITE_CHUNK = 2500;
const WRITE_PARALLEL = 2;

const SUM_FIELDS = ["samples", "power_sum", "power_n", "voltage_sum", "voltage_n", "current_sum", "current_n", "energy_wh", "on_ms"] as const;

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

/** InfluxQL string literal (single quotes; backslash and quote escaped). */
export const influxString = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

export class RollupStore {
  private ensured: Promise<void> | null = null;

  constructor(
    private readonly influx: InfluxV1,
    private readonly log: Logger,
    private readonly opts: { dbPrefix: string; createDatabases: boolean },
  ) {}

  database(level: RollupLevel): string {
    return `${this.opts.dbPrefix}_${level}`;
  }

  /** Creates the databases and retention policies once; retried on the next call after a failure. */
  ensureDatabases(): Promise<void> {
    if (!this.opts.createDatabases) return Promise.resolve();
    this.ensured ??= (async () => {
      for (const level of ROLLUP_LEVELS) {
        const db = this.database(level);
        await this.influx.query(null, `CREATE DATABASE "${db}"`);
        const spec = `ON "${db}" DURATION ${RETENTION[level]} REPLICATION 1 DEFAULT`;
        try {
          await this.influx.query(null, `CREATE RETENTION POLICY "${RP_NAME}" ${spec}`);
        } catch (err) {
          if (!/already exists/i.test((err as Error).message)) throw err;
          await this.influx.query(null, `ALTER RETENTION POLICY "${RP_NAME}" ${spec}`);
        }
      }
      this.log.info({ databases: ROLLUP_LEVELS.map((l) => this.database(l)) }, "InfluxDB databases ready");
    })().catch((err: unknown) => {
      this.ensured = null;
      throw err;
    });
    return this.ensured;
  }

  /**
   * The write path the hub ↔ cloud sync calls: points grouped per level and written in chunks of WRITE_CHUNK
   * lines, WRITE_PARALLEL requests at a time, so building the next chunk's line protocol overlaps InfluxDB
   * storing the previous one (a 5,000-row catch-up batch otherwise waits for both in turn). Resolves only when
   * every chunk is stored; any chunk failing rejects (after the others settle), and the hub resends the batch.
   */
  async writeRollups(hubId: string, points: RollupPoint[]): Promise<{ written: number; droppedOld: number }> {
    await this.ensureDatabases();
    const byLevel = new Map<RollupLevel, RollupPoint[]>();
    for (const p of points) {
      let list = byLevel.get(p.level);
      if (!list) byLevel.set(p.level, (list = []));
      list.push(p);
    }
    const lines = new RollupLines(hubId);
    const pending: Promise<{ droppedOld: number }>[] = [];
    const running = new Set<Promise<unknown>>();
    for (const [level, list] of byLevel) {
      for (let i = 0; i < list.length; i += WRITE_CHUNK) {
        if (running.size >= WRITE_PARALLEL) await Promise.race(running);
        const chunk = list.slice(i, i + WRITE_CHUNK).map((p) => lines.line(p));
        const w = this.influx.write(this.database(level), chunk);
        pending.push(w);
        const done: Promise<unknown> = w.then(
          () => running.delete(done),
          () => running.delete(done),
        );
        running.add(done);
      }
    }
    const results = await Promise.allSettled(pending);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const droppedOld = results.reduce((sum, r) => sum + (r as PromiseFulfilledResult<{ droppedOld: number }>).value.droppedOld, 0);
    if (droppedOld) this.log.info({ hubId, droppedOld }, "rollups older than their level's retention were dropped");
    return { written: points.length - droppedOld, droppedOld };
  }

  /** The InfluxQL that answers a telemetry query (also what the benchmark sends straight to InfluxDB). */
  plan(hubId: string, deviceId: string, startMs: number, endMs: number, interval: Exclude<IntervalName, "raw">): { db: string; q: string; level: RollupLevel } {
    const step = INTERVALS[interval] * 1000;
    // The coarsest level whose step divides the interval: 1m for 1m/5m/15m, 1h for 1h, 1d for 1d.
    const level = ([...ROLLUP_LEVELS].reverse() as RollupLevel[]).find((l) => step % ROLLUP_STEP_MS[l] === 0) ?? "1m";
    const where = `"hub" = ${influxString(hubId)} AND "device" = ${influxString(deviceId)} AND time >= ${Math.floor(startMs)}ms AND time < ${Math.ceil(endMs)}ms`;
    if (step === ROLLUP_STEP_MS[level]) {
      const cols = [...SUM_FIELDS, "power_min", "power_max"].map((f) => `"${f}"`).join(", ");
      return { db: this.database(level), level, q: `SELECT ${cols} FROM "${MEASUREMENT}" WHERE ${where}` };
    }
    const aggs = [...SUM_FIELDS.map((f) => `sum("${f}") AS "${f}"`), `min("power_min") AS "power_min"`, `max("power_max") AS "power_max"`].join(", ");
    return { db: this.database(level), level, q: `SELECT ${aggs} FROM "${MEASUREMENT}" WHERE ${where} GROUP BY time(${interval}) fill(none)` };
  }

  async query(hubId: string, deviceId: string, startMs: number, endMs: number, interval: IntervalName, fields: TelemetryField[]): Promise<TelemetryPointOut[]> {
    if (!(endMs > startMs)) throw new ValidationError("'end' must be after 'start'");
    if (interval === "raw") {
      throw new ValidationError("the cloud keeps 1m, 1h and 1d rollups, not raw samples; use interval 1m or coarser (raw samples are on the hub)");
    }
    const step = INTERVALS[interval] * 1000;
    const expected = Math.ceil((endMs - startMs) / step);
    if (expected > MAX_TELEMETRY_POINTS) {
      throw new ValidationError(`range of ${expected} ${interval} buckets exceeds ${MAX_TELEMETRY_POINTS}; use a coarser interval or a shorter range`, { max_points: MAX_TELEMETRY_POINTS });
    }
    await this.ensureDatabases();
    const { db, q } = this.plan(hubId, deviceId, startMs, endMs, interval);
    const [series] = await this.influx.query(db, q);
    const want = new Set(fields);
    const out: TelemetryPointOut[] = [];
    for (const s of series ?? []) {
      const idx = new Map(s.columns.map((c, i) => [c, i]));
      const num = (row: unknown[], c: string) => {
        const v = row[idx.get(c) ?? -1];
        return typeof v === "number" ? v : null;
      };
      for (const row of s.values) {
        out.push(
          toPoint(
            row[idx.get("time")!] as number,
            (c) => num(row, c),
            want,
          ),
        );
      }
    }
    return out.slice(0, MAX_TELEMETRY_POINTS);
  }
}

/**
 * One rollup as a line of InfluxDB line protocol, exactly what the client library's `Point` produces (tags and
 * fields in key order, `String(n)` floats, `${n}i` integers; test/unit/cloud/rollup-line.test.ts compares the two
 * on random input) but with the series key built once per (hub, device): `Point` sorts and escapes every key of
 * every point, which cost the catch-up path ~10 µs a rollup. Escaping is the library's (`escape.measurement`,
 * `escape.tag`); values are finite numbers checked by the wire schema, which need none.
 */
export class RollupLines {
  private readonly series = new Map<string, string>();

  constructor(private readonly hubId: string) {}

  line(p: RollupPoint): string {
    let key = this.series.get(p.device_id);
    if (key === undefined) {
      if (!p.device_id || !this.hubId) throw new ValidationError("a rollup needs a hub and a device id");
      key = `${escape.measurement(MEASUREMENT)},device=${escape.tag(p.device_id)},hub=${escape.tag(this.hubId)}`;
      this.series.set(p.device_id, key);
    }
    const f = (name: string, v: number) => {
      if (!Number.isFinite(v)) throw new ValidationError(`rollup field '${name}' of '${p.device_id}' is not a finite number`);
      return v;
    };
    const int = (name: string, v: number) => `${Math.floor(f(name, v))}i`;
    // Field keys in sorted order, as Point writes them; power_min/max are absent for a bucket with no power sample.
    return (
      `${key} current_n=${int("current_n", p.current_n)},current_sum=${f("current_sum", p.current_sum)},energy_wh=${f("energy_wh", p.energy_wh)},on_ms=${int("on_ms", p.on_ms)}` +
      (p.power_max !== null ? `,power_max=${f("power_max", p.power_max)}` : "") +
      (p.power_min !== null ? `,power_min=${f("power_min", p.power_min)}` : "") +
      `,power_n=${int("power_n", p.power_n)},power_sum=${f("power_sum", p.power_sum)},samples=${int("samples", p.samples)},voltage_n=${int("voltage_n", p.voltage_n)},voltage_sum=${f("voltage_sum", p.voltage_sum)} ${p.ts}`
    );
  }
}

/** The same line through the library's `Point` (the reference RollupLines is tested against). */
export function rollupPointLine(hubId: string, p: RollupPoint): string | undefined {
  const pt = new Point(MEASUREMENT)
    .tag("hub", hubId)
    .tag("device", p.device_id)
    .intField("samples", p.samples)
    .floatField("power_sum", p.power_sum)
    .intField("power_n", p.power_n)
    .floatField("voltage_sum", p.voltage_sum)
    .intField("voltage_n", p.voltage_n)
    .floatField("current_sum", p.current_sum)
    .intField("current_n", p.current_n)
    .floatField("energy_wh", p.energy_wh)
    .intField("on_ms", p.on_ms);
  if (p.power_min !== null) pt.floatField("power_min", p.power_min);
  if (p.power_max !== null) pt.floatField("power_max", p.power_max);
  // Precision is ms on the write.
  return pt.toLineProtocol({ convertTime: () => String(p.ts) });
}

function toPoint(ts: number, v: (c: string) => number | null, want: Set<TelemetryField>): TelemetryPointOut {
  const p: TelemetryPointOut = { timestamp: new Date(ts).toISOString(), samples: v("samples") ?? 0 };
  const pn = v("power_n") ?? 0;
  if (want.has("power") && pn > 0) {
    p.power_avg = round((v("power_sum") ?? 0) / pn, 2);
    const mn = v("power_min");
    const mx = v("power_max");
    if (mn !== null) p.power_min = round(mn, 1);
    if (mx !== null) p.power_max = round(mx, 1);
  }
  const vn = v("voltage_n") ?? 0;
  if (want.has("voltage") && vn > 0) p.voltage_avg = round((v("voltage_sum") ?? 0) / vn, 2);
  const cn = v("current_n") ?? 0;
  if (want.has("current") && cn > 0) p.current_avg = round((v("current_sum") ?? 0) / cn, 4);
  if (want.has("energy")) p.energy_wh = round(v("energy_wh") ?? 0, 3);
  if (want.has("on")) p.on_seconds = round((v("on_ms") ?? 0) / 1000, 1);
  return p;
}
