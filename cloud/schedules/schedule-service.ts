// Schedules in the cloud (issue 6 §5): the hub's schedule API with the same paths and shapes (ARCHITECTURE §5),
// on the copy the hubs sync up. The hub runs schedules; the cloud stores edits made here as a new version
// (ms at the edit, strictly greater than the stored one), marks them pending and pushes them over the link
// until the hub echoes that version back in its outbox (cloud/link/link-server.ts). Conflicts resolve by the
// rule in shared/schemas/sync.ts, applied to hub rows in cloud/sync/sync-service.ts.
import { randomUUID } from "node:crypto";
import { and, asc, eq, inArray, or, type SQL } from "drizzle-orm";
import type { CloudOrm } from "../db/open-db.js";
import { schedules } from "../db/schema.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import { ForbiddenError, NotFoundError } from "../../shared/problem.js";
import { CreateScheduleRequest, type Schedule } from "../../shared/schemas/schedules.js";
import type { AccessRole } from "../../shared/schemas/cloud.js";
import { nextEdge, type RuleSpec } from "../../shared/schedule-math.js";
import { audit, type Actor } from "../audit.js";
import type { CloudBus } from "../bus.js";
import type { DeviceRow, DeviceService } from "../devices/device-service.js";
import { atLeast, type HubService } from "../hubs/hub-service.js";

export type ScheduleRow = typeof schedules.$inferSelect;

/** A schedule the caller may see, with their role on its device. */
export interface ScheduleAccess {
  row: ScheduleRow;
  role: AccessRole;
}

export class ScheduleService {
  constructor(
    private readonly db: CloudOrm,
    private readonly devices: DeviceService,
    private readonly hubs: HubService,
    private readonly bus: CloudBus,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Every live schedule on the devices the user may see, oldest first (the hub's order). */
  async list(userId: string): Promise<Schedule[]> {
    const byHub = new Map<string, string[]>();
    for (const a of await this.devices.accessible(userId)) byHub.set(a.row.hubId, [...(byHub.get(a.row.hubId) ?? []), a.row.deviceId]);
    if (byHub.size === 0) return [];
    const scope: SQL[] = [...byHub].map(([hubId, ids]) => and(eq(schedules.hubId, hubId), inArray(schedules.deviceId, ids))!);
    const rows = await this.db
      .select()
      .from(schedules)
      .where(and(eq(schedules.deleted, false), or(...scope)))
      .orderBy(asc(schedules.createdAt), asc(schedules.id));
    return rows.map((r) => this.toSchedule(r));
  }

  async listForDevice(device: DeviceRow): Promise<Schedule[]> {
    const rows = await this.db
      .select()
      .from(schedules)
      .where(and(eq(schedules.hubId, device.hubId), eq(schedules.deviceId, device.deviceId), eq(schedules.deleted, false)))
      .orderBy(asc(schedules.createdAt), asc(schedules.id));
    return rows.map((r) => this.toSchedule(r));
  }

  /** The schedule `sid` with the caller's role; 404 like a missing one when its device is not theirs (A10). */
  async resolve(userId: string, sid: string): Promise<ScheduleAccess> {
    const missing = () => new NotFoundError(`no schedule '${sid.slice(0, 64)}'`);
    if (sid.length > 64) throw missing();
    const rows = await this.db.select().from(schedules).where(and(eq(schedules.id, sid), eq(schedules.deleted, false))).limit(10);
    for (const row of rows) {
      try {
        const d = await this.devices.resolve(userId, `${row.hubId}~${row.deviceId}`);
        return { row, role: d.role };
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    throw missing();
  }

  async require(userId: string, sid: string, need: AccessRole): Promise<ScheduleAccess> {
    const a = await this.resolve(userId, sid);
    if (!atLeast(a.role, need)) throw new ForbiddenError("your share of this device does not allow this");
    return a;
  }

  get(a: ScheduleAccess): Schedule {
    return this.toSchedule(a.row);
  }

  /** A new schedule on a device (the caller's role checked by the route), pending until the hub echoes it. */
  async create(device: DeviceRow, req: CreateScheduleRequest, actor: Actor): Promise<Schedule> {
    const { timeZone } = await this.hubs.settings(device.hubId);
    const now = new Date(this.clock.now());
    const row: ScheduleRow = {
      hubId: device.hubId,
      id: randomUUID(),
      deviceId: device.deviceId,
      rule: storedRule(req, timeZone),
      version: now.getTime(),
      deleted: false,
      pending: true,
      createdAt: now,
      updatedAt: now,
    };
    await this.db.transaction(async (tx) => {
      await tx.insert(schedules).values(row);
      await audit(tx, now, actor, { action: "schedule.create", targetType: "schedule", targetId: row.id, detail: { hub_id: row.hubId, device_id: row.deviceId, version: row.version } });
    });
    this.log.info({ hubId: row.hubId, deviceId: row.deviceId, scheduleId: row.id }, "schedule created in the cloud");
    this.bus.emit("configPending", { hubId: row.hubId });
    return this.toSchedule(row);
  }

  /** Rename, enable/disable (UpdateScheduleRequest): a new version of the whole rule. */
  async update(a: ScheduleAccess, patch: { name?: string; enabled?: boolean; reassert_on_boot?: boolean }, actor: Actor): Promise<Schedule> {
    const row = await this.edit(a.row, actor, "schedule.update", (current) => {
      const rule = { ...(current.rule ?? {}) };
      for (const [k, v] of Object.entries(patch)) if (v !== undefined) rule[k] = v;
      return { rule };
    });
    return this.toSchedule(row);
  }

  /** Deletes a schedule; the deletion is final on both sides (shared/schemas/sync.ts). */
  async remove(a: ScheduleAccess, actor: Actor): Promise<void> {
    await this.edit(a.row, actor, "schedule.delete", () => ({ rule: null, deleted: true }));
  }

  /** One cloud edit: under a row lock, a version strictly greater than the stored one, pending, audited. */
  private async edit(row: ScheduleRow, actor: Actor, action: string, change: (current: ScheduleRow) => Partial<ScheduleRow>): Promise<ScheduleRow> {
    const now = new Date(this.clock.now());
    const updated = await this.db.transaction(async (tx) => {
      const where = and(eq(schedules.hubId, row.hubId), eq(schedules.id, row.id));
      const [current] = await tx.select().from(schedules).where(where).for("update").limit(1);
      // Deleted meanwhile (by the hub's sync or another request): gone, like any missing schedule.
      if (!current || current.deleted) throw new NotFoundError(`no schedule '${row.id}'`);
      const version = Math.max(now.getTime(), current.version + 1);
      const [r] = await tx
        .update(schedules)
        .set({ ...change(current), version, pending: true, updatedAt: now })
        .where(where)
        .returning();
      await audit(tx, now, actor, { action, targetType: "schedule", targetId: row.id, detail: { hub_id: row.hubId, device_id: row.deviceId, version } });
      return r!;
    });
    this.log.info({ hubId: row.hubId, scheduleId: row.id, version: updated.version, action }, "schedule edited in the cloud");
    this.bus.emit("configPending", { hubId: row.hubId });
    return updated;
  }

  /** The hub's Schedule shape; `next_run` from the same shared/schedule-math.ts the hub runs. */
  private toSchedule(s: ScheduleRow): Schedule {
    const r = CreateScheduleRequest.parse(s.rule);
    const days = r.type === "once" ? null : [...r.days].sort((a, b) => a - b);
    const at = r.type === "window" ? null : r.at;
    const from = r.type === "window" ? r.from : null;
    const to = r.type === "window" ? r.to : null;
    const timeZone = r.time_zone ?? "UTC";
    const spec: RuleSpec = { id: s.id, type: r.type, days, at, from, to, action: r.action, timeZone, enabled: r.enabled, createdAt: s.createdAt.getTime() };
    const next = nextEdge(spec, this.clock.now());
    return {
      id: s.id,
      device_id: s.deviceId,
      type: r.type,
      name: r.name ?? null,
      days,
      at,
      from,
      to,
      action: r.action,
      time_zone: timeZone,
      enabled: r.enabled,
      reassert_on_boot: r.reassert_on_boot,
      next_run: next ? new Date(next.ts).toISOString() : null,
      created_at: s.createdAt.toISOString(),
    };
  }
}

/** A request as the hub stores it and syncs it back (hub/sync/outbox.ts scheduleRule): sorted days, a time zone. */
function storedRule(req: CreateScheduleRequest, hubTimeZone: string): Record<string, unknown> {
  const rule: Record<string, unknown> = { ...req, time_zone: req.time_zone ?? hubTimeZone };
  if (req.type !== "once") rule.days = [...req.days].sort((a, b) => a - b);
  if (req.name === undefined) delete rule.name;
  return rule;
}
