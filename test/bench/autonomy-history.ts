// Loads a hub database before the hub starts, through the hub's own schema (its migrations, via
// hub/db/open-db.ts): paired devices, raw readings and rollups old enough for retention to purge, and
// months of rollups for the telemetry figure. Rows are written in the order the hub itself writes them
// (bucket-major: every device's row for one minute/hour/day, then the next), so pages fill and split as
// they would on a hub that had been running — dbstat's bytes per row are then a fair estimate.
import type Database from "better-sqlite3";
import type { ScryptOptions } from "node:crypto";
import { openHubDb, type HubDb } from "../../hub/db/open-db.js";
import { hashSecret } from "../../hub/devices/secrets.js";
import { createAdapterRegistry } from "../../hub/adapters/index.js";
import { createLogger } from "../../shared/logger.js";
import { startOfLocalDay, startOfNextLocalDay } from "../../shared/time-zone.js";
import { MINUTE, HOUR } from "../../hub/rollups/rollup-service.js";

export const DAY = 86_400_000;

export function openForPreload(dataDir: string): HubDb {
  return openHubDb(dataDir, createLogger({ app: "bench-preload", level: "silent" }));
}

/**
 * Paired native devices, as POST /devices stores them (the hub's own hashSecret; `cost` is the scrypt
 * profile stored in the hash, which the hub reads back when the plug connects). Returns device → idx.
 */
export async function insertDevices(db: Database.Database, ids: string[], codeOf: (id: string) => string, cost: ScryptOptions): Promise<Map<string, number>> {
  const native = createAdapterRegistry().get("native")!;
  const now = Date.now();
  const hashes = await Promise.all(ids.map((id) => hashSecret(codeOf(id), cost)));
  const ins = db.prepare(
    "INSERT INTO devices (device_id, name, family, mqtt_user, topic, channel, secret_hash, created_at, state_as_of) VALUES (?, ?, 'native', ?, ?, 0, ?, ?, ?)",
  );
  db.transaction(() => ids.forEach((id, i) => ins.run(id, id, id, native.topicFor(id), hashes[i], now, now)))();
  const out = new Map<string, number>();
  for (const r of db.prepare("SELECT idx, device_id FROM devices").all() as { idx: number; device_id: string }[]) out.set(r.device_id, r.idx);
  return out;
}

/** A deterministic per-device load, W (5–2,000, as the hub-core load generator). */
export function loadW(device: number): number {
  let h = (device * 2654435761) >>> 0;
  h ^= h >>> 13;
  return 5 + (h % 1996);
}

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Raw readings at 1 Hz per device over [from, to), ts-major (as group commits append them). */
export function insertRaw(db: Database.Database, devices: number[], from: number, to: number, stepMs = 1000): number {
  const ins = db.prepare("INSERT OR IGNORE INTO readings (ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh) VALUES (?, ?, ?, ?, ?, 1, ?)");
  const r = rng(from);
  let n = 0;
  db.transaction(() => {
    for (let t = from; t < to; t += stepMs) {
      for (const d of devices) {
        const p = loadW(d) * (0.97 + r() * 0.06);
        const v = 2300 + Math.round((r() - 0.5) * 60);
        ins.run(t + (d % 997), d, Math.round(p * 10), v, Math.round((p / (v / 10)) * 1000), Math.round((loadW(d) * (t / 3_600_000)) % 1e9));
        n++;
      }
    }
  })();
  return n;
}

const COLS = "bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms";

/** Rollup rows for `devices` at each bucket start from `buckets` (bucket-major), shaped like 1 Hz data. */
export function insertRollups(db: Database.Database, table: "rollup_1m" | "rollup_1h" | "rollup_1d", devices: number[], buckets: number[], bucketMs: (b: number) => number): number {
  const ins = db.prepare(`INSERT OR REPLACE INTO ${table} (${COLS}) VALUES (${COLS.split(", ").map(() => "?").join(", ")})`);
  const r = rng(buckets[0] ?? 1);
  let n = 0;
  db.transaction(() => {
    for (const b of buckets) {
      const secs = Math.round(bucketMs(b) / 1000);
      for (const d of devices) {
        const p = loadW(d) * 10; // dW
        const sum = Math.round(p * secs * (0.97 + r() * 0.06));
        const v = 2300 * secs + Math.round((r() - 0.5) * secs * 20);
        const cur = Math.round(((p / 10) / 230) * 1000) * secs;
        ins.run(b, d, secs, sum, secs, Math.round(p * 0.95), Math.round(p * 1.05), v, secs, cur, secs, (sum / 10 / 3600) * 1, secs * 1000);
        n++;
      }
    }
  })();
  return n;
}

export function minuteBuckets(from: number, to: number): number[] {
  const out: number[] = [];
  for (let t = Math.ceil(from / MINUTE) * MINUTE; t < to; t += MINUTE) out.push(t);
  return out;
}
export function hourBuckets(from: number, to: number): number[] {
  const out: number[] = [];
  for (let t = Math.ceil(from / HOUR) * HOUR; t < to; t += HOUR) out.push(t);
  return out;
}
/** Local-day starts in `tz` from the day containing `from` up to (not including) the day containing `to`. */
export function dayBuckets(from: number, to: number, tz: string): number[] {
  const out: number[] = [];
  const end = startOfLocalDay(to, tz);
  for (let t = startOfLocalDay(from, tz); t < end; t = startOfNextLocalDay(t, tz)) out.push(t);
  return out;
}

/** The rollup watermarks the hub keeps in `meta` (rolled up to here; it continues from them). */
export function setWatermarks(db: Database.Database, w: { m: number; h: number; d: number }): void {
  const up = db.prepare("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  up.run("rollup_1m_until", String(w.m));
  up.run("rollup_1h_until", String(w.h));
  up.run("rollup_1d_until", String(w.d));
}

/** Bytes (dbstat pages, table + its indexes) and rows per table. */
export function tableSizes(db: Database.Database, tables: string[]): Record<string, { bytes: number; rows: number; perRow: number }> {
  const out: Record<string, { bytes: number; rows: number; perRow: number }> = {};
  for (const t of tables) {
    const bytes = (db.prepare("SELECT COALESCE(SUM(pgsize), 0) AS b FROM dbstat WHERE name = ? OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?)").get(t, t) as { b: number }).b;
    const rows = (db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
    out[t] = { bytes, rows, perRow: rows > 0 ? bytes / rows : NaN };
  }
  return out;
}
