// Incremental, exact rollups (issue 4 §3): 1-minute buckets from raw readings, 1-hour (UTC) and 1-day
// (local days in the hub's time zone) buckets from 1-minute ones. Each minute is folded in its own short
// transaction (RELIABILITY fact 6); readings that arrive late for an already-rolled minute mark the device
// dirty from that minute and its buckets are recomputed, so rollups always equal a fold over the raw data.
import type { HubDb } from "../db/open-db.js";
import { getMeta } from "../db/open-db.js";
import type { HubBus } from "../bus.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { DeviceService } from "../devices/device-service.js";
import type { GroupCommitter, WriteOp } from "../ingest/group-committer.js";
import { startOfLocalDay, startOfNextLocalDay } from "../../shared/time-zone.js";
import { foldRaw, mergeInto, emptyBucket, type Bucket, type Carry, type RawRow } from "./rollup-math.js";

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
/** How far back a late reading can be re-folded exactly from remembered carries. */
const HISTORY_MINUTES = 180;
/** Most minutes folded in one transaction while catching up. */
const MAX_SPAN = 30;

export interface RollupOptions {
  maxGapMs: number;
  timeZone: string;
  /** Readings this recent are not rolled up yet: group commits and stragglers land first, ms. */
  graceMs: number;
  intervalMs: number;
}

const COLS = "bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms";

export class RollupService {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private carry = new Map<number, Carry>();
  /**
   * device → carries after each recent minute it had readings in (oldest first): the exact starting point
   * for re-folding after a late reading. A counter's baseline depends on its whole history (a dip under
   * 10 % keeps the old baseline), so one previous row is not enough.
   */
  private readonly history = new Map<number, { minute: number; carry: Carry }[]>();
  /**
   * device → earliest minute that must be recomputed because a reading arrived after it was rolled up, and how
   * many such readings marked it: a re-fold clears the mark only if no reading marked it meanwhile (a reading
   * for a later minute, committed after the re-fold read the raw rows, leaves the earliest minute unchanged).
   */
  private readonly dirty = new Map<number, { from: number; marks: number }>();
  until1m = 0;
  until1h = 0;
  until1d = 0;
  private readonly q;

  constructor(
    private readonly db: HubDb,
    private readonly committer: GroupCommitter,
    private readonly devices: DeviceService,
    bus: HubBus,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: RollupOptions,
  ) {
    const s = db.sqlite;
    this.q = {
      raw: s.prepare("SELECT ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh FROM readings WHERE ts >= ? AND ts < ? ORDER BY ts, device"),
      rawDevice: s.prepare("SELECT ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh FROM readings WHERE ts >= ? AND ts < ? AND device = ? ORDER BY ts"),
      before: s.prepare("SELECT ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh FROM readings WHERE ts < ? AND ts >= ? AND device = ? ORDER BY ts DESC LIMIT 1"),
      oldest: s.prepare("SELECT ts FROM readings ORDER BY ts LIMIT 1"),
      range1m: s.prepare(`SELECT ${COLS} FROM rollup_1m WHERE bucket >= ? AND bucket < ?`),
      range1mDevice: s.prepare(`SELECT ${COLS} FROM rollup_1m WHERE bucket >= ? AND bucket < ? AND device = ?`),
      carry: s.prepare("SELECT device, ts, power_dw, relay, counter_mwh FROM rollup_carry"),
    };
    bus.on("readingStored", ({ deviceId, reading }) => {
      if (reading.ts >= this.until1m) return;
      const idx = this.devices.has(deviceId) ? this.devices.state(deviceId).idx : null;
      if (idx === null) return;
      const minute = Math.floor(reading.ts / MINUTE) * MINUTE;
      const mark = this.dirty.get(idx);
      this.dirty.set(idx, { from: Math.min(mark?.from ?? Infinity, minute), marks: (mark?.marks ?? 0) + 1 });
    });
  }

  /** The device's last reading as of the 1-minute watermark (for exact tails past it). */
  carryOf(device: number): Carry | undefined {
    return this.carry.get(device);
  }

  /** The device's state after all readings before `ts`, as a starting point for folding from `ts`. */
  carryBefore(device: number, ts: number): Carry | undefined {
    const h = this.history.get(device);
    if (h && h.length > 0 && h[0]!.minute < ts - MINUTE) {
      for (let i = h.length - 1; i >= 0; i--) if (h[i]!.minute < ts) return { ...h[i]!.carry };
    }
    // Older than the history (or after a restart): the previous stored reading; exact unless a counter
    // dipped by < 10 % somewhere before it.
    const prev = this.q.before.get(ts, ts - this.opts.maxGapMs * 100, device) as RawRow | undefined;
    return prev ? { ts: prev.ts, power_dw: prev.power_dw, relay: prev.relay, counter_mwh: prev.counter_mwh } : undefined;
  }

  /** The minute from which a device's stored rollups are stale (late readings not yet re-folded), if any. */
  dirtyFrom(device: number): number | undefined {
    return this.dirty.get(device)?.from;
  }

  start(): void {
    const now = this.clock.now();
    const oldest = (this.q.oldest.get() as { ts: number } | undefined)?.ts;
    const origin = Math.floor((oldest ?? now) / MINUTE) * MINUTE;
    this.until1m = Number(getMeta(this.db, "rollup_1m_until") ?? origin);
    this.until1h = Number(getMeta(this.db, "rollup_1h_until") ?? Math.floor(this.until1m / HOUR) * HOUR);
    this.until1d = Number(getMeta(this.db, "rollup_1d_until") ?? startOfLocalDay(this.until1m, this.opts.timeZone));
    for (const r of this.q.carry.all() as { device: number; ts: number; power_dw: number | null; relay: number | null; counter_mwh: number | null }[]) {
      this.carry.set(r.device, { ts: r.ts, power_dw: r.power_dw, relay: r.relay, counter_mwh: r.counter_mwh });
    }
    this.timer = setInterval(() => void this.run(), this.opts.intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Rolls up everything that is due; safe to call any time (tests call it directly). */
  async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const target = Math.floor((this.clock.now() - this.opts.graceMs) / MINUTE) * MINUTE;
      while (this.until1m < target) await this.rollMinutes(this.until1m, target);
      for (const [device, { from, marks }] of [...this.dirty]) {
        await this.recomputeDevice(device, from);
        // A reading that arrived while re-folding marked it again (for any minute): keep that mark.
        if (this.dirty.get(device)?.marks === marks) this.dirty.delete(device);
      }
      while (this.until1h + HOUR <= this.until1m) await this.rollCoarse("1h", this.until1h, this.until1h + HOUR);
      for (;;) {
        const next = startOfNextLocalDay(this.until1d, this.opts.timeZone);
        if (next > this.until1m) break;
        await this.rollCoarse("1d", this.until1d, next);
      }
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "rollup run failed; will retry");
    } finally {
      this.running = false;
    }
  }

  /**
   * Folds the minutes from `start` (up to `MAX_SPAN` of them, fewer than `target`) in one transaction: one
   * minute per run when keeping up, many per commit when catching up after downtime.
   */
  private async rollMinutes(start: number, target: number): Promise<void> {
    const end = Math.min(target, start + MAX_SPAN * MINUTE);
    const rows = this.q.raw.all(start, end) as RawRow[];
    if (rows.length === 0 && end < target) {
      // Nothing to fold: move on without a write; the watermark is saved with the next span that has data.
      this.until1m = end;
      return;
    }
    // Fold on a copy: the live carry changes only once the span is committed.
    const carry = new Map<number, Carry>();
    for (const r of rows) if (!carry.has(r.device) && this.carry.has(r.device)) carry.set(r.device, { ...this.carry.get(r.device)! });
    const ops: WriteOp[] = [];
    const remembered: { device: number; minute: number; carry: Carry }[] = [];
    let i = 0;
    while (i < rows.length) {
      const minute = Math.floor(rows[i]!.ts / MINUTE) * MINUTE;
      let j = i;
      while (j < rows.length && rows[j]!.ts < minute + MINUTE) j++;
      const slice = rows.slice(i, j);
      for (const b of foldRaw(slice, () => minute, carry, this.opts.maxGapMs).values()) ops.push(putOp("rollup_1m", b));
      for (const d of new Set(slice.map((r) => r.device))) remembered.push({ device: d, minute, carry: { ...carry.get(d)! } });
      i = j;
    }
    for (const [d, c] of carry) ops.push(carryOp(d, c));
    ops.push(metaOp("rollup_1m_until", end));
    await this.committer.write(ops, { now: true });
    for (const [d, c] of carry) this.carry.set(d, c);
    for (const r of remembered) this.remember(r.device, r.minute, r.carry);
    this.until1m = end;
  }

  private remember(device: number, minute: number, carry: Carry) {
    let h = this.history.get(device);
    if (!h) this.history.set(device, (h = []));
    while (h.length > 0 && h[h.length - 1]!.minute >= minute) h.pop();
    h.push({ minute, carry: { ...carry } });
    if (h.length > HISTORY_MINUTES) h.shift();
  }

  /** Re-folds one device's minutes from `from` to the watermark, and the hours and days they belong to. */
  private async recomputeDevice(device: number, from: number): Promise<void> {
    const carry = new Map<number, Carry>();
    const prev = this.carryBefore(device, from);
    if (prev) carry.set(device, prev);
    const until = this.until1m;
    const rows = this.q.rawDevice.all(from, until, device) as RawRow[];
    const ops: WriteOp[] = [{ sql: "DELETE FROM rollup_1m WHERE bucket >= ? AND bucket < ? AND device = ?", params: [from, until, device] }];
    const remembered: { minute: number; carry: Carry }[] = [];
    const minutes: Bucket[] = [];
    let i = 0;
    while (i < rows.length) {
      const minute = Math.floor(rows[i]!.ts / MINUTE) * MINUTE;
      let j = i;
      while (j < rows.length && rows[j]!.ts < minute + MINUTE) j++;
      for (const b of foldRaw(rows.slice(i, j), () => minute, carry, this.opts.maxGapMs).values()) minutes.push(b);
      remembered.push({ minute, carry: { ...carry.get(device)! } });
      i = j;
    }
    for (const b of minutes) ops.push(putOp("rollup_1m", b));
    const c = carry.get(device);
    if (c) ops.push(carryOp(device, c));
    // Hours and days are re-merged from the minutes just computed plus the stored ones outside [from, until).
    const hourFrom = Math.floor(from / HOUR) * HOUR;
    if (hourFrom < this.until1h) ops.push(...this.recoarsen("1h", device, hourFrom, this.until1h, from, until, minutes, (ts) => Math.floor(ts / HOUR) * HOUR));
    const dayFrom = startOfLocalDay(from, this.opts.timeZone);
    if (dayFrom < this.until1d) ops.push(...this.recoarsen("1d", device, dayFrom, this.until1d, from, until, minutes, (ts) => startOfLocalDay(ts, this.opts.timeZone)));
    await this.committer.write(ops, { now: true });
    const h = this.history.get(device);
    if (h) while (h.length > 0 && h[h.length - 1]!.minute >= from) h.pop();
    for (const r of remembered) this.remember(device, r.minute, r.carry);
    if (c && until === this.until1m) this.carry.set(device, c);
  }

  private recoarsen(level: "1h" | "1d", device: number, lo: number, hi: number, fresh0: number, fresh1: number, fresh: Bucket[], bucketOf: (ts: number) => number): WriteOp[] {
    const minutes = [...(this.q.range1mDevice.all(lo, hi, device) as Bucket[]).filter((m) => m.bucket < fresh0 || m.bucket >= fresh1), ...fresh.filter((m) => m.bucket >= lo && m.bucket < hi)];
    const out = new Map<number, Bucket>();
    for (const m of minutes) {
      const k = bucketOf(m.bucket);
      let b = out.get(k);
      if (!b) out.set(k, (b = emptyBucket(k, device)));
      mergeInto(b, m);
    }
    const table = level === "1h" ? "rollup_1h" : "rollup_1d";
    return [{ sql: `DELETE FROM ${table} WHERE device = ? AND bucket >= ? AND bucket < ?`, params: [device, lo, hi] }, ...[...out.values()].map((b) => putOp(table, b))];
  }

  private async rollCoarse(level: "1h" | "1d", start: number, end: number): Promise<void> {
    const out = new Map<number, Bucket>();
    for (const m of this.q.range1m.all(start, end) as Bucket[]) {
      let b = out.get(m.device);
      if (!b) out.set(m.device, (b = emptyBucket(start, m.device)));
      mergeInto(b, m);
    }
    await this.committer.write([...[...out.values()].map((b) => putOp(level === "1h" ? "rollup_1h" : "rollup_1d", b)), metaOp(`rollup_${level}_until`, end)], { now: true });
    if (level === "1h") this.until1h = end;
    else this.until1d = end;
  }
}

function putOp(table: string, b: Bucket): WriteOp {
  return {
    sql: `INSERT OR REPLACE INTO ${table} (${COLS}) VALUES (${COLS.split(", ").map(() => "?").join(", ")})`,
    params: [b.bucket, b.device, b.samples, b.power_sum, b.power_n, b.power_min, b.power_max, b.voltage_sum, b.voltage_n, b.current_sum, b.current_n, b.energy_wh, b.on_ms],
  };
}

function carryOp(device: number, c: Carry): WriteOp {
  return { sql: "INSERT OR REPLACE INTO rollup_carry (device, ts, power_dw, relay, counter_mwh) VALUES (?, ?, ?, ?, ?)", params: [device, c.ts, c.power_dw, c.relay, c.counter_mwh] };
}

function metaOp(key: string, value: number): WriteOp {
  return { sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", params: [key, String(value)] };
}
