// The cloud side of the hub's uplink (issue 6, ARCHITECTURE §3 "hub → cloud data"): a batch of outbox rows is
// validated whole (one bad row → 422 naming it, nothing written, so the hub can bisect and dead-letter), then
// rollups go to InfluxDB (keyed by hub, device and bucket: a rewrite is a no-op, RELIABILITY F2/F8) and
// everything else to the metadata database in one transaction that also moves the hub's `synced_seq`.
// Rows at or below the stored `synced_seq` were applied by an earlier delivery and are skipped, so a batch
// redelivered after a lost response stores nothing twice; config rows follow the conflict rule of
// shared/schemas/sync.ts (higher version wins, the hub's at a tie; deletions are final), as the hub does.
import { randomUUID } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import { Counter } from "prom-client";
import type { CloudOrm } from "../db/open-db.js";
import { alerts, deviceTombstones, devices, hubs, schedules } from "../db/schema.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import { AppError, StorageUnavailableError } from "../../shared/problem.js";
import { SyncBatch, SyncRow, type SyncAck, type SyncRejected } from "../../shared/schemas/sync.js";
import { CreateScheduleRequest } from "../../shared/schemas/schedules.js";
import type { RollupPoint } from "../../shared/schemas/rollups.js";
import type { RollupStore } from "../timeseries/rollup-store.js";
import type { CloudBus } from "../bus.js";
import type { CloudMetrics } from "../metrics.js";

/** 422 with `rejected`: the rows the hub must dead-letter (RELIABILITY F7). */
export class SyncRowsRejectedError extends AppError {
  override readonly status = 422;
  override readonly code = "sync-rows-rejected";
  override readonly title = "Some rows of the batch are invalid";
}

/** InfluxDB is down: "retry later" (503 + Retry-After), the hub backs off and resends the same batch. */
export class SyncStorageUnavailableError extends AppError {
  override readonly status = 503;
  override readonly code = "storage-unavailable";
  override readonly title = "Storage is unavailable";
}

export const SYNC_RETRY_AFTER_S = 10;

type Row = SyncRow;
type Tx = Parameters<Parameters<CloudOrm["transaction"]>[0]>[0];

/** What to emit on the bus once the transaction has committed. */
type Emit = () => void;

export class SyncService {
  private readonly rowsCounter: Counter<"kind">;
  private readonly rejectedCounter: Counter;
  private readonly batchesCounter: Counter<"outcome">;

  constructor(
    private readonly db: CloudOrm,
    private readonly rollups: RollupStore,
    private readonly bus: CloudBus,
    private readonly clock: Clock,
    private readonly log: Logger,
    metrics: CloudMetrics,
  ) {
    this.rowsCounter = new Counter({ name: "cloud_sync_rows_total", help: "outbox rows hubs synced and the cloud stored, by kind (redelivered rows not counted)", labelNames: ["kind"], registers: [metrics.registry] });
    this.rejectedCounter = new Counter({ name: "cloud_sync_rejected_rows_total", help: "outbox rows refused as invalid (422; the hub dead-letters them)", registers: [metrics.registry] });
    this.batchesCounter = new Counter({ name: "cloud_sync_batches_total", help: "sync batches, by outcome", labelNames: ["outcome"], registers: [metrics.registry] });
  }

  /**
   * Validates every row; throws 422 naming each bad one. A query (`{ rows: [], query: "synced_seq" }`, sent by a hub
   * before anything numbered since it started) is returned as "synced_seq": answer it with `syncedSeq`.
   */
  validate(body: unknown): Row[] | "synced_seq" {
    const batch = SyncBatch.safeParse(body);
    if (!batch.success) {
      this.batchesCounter.inc({ outcome: "invalid" });
      const reason = batch.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
      throw new SyncRowsRejectedError(`the batch is not a SyncBatch: ${reason.slice(0, 500)}`, { rejected: [] });
    }
    if (batch.data.query === "synced_seq") return "synced_seq";
    const rows: Row[] = [];
    const rejected: SyncRejected[] = [];
    batch.data.rows.forEach((raw, index) => {
      const seqOf = () => {
        const s = (raw as { seq?: unknown } | null)?.seq;
        return typeof s === "number" && Number.isInteger(s) ? s : -1;
      };
      const r = SyncRow.safeParse(raw);
      if (!r.success) {
        rejected.push({ seq: seqOf(), index, reason: r.error.issues.map((i) => `${i.path.join(".") || "row"}: ${i.message}`).join("; ").slice(0, 300) });
        return;
      }
      // A schedule the hub keeps must be one the hub could have created (CreateScheduleRequest).
      if (r.data.kind === "schedule" && !r.data.deleted) {
        const rule = CreateScheduleRequest.safeParse(r.data.rule);
        if (!rule.success) {
          rejected.push({ seq: r.data.seq, index, reason: `rule: ${rule.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`.slice(0, 300) });
          return;
        }
      }
      rows.push(r.data);
    });
    if (rejected.length) {
      this.rejectedCounter.inc(rejected.length);
      this.batchesCounter.inc({ outcome: "rejected" });
      throw new SyncRowsRejectedError(`${rejected.length} of ${batch.data.rows.length} rows are invalid; nothing was stored`, { rejected });
    }
    return rows;
  }

  /**
   * The highest sequence stored for the hub, for a hub that checks its numbering before it sends (a hub restored from
   * a backup renumbers what it queued since above this, hub/sync/outbox.ts). Reads only; stores nothing.
   */
  async syncedSeq(hubId: string): Promise<SyncAck> {
    const [hub] = await this.db.select({ syncedSeq: hubs.syncedSeq }).from(hubs).where(eq(hubs.id, hubId)).limit(1);
    this.batchesCounter.inc({ outcome: "synced_seq_query" });
    return { acked_seq: 0, stored: 0, synced_seq: hub?.syncedSeq ?? 0 };
  }

  /**
   * Stores the rows above the hub's `synced_seq` and moves it to the highest sequence of the batch. Sequences only
   * have to grow: a hub that renumbered its queue after a restore (a jump ahead) is stored like any other batch.
   */
  async apply(hubId: string, rows: Row[]): Promise<SyncAck> {
    const maxSeq = rows.reduce((m, r) => Math.max(m, r.seq), 0);
    const [hub] = await this.db.select({ syncedSeq: hubs.syncedSeq }).from(hubs).where(eq(hubs.id, hubId)).limit(1);
    const before = hub?.syncedSeq ?? 0;
    const fresh = rows.filter((r) => r.seq > before);

    // Rollups first, outside the transaction: a crash between this write and the commit below is harmless,
    // because the retry rewrites the same points (same series key and timestamp).
    const points: RollupPoint[] = [];
    for (const r of fresh) if (r.kind === "rollup") points.push(r.point);
    if (points.length) {
      try {
        await this.rollups.writeRollups(hubId, points);
      } catch (err) {
        if (!(err instanceof StorageUnavailableError)) throw err;
        this.batchesCounter.inc({ outcome: "storage_unavailable" });
        throw new SyncStorageUnavailableError("the time-series store (InfluxDB) is unavailable; retry the same batch later", { retry_after: SYNC_RETRY_AFTER_S }, { "Retry-After": String(SYNC_RETRY_AFTER_S) });
      }
    }

    const now = this.clock.now();
    const { acked, stored, emits } = await this.db.transaction(async (tx) => {
      // Lock the hub row: two deliveries of the same batch (a retry racing a slow first attempt) apply once.
      const [locked] = await tx.select({ syncedSeq: hubs.syncedSeq }).from(hubs).where(eq(hubs.id, hubId)).for("update").limit(1);
      const floor = locked?.syncedSeq ?? 0;
      const emits: Emit[] = [];
      let stored = 0;
      for (const r of rows) {
        if (r.seq <= floor) continue;
        stored++;
        this.rowsCounter.inc({ kind: r.kind });
        if (r.kind === "rollup") continue;
        if (r.kind === "device") await this.applyDevice(tx, hubId, r, now, emits);
        else if (r.kind === "relay") await this.applyRelay(tx, hubId, r, emits);
        else if (r.kind === "alert") await this.applyAlert(tx, hubId, r, emits);
        else await this.applySchedule(tx, hubId, r, now, emits);
      }
      const acked = Math.max(floor, maxSeq);
      const at = new Date(now);
      await tx.update(hubs).set({ syncedSeq: acked, lastSyncAt: at, lastSeen: at }).where(eq(hubs.id, hubId));
      return { acked, stored, emits };
    });
    for (const e of emits) e();
    this.batchesCounter.inc({ outcome: "stored" });
    this.log.debug({ hubId, rows: rows.length, stored, acked }, "sync batch stored");
    return { acked_seq: acked, stored };
  }

  /**
   * A device row from the hub, by the conflict rule (shared/schemas/sync.ts, issue 6 §5). A deletion removes every
   * pairing not newer than it and is final against renames. A live row for a pairing the cloud deleted means the
   * hub is behind (the deletion is pushed again) unless that pairing is newer than the deletion: then it is a new
   * device. Between names the higher version wins, and the hub's at equal versions; a hub version at least the
   * cloud's means the hub has seen the cloud's edit, so nothing is owed.
   */
  private async applyDevice(tx: Tx, hubId: string, r: Extract<Row, { kind: "device" }>, now: number, emits: Emit[]) {
    const at = new Date(now);
    const byId = and(eq(devices.hubId, hubId), eq(devices.deviceId, r.device_id));
    const tombById = and(eq(deviceTombstones.hubId, hubId), eq(deviceTombstones.deviceId, r.device_id));
    const [existing] = await tx.select().from(devices).where(byId).for("update").limit(1);
    if (r.deleted) {
      // A pairing made in the cloud after this deletion (not yet on the hub) is not the device the hub deleted.
      // Any other device here is one the hub had: its deletion stands (hub rows are read when sent, never stale).
      if (existing && existing.pairingPending && existing.createdAt.getTime() > r.version) return;
      if (existing) {
        await tx.delete(devices).where(eq(devices.id, existing.id));
        emits.push(() => this.bus.emit("deviceRemoved", { devicePk: existing.id, deviceId: r.device_id }));
      }
      await tx
        .insert(deviceTombstones)
        .values({ hubId, deviceId: r.device_id, version: r.version, pending: false, deletedAt: at })
        .onConflictDoUpdate({ target: [deviceTombstones.hubId, deviceTombstones.deviceId], set: { version: sql`greatest(${deviceTombstones.version}, ${r.version})`, pending: false } });
      // The device's schedules on the hub went with it.
      await tx.update(schedules).set({ deleted: true, rule: null, pending: false, updatedAt: at }).where(and(eq(schedules.hubId, hubId), eq(schedules.deviceId, r.device_id)));
      return;
    }
    const pairedAt = r.paired_at ?? null;
    if (!existing) {
      const [tomb] = await tx.select().from(deviceTombstones).where(tombById).for("update").limit(1);
      if (tomb && (pairedAt === null || pairedAt <= tomb.version)) {
        // Deleted here, and the hub still has that pairing: the deletion stands and goes to the hub again.
        if (!tomb.pending) {
          await tx.update(deviceTombstones).set({ pending: true }).where(tombById);
          emits.push(() => this.bus.emit("configPending", { hubId }));
        }
        return;
      }
      if (tomb) await tx.delete(deviceTombstones).where(tombById);
      await tx.insert(devices).values({
        id: randomUUID(),
        hubId,
        deviceId: r.device_id,
        name: r.name ?? r.device_id,
        family: r.family ?? "native",
        channel: r.channel ?? 0,
        secretHash: null,
        createdAt: new Date(pairedAt ?? now),
        nameVersion: r.version,
        namePending: false,
      });
      return;
    }
    // The hub still has an older pairing of this id: the cloud's newer one replaces it once the hub applies it.
    if (existing.pairingPending && pairedAt !== null && pairedAt < existing.createdAt.getTime()) return;
    const set: Partial<typeof devices.$inferInsert> = {};
    if (r.family !== null && r.family !== existing.family) set.family = r.family;
    if (r.channel !== null && r.channel !== existing.channel) set.channel = r.channel;
    if (pairedAt !== null && pairedAt !== existing.createdAt.getTime()) set.createdAt = new Date(pairedAt);
    // The hub has the device: the pairing is delivered, and the cloud forgets the code's hash.
    if (existing.pairingPending) {
      set.pairingPending = false;
      set.secretHash = null;
    }
    if (r.name !== null && r.version >= existing.nameVersion) {
      if (r.name !== existing.name || r.version !== existing.nameVersion) {
        set.name = r.name;
        set.nameVersion = r.version;
      }
      if (existing.namePending) set.namePending = false;
    }
    if (Object.keys(set).length) await tx.update(devices).set(set).where(eq(devices.id, existing.id));
  }

  private async applyRelay(tx: Tx, hubId: string, r: Extract<Row, { kind: "relay" }>, emits: Emit[]) {
    const at = new Date(r.ts);
    // Not older than the stored state (from an earlier relay row or the live link's LinkState).
    const [d] = await tx
      .update(devices)
      .set({ relayOn: r.relay_state, relayAt: r.ts })
      .where(
        and(
          eq(devices.hubId, hubId),
          eq(devices.deviceId, r.device_id),
          sql`(${devices.relayAt} is null or ${devices.relayAt} <= ${r.ts})`,
          sql`(${devices.latestAt} is null or ${devices.latestAt} <= ${at})`,
        ),
      )
      .returning();
    if (!d) return;
    emits.push(() =>
      this.bus.emit("readingReported", { devicePk: d.id, deviceId: d.deviceId, ts: r.ts, power: d.power, voltage: d.voltage, current: d.current, energyWh: d.energyWh, relayOn: r.relay_state }),
    );
  }

  private async applyAlert(tx: Tx, hubId: string, r: Extract<Row, { kind: "alert" }>, emits: Emit[]) {
    // Issue 5 §8: /ws pushes alerts to whoever may see the device, once the batch has committed.
    const [d] = r.device_id === null ? [] : await tx.select({ id: devices.id }).from(devices).where(and(eq(devices.hubId, hubId), eq(devices.deviceId, r.device_id))).limit(1);
    const alert = { id: r.alert_id, device_id: r.device_id, kind: r.alert_kind, message: r.message, started_at: r.started_at, resolved_at: r.resolved_at, acknowledged_at: r.acknowledged_at };
    emits.push(() => this.bus.emit("alertChanged", { hubId, devicePk: d?.id ?? null, alert }));
    const v = {
      deviceId: r.device_id,
      kind: r.alert_kind,
      message: r.message,
      startedAt: new Date(r.started_at),
      resolvedAt: r.resolved_at === null ? null : new Date(r.resolved_at),
      acknowledgedAt: r.acknowledged_at === null ? null : new Date(r.acknowledged_at),
    };
    await tx
      .insert(alerts)
      .values({ hubId, alertId: r.alert_id, ...v })
      .onConflictDoUpdate({ target: [alerts.hubId, alerts.alertId], set: v });
  }

  /**
   * A schedule row from the hub, by the conflict rule (shared/schemas/sync.ts): a deletion is final on either side;
   * between two edits the higher version wins, and the hub's at equal versions. A hub version at least the cloud's
   * means the hub has seen the cloud's edit, so nothing is owed; a live row for a schedule deleted here means the
   * hub is behind, and the deletion is pushed again.
   */
  private async applySchedule(tx: Tx, hubId: string, r: Extract<Row, { kind: "schedule" }>, now: number, emits: Emit[]) {
    const at = new Date(now);
    const where = and(eq(schedules.hubId, hubId), eq(schedules.id, r.schedule_id));
    const createdAt = r.created_at === undefined ? {} : { createdAt: new Date(r.created_at) };
    const [existing] = await tx.select().from(schedules).where(where).for("update").limit(1);
    if (!existing) {
      await tx.insert(schedules).values({ hubId, id: r.schedule_id, deviceId: r.device_id, rule: r.deleted ? null : r.rule, version: r.version, deleted: r.deleted, pending: false, createdAt: at, updatedAt: at, ...createdAt });
      return;
    }
    if (r.deleted) {
      await tx.update(schedules).set({ deleted: true, rule: null, version: Math.max(r.version, existing.version), pending: false, updatedAt: at }).where(where);
      return;
    }
    if (existing.deleted) {
      if (!existing.pending) {
        await tx.update(schedules).set({ pending: true }).where(where);
        emits.push(() => this.bus.emit("configPending", { hubId }));
      }
      return;
    }
    if (r.version >= existing.version) {
      await tx.update(schedules).set({ deviceId: r.device_id, rule: r.rule, version: r.version, pending: false, updatedAt: at, ...createdAt }).where(where);
    }
  }
}
