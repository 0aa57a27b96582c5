// The hub's durable outbox (issue 6 §1). Triggers in migration 0005 add a row, in the same transaction, for
// every rollup written, device paired/renamed/removed, schedule edited and alert raised or changed; relay
// changes are added here through the group committer. Each row has a monotonically increasing `seq`. A row
// names what changed (`kind`, `ref`, `ts`); `materialize` reads the current content when it is sent, so the
// cloud always receives the final value of a rollup that was re-folded. Bounded by bytes and age: over the
// budget the oldest 1-minute rollups go first, then hourly and daily ones; relay changes, schedule edits,
// devices and alerts are never dropped. Every drop is counted, in the database (sync_drops), in the same
// transaction as the drop, so the counts survive a restart.
//
// Bytes are what a row costs on disk in the outbox (migration 0006, measured with dbstat): a rollup row only
// names its rollup, whose values stay in rollup_1m whatever the outbox does, so 50 plugs × 7 days of 1-minute
// rollups (504,000 rows) take 30.9 MiB of the 64 MiB default. Totals are kept per kind by triggers
// (sync_outbox_totals), so stats() reads a few rows instead of summing the outbox.
import type Database from "better-sqlite3";
import type { HubDb } from "../db/open-db.js";
import type { GroupCommitter, WriteOp } from "../ingest/group-committer.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { RollupLevel } from "../../shared/schemas/rollups.js";
import type { SyncRow } from "../../shared/schemas/sync.js";
import { ENERGY_DECIMALS, fromRollupRow, type StoredRollupRow } from "./rollup-point.js";

export interface OutboxRow {
  seq: number;
  kind: string;
  ref: string;
  ts: number;
  payload: string | null;
  bytes: number;
}

export interface OutboxOptions {
  maxBytes: number;
  maxAgeMs: number;
}

export interface OutboxStats {
  depth: number;
  bytes: number;
  oldest_seq: number | null;
  /** Wall-clock ms when the oldest waiting row was queued. */
  oldest_queued_at: number | null;
  /** Rows dropped before reaching the cloud, by reason, since the outbox was enabled (persisted). */
  dropped: Record<string, number>;
  /** Wall-clock ms of the latest drop, or null when nothing was ever dropped. */
  last_dropped_at: number | null;
  dead_lettered: number;
}

/**
 * What an outbox row costs on disk, in bytes: its record in sync_outbox and its entry in the (kind, seq) index.
 * Fitted to dbstat on 504,000 rollup rows (64.2 B measured, 63–64 B estimated) and 100,000 relay rows (99.7 B
 * measured, 100 B estimated); migration 0006 computes the same in SQL.
 */
export function outboxRowBytes(kind: string, ref: string, payload: string | null): number {
  return 44 + 2 * kind.length + ref.length + (payload?.length ?? 0);
}
const ROW_BYTES_SQL = "44 + 2 * length(kind) + length(ref) + coalesce(length(payload), 0)";

/** Outbox growth (estimated bytes, as a share of the budget) that makes the hub enforce its limits at once. */
export const ENFORCE_ON_GROWTH = 1 / 16;

/** Rollups are dropped in this order when the outbox is full; nothing else ever is. */
const DROPPABLE = ["rollup_1m", "rollup_1h", "rollup_1d"] as const;
const ROLLUP_TABLE: Record<string, { table: string; level: RollupLevel }> = {
  rollup_1m: { table: "rollup_1m", level: "1m" },
  rollup_1h: { table: "rollup_1h", level: "1h" },
  rollup_1d: { table: "rollup_1d", level: "1d" },
};
const DROP_SLICE = 5000;

/**
 * A rollup's wire row (SyncRollupRow) as JSON, built by SQLite for the outbox row `o`: one column per row instead
 * of two lookups and a dozen values handed to JavaScript (materializing was ~40 µs a rollup, most of a catch-up's
 * CPU on the hub). Same values as fromRollupRow — the integer scales divided in IEEE doubles, which SQLite's JSON
 * writes so that they read back exactly — and NULL when the rollup or its device is gone.
 */
function rollupJsonSql(kind: string, table: string, level: RollupLevel): string {
  // A whole value prints as an integer, as JSON.stringify does ("780", not SQLite's "780.0"): same number, fewer bytes.
  const f = (c: string, scale?: number) => `'${c}', ${scale ? `iif(r.${c} % ${scale} = 0, r.${c} / ${scale}, r.${c} / ${scale}.0)` : `r.${c}`}`;
  // Energy to the µWh (ENERGY_DECIMALS), as fromRollupRow: a float sum's last digits are noise gzip cannot shrink.
  const real = (c: string) => `'${c}', iif(round(r.${c}, ${ENERGY_DECIMALS}) = CAST(round(r.${c}, ${ENERGY_DECIMALS}) AS INTEGER) AND abs(r.${c}) < 9e15, CAST(round(r.${c}, ${ENERGY_DECIMALS}) AS INTEGER), round(r.${c}, ${ENERGY_DECIMALS}))`;
  return `(SELECT json_object('seq', o.seq, 'kind', 'rollup', 'point', json_object('device_id', d.device_id, 'level', '${level}', 'ts', r.bucket, ${[
    f("samples"),
    f("power_sum", 10),
    f("power_n"),
    f("power_min", 10),
    f("power_max", 10),
    f("voltage_sum", 10),
    f("voltage_n"),
    f("current_sum", 1000),
    f("current_n"),
    real("energy_wh"),
    f("on_ms"),
  ].join(", ")})) FROM ${table} r JOIN devices d ON d.idx = r.device WHERE o.kind = '${kind}' AND r.bucket = o.ts AND r.device = CAST(o.ref AS INTEGER))`;
}
const HEAD_WIRE_SQL = `SELECT o.seq, o.kind, o.ref, o.ts, o.payload, o.bytes, CASE o.kind ${Object.entries({ rollup_1m: "1m", rollup_1h: "1h", rollup_1d: "1d" } as const)
  .map(([kind, level]) => `WHEN '${kind}' THEN ${rollupJsonSql(kind, kind, level)}`)
  .join(" ")} END AS json FROM sync_outbox o WHERE o.seq > ? ORDER BY o.seq LIMIT ?`;

/**
 * meta key: rows numbered above this sequence have not been checked against the cloud's `synced_seq` yet. Set when the
 * sync starts (to the highest sequence the database had assigned when this process opened it, unless an earlier value
 * still stands) and cleared by `checkSequence` — see there.
 */
const UNCHECKED_KEY = "sync_seq_unchecked_after";
/** meta key: the latest renumbering after a rewound sequence (JSON), for whoever investigates. */
const RENUMBERED_KEY = "sync_seq_renumbered";

export interface SequenceCheck {
  /** Rows above this were checked. */
  after: number;
  /** The cloud's synced_seq. */
  cloudSeq: number;
  /** How far the unchecked rows moved up (0: the sequence was not rewound). */
  shift: number;
  /** Rows renumbered. */
  rows: number;
}

export class Outbox {
  private readonly q;
  /**
   * The highest sequence this database had ever assigned (sqlite_sequence) when this process opened it, read before
   * anything of this process could queue a row: every row numbered above it was numbered by this process.
   */
  readonly startSeq: number;
  /** Bumped by every renumbering: a batch read before it names rows by sequences they no longer have. */
  renumberings = 0;
  /** The highest sequence when limits were last enforced: growth past it is checked by `growth()`. */
  private enforcedAtSeq = 0;
  private enforcedAt = 0;
  private enforcing: Promise<void> | null = null;

  constructor(
    private readonly db: HubDb,
    private readonly committer: GroupCommitter,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: OutboxOptions,
  ) {
    const s = db.sqlite;
    this.q = {
      head: s.prepare("SELECT seq, kind, ref, ts, payload, bytes FROM sync_outbox WHERE seq > ? ORDER BY seq LIMIT ?"),
      headWire: s.prepare(HEAD_WIRE_SQL),
      totals: s.prepare("SELECT coalesce(sum(rows), 0) AS depth, coalesce(sum(bytes), 0) AS bytes FROM sync_outbox_totals"),
      oldest: s.prepare("SELECT seq, queued_at FROM sync_outbox ORDER BY seq LIMIT 1"),
      maxSeq: s.prepare("SELECT max(seq) AS seq FROM sync_outbox"),
      deadCount: s.prepare("SELECT count(*) AS n FROM sync_dead_letters"),
      drops: s.prepare("SELECT reason, n, last_at FROM sync_drops WHERE n > 0 ORDER BY reason"),
      rollup: Object.fromEntries(
        Object.entries(ROLLUP_TABLE).map(([kind, { table }]) => [kind, s.prepare(`SELECT * FROM ${table} WHERE bucket = ? AND device = ?`)]),
      ) as Record<string, Database.Statement<[number, number]>>,
      deviceByIdx: s.prepare("SELECT device_id FROM devices WHERE idx = ?"),
      probeDevice: s.prepare("SELECT device_id FROM devices ORDER BY device_id = ?, idx LIMIT 1"), // the given one last
      device: s.prepare("SELECT device_id, name, family, channel, name_version, created_at FROM devices WHERE device_id = ?"),
      schedule: s.prepare("SELECT * FROM schedules WHERE id = ?"),
      tombstone: s.prepare("SELECT device_id, version FROM sync_tombstones WHERE kind = ? AND ref = ?"),
      alert: s.prepare("SELECT * FROM alerts WHERE id = ?"),
      oldestOfKind: s.prepare(`SELECT seq, ${ROW_BYTES_SQL} AS bytes FROM sync_outbox WHERE kind = ? ORDER BY seq LIMIT ?`),
      sequence: s.prepare("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sync_outbox'), 0) AS seq"),
      unchecked: s.prepare(`SELECT value FROM meta WHERE key = '${UNCHECKED_KEY}'`),
    };
    this.startSeq = this.sequence();
  }

  /** The highest sequence this database has ever assigned (AUTOINCREMENT never reuses one; a restore rewinds it). */
  sequence(): number {
    return (this.q.sequence.get() as { seq: number }).seq;
  }

  /** Rows numbered above this have not been checked against the cloud's synced_seq yet; null when all have. */
  get uncheckedAfter(): number | null {
    const row = this.q.unchecked.get() as { value: string } | undefined;
    return row ? Number(row.value) : null;
  }

  /**
   * Marks every row this process numbers as unchecked (rows above `startSeq`), unless rows of an earlier process are
   * still unchecked (then the mark stays where it is, lower). Runs when the sync starts, before any row of this process
   * can be committed, so that a crash before the check leaves the mark for the next start.
   */
  async markUnchecked(): Promise<void> {
    await this.committer.write({ sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", params: [UNCHECKED_KEY, String(this.startSeq)] }, { now: true });
  }

  /**
   * Checks the unchecked rows' numbering against the cloud's `synced_seq` (`cloudSeq`), before any of them is sent.
   *
   * The cloud skips every row numbered at or below its synced_seq as already stored. A database restored from a backup
   * has its sequence rewound to the backup's, so the rows it numbers after the restore may carry sequences the cloud
   * has seen (for rows made after the backup and since lost with the replaced database): they would be acked unstored.
   * Rows numbered at or below `after` were numbered before the mark, in the history the cloud saw: the cloud's copy of
   * a sequence there is the same row, so skipping them is right. If the cloud is past `after`, every row above it moves
   * up by `cloudSeq − after`, keeping its order, and the sequence moves past them, so the cloud stores each of them
   * once; otherwise nothing moves. Either way the mark goes, in the same transaction (a crash redoes the whole check).
   */
  async checkSequence(after: number, cloudSeq: number): Promise<SequenceCheck> {
    const shift = Math.max(0, cloudSeq - after);
    const marked = `EXISTS (SELECT 1 FROM meta WHERE key = '${UNCHECKED_KEY}' AND value = ?)`;
    const ops: WriteOp[] = [];
    if (shift > 0) {
      ops.push(
        // Through negative sequences: moving up in place would collide with rows not moved yet.
        { sql: `UPDATE sync_outbox SET seq = -seq WHERE seq > ? AND ${marked}`, params: [after, String(after)] },
        { sql: "UPDATE sync_outbox SET seq = ? - seq WHERE seq < 0", params: [shift] },
        { sql: "INSERT INTO sqlite_sequence (name, seq) SELECT 'sync_outbox', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'sync_outbox')", params: [] },
        { sql: `UPDATE sqlite_sequence SET seq = max(seq + ?, ?) WHERE name = 'sync_outbox' AND ${marked}`, params: [shift, cloudSeq, String(after)] },
        {
          sql: `INSERT INTO meta(key, value) SELECT ?, json_object('at', ?, 'after', ?, 'cloud_seq', ?, 'shift', ?, 'rows', (SELECT count(*) FROM sync_outbox WHERE seq > ?)) WHERE ${marked}
                ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
          params: [RENUMBERED_KEY, this.clock.now(), after, cloudSeq, shift, cloudSeq, String(after)],
        },
      );
    }
    ops.push({ sql: "DELETE FROM meta WHERE key = ? AND value = ?", params: [UNCHECKED_KEY, String(after)] });
    const changes = await this.committer.write(ops, { now: true });
    const rows = shift > 0 ? changes[0]! : 0;
    if (shift > 0) {
      this.renumberings++;
      this.enforcedAtSeq += shift;
    }
    return { after, cloudSeq, shift, rows };
  }

  get enabled(): boolean {
    return this.db.sqlite.prepare("SELECT 1 FROM meta WHERE key = 'sync_enabled'").get() !== undefined;
  }

  /**
   * Turns the outbox on (first start with a cloud): from now on triggers record changes, and what the hub
   * already has is queued once — every device and schedule, daily and hourly rollups, and the 1-minute
   * rollups the outbox's age limit allows.
   */
  async enable(): Promise<void> {
    if (this.enabled) return;
    const since = this.clock.now() - this.opts.maxAgeMs;
    await this.committer.write(
      [
        { sql: "INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'device', device_id, created_at, 56 + length(device_id) FROM devices ORDER BY idx", params: [] },
        { sql: "INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'schedule', id, created_at, 60 + length(id) FROM schedules ORDER BY created_at", params: [] },
        { sql: "INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'rollup_1d', device, bucket, 62 + length(device) FROM rollup_1d ORDER BY bucket, device", params: [] },
        { sql: "INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'rollup_1h', device, bucket, 62 + length(device) FROM rollup_1h ORDER BY bucket, device", params: [] },
        { sql: "INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'rollup_1m', device, bucket, 62 + length(device) FROM rollup_1m WHERE bucket >= ? ORDER BY bucket, device", params: [since] },
        { sql: "INSERT INTO meta(key, value) VALUES ('sync_enabled', '1') ON CONFLICT(key) DO NOTHING", params: [] },
      ],
      { now: true },
    );
    this.log.info(this.stats(), "sync outbox enabled; existing devices, schedules and rollups queued");
  }

  /** Queues a relay change (the bus sees it; no trigger can). */
  addRelay(deviceId: string, relayOn: boolean, ts: number, source: "command" | "schedule" | "plug" | null): void {
    const payload = JSON.stringify({ relay_state: relayOn, source });
    this.committer.submit(this.insertOp("relay", deviceId, ts, payload), (err) => {
      if (err) this.log.warn({ err: err.message, deviceId }, "relay change not queued for the cloud");
    });
  }

  /** Queues a row for config the hub applied from the cloud, so the cloud sees it echoed with its version. */
  insertOp(kind: string, ref: string, ts: number, payload: string | null = null): WriteOp {
    return { sql: "INSERT INTO sync_outbox (kind, ref, ts, payload, bytes) VALUES (?, ?, ?, ?, ?)", params: [kind, ref, ts, payload, outboxRowBytes(kind, ref, payload)] };
  }

  /** Up to `limit` rows after `afterSeq`, oldest first. */
  head(afterSeq: number, limit: number): OutboxRow[] {
    return this.q.head.all(afterSeq, limit) as OutboxRow[];
  }

  /**
   * Up to `limit` rows after `afterSeq`, oldest first, each with its wire row as JSON (null when what it names is
   * gone): what `head` + `materialize` + JSON.stringify give, with rollups — almost all of a catch-up — read in one
   * statement.
   */
  headWire(afterSeq: number, limit: number): { row: OutboxRow; json: string | null }[] {
    const rows = this.q.headWire.all(afterSeq, limit) as (OutboxRow & { json: string | null })[];
    return rows.map(({ json, ...row }) => {
      if (ROLLUP_TABLE[row.kind]) return { row, json };
      const wire = this.materialize(row);
      return { row, json: wire ? JSON.stringify(wire) : null };
    });
  }

  /** The wire row for an outbox row, or null when what it names is gone (a rollup purged by retention). */
  materialize(r: OutboxRow): SyncRow | null {
    const rollup = ROLLUP_TABLE[r.kind];
    if (rollup) {
      const row = this.q.rollup[r.kind]!.get(r.ts, Number(r.ref)) as StoredRollupRow | undefined;
      if (!row) return null;
      const dev = this.q.deviceByIdx.get(row.device) as { device_id: string } | undefined;
      if (!dev) return null;
      return { seq: r.seq, kind: "rollup", point: fromRollupRow(dev.device_id, rollup.level, row) };
    }
    switch (r.kind) {
      case "relay": {
        const p = JSON.parse(r.payload ?? "{}") as { relay_state: boolean; source: "command" | "schedule" | "plug" | null };
        return { seq: r.seq, kind: "relay", device_id: r.ref, ts: r.ts, relay_state: p.relay_state, source: p.source ?? null };
      }
      case "device": {
        const d = this.q.device.get(r.ref) as { device_id: string; name: string; family: string; channel: number; name_version: number; created_at: number } | undefined;
        if (d) return { seq: r.seq, kind: "device", device_id: d.device_id, deleted: false, name: d.name, family: d.family as never, channel: d.channel, version: d.name_version, paired_at: d.created_at };
        const t = this.q.tombstone.get("device", r.ref) as { version: number } | undefined;
        return { seq: r.seq, kind: "device", device_id: r.ref, deleted: true, name: null, family: null, channel: null, version: t?.version ?? 0 };
      }
      case "schedule": {
        const s = this.q.schedule.get(r.ref) as Record<string, unknown> | undefined;
        if (s) return { seq: r.seq, kind: "schedule", schedule_id: r.ref, device_id: String(s.device_id), deleted: false, rule: scheduleRule(s), version: Number(s.version), created_at: Number(s.created_at) };
        const t = this.q.tombstone.get("schedule", r.ref) as { device_id: string; version: number } | undefined;
        if (!t) return null;
        return { seq: r.seq, kind: "schedule", schedule_id: r.ref, device_id: t.device_id, deleted: true, rule: null, version: t.version };
      }
      case "alert": {
        const a = this.q.alert.get(r.ref) as { id: string; device_id: string | null; kind: string; message: string; started_at: number; resolved_at: number | null; acknowledged_at: number | null } | undefined;
        if (!a) return null;
        return {
          seq: r.seq,
          kind: "alert",
          alert_id: a.id,
          device_id: a.device_id,
          alert_kind: a.kind,
          message: a.message,
          started_at: a.started_at,
          resolved_at: a.resolved_at,
          acknowledged_at: a.acknowledged_at,
        };
      }
      default:
        // A row this version does not know how to send: it goes out as is, and the cloud's answer
        // (a 4xx) dead-letters it with its reason instead of blocking the queue.
        return { seq: r.seq, kind: r.kind, ref: r.ref, payload: r.payload } as unknown as SyncRow;
    }
  }

  /**
   * A row the cloud must accept, for the uplink's probe (see Uplink.probe): the current record of the hub's first
   * device other than `avoid` (the refused row's device, whose record may be what is refused), numbered `seq`.
   * That device itself only when it is the hub's only one; null when the hub has no device.
   */
  probeRow(seq: number, avoid: string | null): SyncRow | null {
    const d = this.q.probeDevice.get(avoid ?? "") as { device_id: string } | undefined;
    if (!d) return null;
    return this.materialize({ seq, kind: "device", ref: d.device_id, ts: 0, payload: null, bytes: 0 });
  }

  /** Removes every row up to `seq` (the cloud has stored them). */
  async ack(seq: number): Promise<void> {
    await this.committer.write({ sql: "DELETE FROM sync_outbox WHERE seq <= ?", params: [seq] }, { now: true });
  }

  /** Moves rows the cloud refused out of the queue, with the cloud's reason. */
  async deadLetter(rows: { row: OutboxRow; wire: unknown; reason: string }[]): Promise<void> {
    const now = this.clock.now();
    const ops: WriteOp[] = [];
    for (const r of rows) {
      ops.push({
        sql: "INSERT OR REPLACE INTO sync_dead_letters (seq, kind, ref, row, reason, dead_at) VALUES (?, ?, ?, ?, ?, ?)",
        params: [r.row.seq, r.row.kind, r.row.ref, JSON.stringify(r.wire ?? null).slice(0, 4000), r.reason.slice(0, 500), now],
      });
      ops.push({ sql: "DELETE FROM sync_outbox WHERE seq = ?", params: [r.row.seq] });
    }
    await this.committer.write(ops, { now: true });
    for (const r of rows) this.log.warn({ seq: r.row.seq, kind: r.row.kind, ref: r.row.ref, reason: r.reason }, "outbox row dead-lettered: the cloud refused it");
  }

  /**
   * Whether the outbox grew by at least ENFORCE_ON_GROWTH of its byte budget since limits were last enforced
   * (judged from sequences, which are cheap to read: rows × the size of a rollup row). Checked every few
   * seconds, so a burst of rows (a backfill, a re-fold) is trimmed long before the minute timer.
   */
  grewALot(): boolean {
    const max = (this.q.maxSeq.get() as { seq: number | null }).seq ?? 0;
    return (max - this.enforcedAtSeq) * outboxRowBytes("rollup_1m", "00", null) >= this.opts.maxBytes * ENFORCE_ON_GROWTH;
  }

  /** Enforces the limits when a minute has passed since the last time, or the outbox grew a lot since. */
  maybeEnforceLimits(): Promise<void> {
    const now = this.clock.now();
    if (now - this.enforcedAt >= 60_000 || now < this.enforcedAt || this.grewALot()) return this.enforceLimits();
    return Promise.resolve();
  }

  /** Drops what the age and byte limits no longer allow: aged 1-minute rollups, then the oldest rollups by level. */
  enforceLimits(): Promise<void> {
    // One pass at a time: the growth check and the minute timer may ask together.
    this.enforcing ??= this.enforce().finally(() => (this.enforcing = null));
    return this.enforcing;
  }

  private async enforce(): Promise<void> {
    this.enforcedAtSeq = (this.q.maxSeq.get() as { seq: number | null }).seq ?? 0;
    this.enforcedAt = this.clock.now();
    const cutoff = this.clock.now() - this.opts.maxAgeMs;
    // Counted and deleted on the writer thread: no index covers ts, and a count on the event loop took ~75 ms at
    // 500,000 rows (RELIABILITY fact 6). With nothing aged it changes nothing and writes no page.
    await this.drop("max_age", "kind = 'rollup_1m' AND ts < ?", [cutoff]);
    let { bytes } = this.stats();
    for (const kind of DROPPABLE) {
      while (bytes > this.opts.maxBytes) {
        const victims = this.q.oldestOfKind.all(kind, DROP_SLICE) as { seq: number; bytes: number }[];
        if (victims.length === 0) break;
        let freed = 0;
        let n = 0;
        for (const v of victims) {
          if (bytes - freed <= this.opts.maxBytes) break;
          freed += v.bytes;
          n++;
        }
        await this.drop(`full_${kind}`, "kind = ? AND seq <= ?", [kind, victims[n - 1]!.seq]);
        bytes = this.stats().bytes;
      }
    }
  }

  /** Deletes the rows `where` selects and counts them under `reason`, in one transaction (the count is exact). */
  private async drop(reason: string, where: string, params: (string | number)[]): Promise<void> {
    const now = this.clock.now();
    const [counted, deleted] = await this.committer.write(
      [
        {
          // WHERE before ON CONFLICT: SQLite's upsert after a SELECT needs it; HAVING keeps a zero count out.
          sql: `INSERT INTO sync_drops (reason, n, last_at) SELECT ?, count(*), ? FROM sync_outbox WHERE ${where} HAVING count(*) > 0
                ON CONFLICT(reason) DO UPDATE SET n = n + excluded.n, last_at = excluded.last_at`,
          params: [reason, now, ...params],
        },
        { sql: `DELETE FROM sync_outbox WHERE ${where}`, params },
      ],
      { now: true },
    );
    if (counted) this.log.warn({ reason, n: deleted }, "outbox rows dropped");
  }

  stats(): OutboxStats {
    const t = this.q.totals.get() as { depth: number; bytes: number };
    const oldest = this.q.oldest.get() as { seq: number; queued_at: number } | undefined;
    const dropped: Record<string, number> = {};
    let lastDroppedAt: number | null = null;
    for (const d of this.q.drops.all() as { reason: string; n: number; last_at: number }[]) {
      dropped[d.reason] = d.n;
      lastDroppedAt = Math.max(lastDroppedAt ?? 0, d.last_at);
    }
    return {
      depth: t.depth,
      bytes: t.bytes,
      oldest_seq: oldest?.seq ?? null,
      oldest_queued_at: oldest?.queued_at ?? null,
      dropped,
      last_dropped_at: lastDroppedAt,
      dead_lettered: (this.q.deadCount.get() as { n: number }).n,
    };
  }
}

/** A stored schedule row as the hub's CreateScheduleRequest (what the cloud stores and sends back). */
export function scheduleRule(s: Record<string, unknown>): Record<string, unknown> {
  const common = {
    name: s.name ?? undefined,
    time_zone: s.time_zone,
    enabled: s.enabled === 1,
    reassert_on_boot: s.reassert_on_boot === 1,
  };
  const days = typeof s.days === "string" ? (JSON.parse(s.days) as number[]) : undefined;
  if (s.type === "window") return { type: "window", days, from: s.from_time, to: s.to_time, action: s.action, ...common };
  if (s.type === "weekly") return { type: "weekly", days, at: s.at, action: s.action, ...common };
  return { type: "once", at: s.at, action: s.action, ...common };
}
