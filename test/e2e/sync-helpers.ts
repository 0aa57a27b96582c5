// Shared steps of the hub ↔ cloud end-to-end tests: history written into a hub's database before it starts
// (through the hub's own migrations), and what the cloud's InfluxDB holds afterwards.
import { openHubDb } from "../../hub/db/open-db.js";
import { createLogger } from "../../shared/logger.js";
import { fromRollupRow, type StoredRollupRow } from "../../hub/sync/rollup-point.js";
import type { RollupPoint } from "../../shared/schemas/rollups.js";

export const MIN = 60_000;
const silent = createLogger({ app: "e2e-seed", level: "silent" });

/**
 * Pairs `devices` (native, unreachable secrets) and writes a reading every 10 s for `minutes` minutes from
 * `fromMs`, the way the ingest stores them (integer scales). The hub rolls them up when it starts.
 */
export function seedHistory(dataDir: string, devices: string[], fromMs: number, minutes: number): void {
  const db = openHubDb(dataDir, silent);
  try {
    const addDevice = db.sqlite.prepare(
      "INSERT INTO devices (device_id, name, family, mqtt_user, topic, channel, secret_hash, created_at, state_as_of) VALUES (?, ?, 'native', ?, ?, 0, 'scrypt$unusable', ?, ?)",
    );
    const addReading = db.sqlite.prepare("INSERT INTO readings (ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh) VALUES (?, ?, ?, 2300, ?, 1, NULL)");
    db.sqlite.transaction(() => {
      const idx: number[] = [];
      for (const d of devices) idx.push(Number(addDevice.run(d, `Plug ${d}`, d, `smartplug/${d}`, fromMs, fromMs).lastInsertRowid));
      for (let ts = fromMs; ts < fromMs + minutes * MIN; ts += 10_000) {
        idx.forEach((device, i) => {
          const dw = 600 + ((ts / 10_000 + i * 7) % 40) * 10;
          addReading.run(ts, device, dw, Math.round(dw * 0.435));
        });
      }
    })();
  } finally {
    db.close();
  }
}

/** The hub's rollups of one level as the wire sends them, keyed `device@ts`. */
export function hubRollups(sqlite: import("better-sqlite3").Database, level: "1m" | "1h" | "1d"): Map<string, RollupPoint> {
  const rows = sqlite.prepare(`SELECT r.*, d.device_id AS device_id FROM rollup_${level} r JOIN devices d ON d.idx = r.device`).all() as (StoredRollupRow & { device_id: string })[];
  return new Map(rows.map((r) => [`${r.device_id}@${r.bucket}`, fromRollupRow(r.device_id, level, r)]));
}

export interface CloudPoint {
  device: string;
  ts: number;
  samples: number;
  power_sum: number;
  energy_wh: number;
  power_min: number | null;
  power_max: number | null;
}

/** Every rollup point InfluxDB holds for a hub at one level (one row per series and time: Influx keys them so). */
export async function cloudRollups(influxUrl: string, prefix: string, hubId: string, level: "1m" | "1h" | "1d"): Promise<CloudPoint[]> {
  const q = `SELECT "samples", "power_sum", "energy_wh", "power_min", "power_max", "device" FROM "rollup" WHERE "hub" = '${hubId}'`;
  const r = await fetch(`${influxUrl}/query?${new URLSearchParams({ db: `${prefix}_${level}`, q, epoch: "ms" })}`);
  const body = (await r.json()) as { results: { series?: { columns: string[]; values: unknown[][] }[]; error?: string }[] };
  const s = body.results[0]?.series?.[0];
  if (!s) return [];
  const col = (name: string) => s.columns.indexOf(name);
  return s.values.map((v) => ({
    device: String(v[col("device")]),
    ts: Number(v[col("time")]),
    samples: Number(v[col("samples")]),
    power_sum: Number(v[col("power_sum")]),
    energy_wh: Number(v[col("energy_wh")]),
    power_min: v[col("power_min")] === null ? null : Number(v[col("power_min")]),
    power_max: v[col("power_max")] === null ? null : Number(v[col("power_max")]),
  }));
}

/** Asserts the cloud holds exactly the hub's rollups: the same keys once each, with the same values. */
export function sameRollups(hub: Map<string, RollupPoint>, cloud: CloudPoint[]): { missing: string[]; extra: string[]; different: string[] } {
  const seen = new Set<string>();
  const extra: string[] = [];
  const different: string[] = [];
  for (const c of cloud) {
    const k = `${c.device}@${c.ts}`;
    if (seen.has(k)) extra.push(`${k} (twice)`);
    seen.add(k);
    const h = hub.get(k);
    if (!h) {
      extra.push(k);
      continue;
    }
    const close = (a: number, b: number) => Math.abs(a - b) < 1e-6 * Math.max(1, Math.abs(a));
    if (h.samples !== c.samples || !close(h.power_sum, c.power_sum) || !close(h.energy_wh, c.energy_wh) || h.power_min !== c.power_min || h.power_max !== c.power_max) different.push(k);
  }
  const missing = [...hub.keys()].filter((k) => !seen.has(k));
  return { missing, extra, different };
}
