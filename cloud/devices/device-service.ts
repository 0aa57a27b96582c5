// Devices and sharing (issue 5 §5). A device belongs to a hub; the hub's owner owns it; a whole hub or a single
// device can be shared as viewer or controller. Every lookup goes through `resolve`, which answers a device the
// caller may not see exactly like one that does not exist (RELIABILITY A10). Reads go through `resolveRef`,
// which may answer from a check of at most `recheckMs` ago (auth/bounded-cache.ts): every change to access this
// process makes (share, unshare, claim, device or hub removal, all on the bus) forgets those answers before its
// request returns; a change made by another cloud process reaches this one within `recheckMs`.
import { randomUUID, type ScryptOptions } from "node:crypto";
import { and, eq, or, sql, type SQL } from "drizzle-orm";
import type { CloudOrm } from "../db/open-db.js";
import { deviceTombstones, deviceUsers, devices, hubUsers, hubs, schedules, users } from "../db/schema.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import { DEVICE_ID_PATTERN } from "../../shared/schemas/common.js";
import type { Device, PlugFamily } from "../../shared/schemas/devices.js";
import type { AccessRole, CloudCreateDeviceRequest, Share, ShareRole } from "../../shared/schemas/cloud.js";
import type { LatestState } from "../../shared/schemas/rollups.js";
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from "../../shared/problem.js";
import { hashSecret, SCRYPT_PLUG } from "../auth/secrets.js";
import { isUniqueViolation } from "../auth/account-service.js";
import { audit, type Actor } from "../audit.js";
import { atLeast, type HubService } from "../hubs/hub-service.js";
import type { CloudBus } from "../bus.js";
import { BoundedCache } from "../auth/bounded-cache.js";

export type DeviceRow = typeof devices.$inferSelect;
export interface DeviceAccess {
  row: DeviceRow;
  role: AccessRole;
}

/** What a read needs to know about a device the caller may see: its keys and the caller's role. */
export interface DeviceRef {
  readonly userId: string;
  /** devices.id, unique across hubs */
  readonly pk: string;
  readonly hubId: string;
  readonly deviceId: string;
  readonly role: AccessRole;
}

/** The latest state a hub reported (GET /devices/{id}/telemetry/latest); `latestAt` null until the first report. */
export interface LatestView {
  readonly deviceId: string;
  readonly latestAt: Date | null;
  readonly voltage: number | null;
  readonly current: number | null;
  readonly power: number | null;
  readonly energyWh: number | null;
  readonly relayOn: boolean | null;
}

/** Default `recheckMs`: the bound on how late another process's access or latest-state change shows here. */
export const DEVICE_RECHECK_MS = 2_000;
/** (user, device) answers and latest states kept at most. */
const DEVICE_CACHE_MAX = 20_000;

/** Where a plug finds its hub's broker, per family (the hub's adapters' `topicFor`). */
const TOPIC: Record<PlugFamily, (id: string) => string> = {
  native: (id) => `smartplug/${id}`,
  tasmota: (id) => id,
  "shelly-gen1": (id) => `shellies/${id}`,
  "shelly-gen2": (id) => id,
};

/** `{hub_id}~{device_id}` names one device when the same hub-local id exists on two of your hubs. */
const QUALIFIED = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})~(.+)$/i;

export class DeviceService {
  /** `${userId}\n${idParam}` → the device that name resolved to for that user. Only answers that found a device. */
  private readonly refs: BoundedCache<string, DeviceRef>;
  /** devices.id → its latest state. */
  private readonly latestStates: BoundedCache<string, LatestView>;
  private latestByPk: ReturnType<DeviceService["prepareLatest"]> | null = null;
  private rowByPk: ReturnType<DeviceService["prepareRow"]> | null = null;

  constructor(
    private readonly db: CloudOrm,
    private readonly hubs: HubService,
    private readonly bus: CloudBus,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: { secretCost?: ScryptOptions; recheckMs?: number },
  ) {
    const cache = { max: DEVICE_CACHE_MAX, ttlMs: opts.recheckMs ?? DEVICE_RECHECK_MS, now: () => clock.now() };
    this.refs = new BoundedCache(cache);
    this.latestStates = new BoundedCache(cache);
    // Bus listeners run synchronously inside emit, which every writer calls after its commit and before it answers.
    bus.on("accessChanged", ({ userIds }) => {
      if (userIds === "*") {
        this.refs.clear();
        this.latestStates.clear();
      } else {
        this.refs.invalidateWhere((r) => userIds.includes(r.userId));
      }
    });
    bus.on("deviceRemoved", ({ devicePk }) => {
      this.refs.invalidateWhere((r) => r.pk === devicePk);
      this.latestStates.invalidate(devicePk);
    });
    bus.on("readingReported", ({ devicePk }) => this.latestStates.invalidate(devicePk));
  }

  private prepareLatest() {
    return this.db
      .select({
        deviceId: devices.deviceId,
        latestAt: devices.latestAt,
        voltage: devices.voltage,
        current: devices.current,
        power: devices.power,
        energyWh: devices.energyWh,
        relayOn: devices.relayOn,
      })
      .from(devices)
      .where(eq(devices.id, sql.placeholder("pk")))
      .limit(1)
      .prepare("device_latest_by_pk");
  }

  /** The role expression for `userId` over devices ⋈ hubs ⟕ hub_users ⟕ device_users. */
  private visible(userId: string) {
    const role = sql<AccessRole | null>`case
      when ${hubs.ownerId} = ${userId} then 'owner'
      when ${hubUsers.role} = 'controller' or ${deviceUsers.role} = 'controller' then 'controller'
      when ${hubUsers.role} = 'viewer' or ${deviceUsers.role} = 'viewer' then 'viewer'
      else null end`;
    const base = (where: SQL | undefined) =>
      this.db
        .select({ row: devices, role })
        .from(devices)
        .innerJoin(hubs, eq(hubs.id, devices.hubId))
        .leftJoin(hubUsers, and(eq(hubUsers.hubId, devices.hubId), eq(hubUsers.userId, userId)))
        .leftJoin(deviceUsers, and(eq(deviceUsers.deviceId, devices.id), eq(deviceUsers.userId, userId)))
        .where(and(or(eq(hubs.ownerId, userId), eq(hubUsers.userId, userId), eq(deviceUsers.userId, userId)), where));
    return base;
  }

  /** The device the caller names, with the caller's role; 404 for a device that is missing or not theirs. */
  async resolve(userId: string, idParam: string): Promise<DeviceAccess> {
    const q = QUALIFIED.exec(idParam);
    const deviceId = q ? q[2]! : idParam;
    const missing = () => new NotFoundError(`no device '${idParam.slice(0, 100)}'`);
    if (!DEVICE_ID_PATTERN.test(deviceId)) throw missing();
    const where = q ? and(eq(devices.deviceId, deviceId), eq(devices.hubId, q[1]!.toLowerCase())) : eq(devices.deviceId, deviceId);
    const rows = await this.visible(userId)(where).limit(10);
    if (rows.length === 0) throw missing();
    if (rows.length > 1) {
      throw new ConflictError(`'${deviceId}' names a device on several of your hubs; use '{hub_id}~${deviceId}'`, {
        candidates: rows.map((r) => `${r.row.hubId}~${r.row.deviceId}`),
      });
    }
    return { row: rows[0]!.row, role: rows[0]!.role ?? "viewer" };
  }

  /**
   * `resolve` for reads: the same answers (404 for missing or not yours, 409 for an ambiguous id), kept for
   * `recheckMs` when a device was found. Writes use `resolve`/`require`, which always ask the database.
   */
  async resolveRef(userId: string, idParam: string): Promise<DeviceRef> {
    const key = `${userId}\n${idParam}`;
    const known = this.refs.get(key);
    if (known) return known;
    const ticket = this.refs.begin();
    const latestTicket = this.latestStates.begin();
    const { row, role } = await this.resolve(userId, idParam);
    const ref: DeviceRef = Object.freeze({ userId, pk: row.id, hubId: row.hubId, deviceId: row.deviceId, role });
    this.refs.fill(key, ref, ticket);
    this.latestStates.fill(row.id, latestView(row), latestTicket);
    return ref;
  }

  private prepareRow() {
    return this.db.select().from(devices).where(eq(devices.id, sql.placeholder("pk"))).limit(1).prepare("device_by_pk");
  }

  /** The current row of a device `resolveRef` found (read each time); 404 (as for a missing device) if it was removed since. */
  async row(ref: DeviceRef, idParam: string): Promise<DeviceRow> {
    this.rowByPk ??= this.prepareRow();
    const [row] = await this.rowByPk.execute({ pk: ref.pk });
    if (!row) throw new NotFoundError(`no device '${idParam.slice(0, 100)}'`);
    return row;
  }

  /** `resolveRef` and `latest` answered from memory alone; undefined when either would ask the database. */
  latestFromMemory(userId: string, idParam: string): LatestView | undefined {
    const ref = this.refs.get(`${userId}\n${idParam}`);
    return ref && this.latestStates.get(ref.pk);
  }

  /** The latest state of a device `resolveRef` found; 404 (as for a missing device) if it was removed since. */
  async latest(ref: DeviceRef, idParam: string): Promise<LatestView> {
    const known = this.latestStates.get(ref.pk);
    if (known) return known;
    const ticket = this.latestStates.begin();
    this.latestByPk ??= this.prepareLatest();
    const [row] = await this.latestByPk.execute({ pk: ref.pk });
    if (!row) throw new NotFoundError(`no device '${idParam.slice(0, 100)}'`);
    this.latestStates.fill(ref.pk, row, ticket);
    return row;
  }

  async require(userId: string, idParam: string, need: AccessRole): Promise<DeviceAccess> {
    const a = await this.resolve(userId, idParam);
    if (!atLeast(a.role, need)) {
      throw new ForbiddenError(need === "owner" ? "only the owner of this device's hub can do this" : "your share of this device does not allow this");
    }
    return a;
  }

  async list(userId: string): Promise<Device[]> {
    const rows = await this.visible(userId)(undefined).orderBy(devices.createdAt, devices.deviceId);
    return rows.map((r) => toDevice(r.row));
  }

  /** Every device the user may see, with the user's role on it (GET /schedules lists theirs). */
  async accessible(userId: string): Promise<DeviceAccess[]> {
    const rows = await this.visible(userId)(undefined);
    return rows.map((r) => ({ row: r.row, role: r.role ?? "viewer" }));
  }

  /** The hub to pair on: `hub_id`, or the one hub the user owns (the seed's body names no hub). */
  private async targetHub(userId: string, hubId: string | undefined): Promise<string> {
    if (hubId) {
      await this.hubs.require(userId, hubId, "owner");
      return hubId;
    }
    const owned = await this.db.select({ id: hubs.id }).from(hubs).where(eq(hubs.ownerId, userId)).orderBy(hubs.createdAt).limit(20);
    if (owned.length === 1) return owned[0]!.id;
    if (owned.length === 0) {
      throw new ValidationError("you own no hub to pair this device on: claim your hub first (POST /hubs/claim)", { errors: [{ path: "hub_id", message: "you own no hub" }] });
    }
    throw new ValidationError("you own several hubs: say which one in hub_id", {
      errors: [{ path: "hub_id", message: "required when you own more than one hub" }],
      hub_ids: owned.map((h) => h.id),
    });
  }

  /**
   * Pairs a plug on a hub from the cloud (issue 6 §5): stored with `pairing_pending` and pushed to the hub as
   * LinkDevicePairing (with the code's scrypt hash, never the code) until the hub's device row confirms it.
   */
  async create(userId: string, req: CloudCreateDeviceRequest, actor: Actor) {
    const hubId = await this.targetHub(userId, req.hub_id);
    const [hub] = await this.db.select().from(hubs).where(eq(hubs.id, hubId)).limit(1);
    if (!hub) throw new NotFoundError(`no hub '${hubId}'`);
    const secretHash = await hashSecret(req.pairing_code, this.opts.secretCost ?? SCRYPT_PLUG);
    // A pairing newer than any deletion of the same id: it is a new device, not the deleted one coming back.
    const [tomb] = await this.db.select({ version: deviceTombstones.version }).from(deviceTombstones).where(and(eq(deviceTombstones.hubId, hub.id), eq(deviceTombstones.deviceId, req.device_id))).limit(1);
    const now = new Date(Math.max(this.clock.now(), (tomb?.version ?? 0) + 1));
    const row: DeviceRow = {
      id: randomUUID(),
      hubId: hub.id,
      deviceId: req.device_id,
      name: req.name,
      family: req.family,
      channel: req.channel,
      secretHash,
      createdAt: now,
      online: false,
      relayOn: null,
      firmware: null,
      lastSeen: null,
      latestAt: null,
      power: null,
      voltage: null,
      current: null,
      energyWh: null,
      nameVersion: now.getTime(),
      namePending: true,
      relayAt: null,
      pairingPending: true,
    };
    try {
      await this.db.transaction(async (tx) => {
        await tx.insert(devices).values(row);
        await tx.delete(deviceTombstones).where(and(eq(deviceTombstones.hubId, hub.id), eq(deviceTombstones.deviceId, row.deviceId)));
        await audit(tx, now, actor, { action: "device.create", targetType: "device", targetId: row.id, detail: { hub_id: hub.id, device_id: row.deviceId } });
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError(`device '${req.device_id}' is already paired on this hub`);
      throw err;
    }
    this.log.info({ hubId: hub.id, deviceId: row.deviceId }, "device created");
    // The same hub-local id on another of the caller's hubs is now ambiguous (409) without its hub.
    this.refs.invalidateWhere((r) => r.deviceId === row.deviceId);
    this.bus.emit("configPending", { hubId: hub.id });
    const topic = TOPIC[req.family](req.device_id);
    return {
      ...toDevice(row),
      mqtt: { host: hub.mqttHost, port: hub.mqttPort, client_id: req.device_id, username: req.device_id, password: req.pairing_code, topic },
    };
  }

  async rename(userId: string, idParam: string, name: string, actor: Actor): Promise<Device> {
    const { row } = await this.require(userId, idParam, "owner");
    const now = new Date(this.clock.now());
    const updated = await this.db.transaction(async (tx) => {
      // A cloud edit is a new version (last writer wins, issue 6), pushed to the hub until it echoes it back.
      const nameVersion = Math.max(now.getTime(), row.nameVersion + 1);
      const [r] = await tx.update(devices).set({ name, nameVersion, namePending: true }).where(eq(devices.id, row.id)).returning();
      await audit(tx, now, actor, { action: "device.rename", targetType: "device", targetId: row.id });
      return r!;
    });
    return toDevice(updated);
  }

  /**
   * Deletes a device here and, through the link, on its hub (issue 6 §5): a tombstone newer than the pairing and
   * every rename is pushed as LinkDeviceRemoved until the hub echoes the deletion, so a hub row for the old
   * pairing never brings it back. Its schedules are deleted with it on both sides.
   */
  async remove(userId: string, idParam: string, actor: Actor): Promise<void> {
    const { row } = await this.require(userId, idParam, "owner");
    const now = new Date(this.clock.now());
    const version = Math.max(now.getTime(), row.nameVersion + 1, row.createdAt.getTime() + 1);
    await this.db.transaction(async (tx) => {
      await tx.delete(devices).where(eq(devices.id, row.id));
      await tx
        .insert(deviceTombstones)
        .values({ hubId: row.hubId, deviceId: row.deviceId, version, pending: true, deletedAt: now })
        .onConflictDoUpdate({ target: [deviceTombstones.hubId, deviceTombstones.deviceId], set: { version: sql`greatest(${deviceTombstones.version}, ${version})`, pending: true, deletedAt: now } });
      await tx
        .update(schedules)
        .set({ deleted: true, rule: null, pending: true, version: sql`greatest(${schedules.version} + 1, ${version})`, updatedAt: now })
        .where(and(eq(schedules.hubId, row.hubId), eq(schedules.deviceId, row.deviceId), eq(schedules.deleted, false)));
      await audit(tx, now, actor, { action: "device.remove", targetType: "device", targetId: row.id, detail: { hub_id: row.hubId, device_id: row.deviceId, version } });
    });
    this.bus.emit("deviceRemoved", { devicePk: row.id, deviceId: row.deviceId });
    this.bus.emit("configPending", { hubId: row.hubId });
  }

  async share(userId: string, idParam: string, target: { id: string; email: string; name: string | null }, role: ShareRole, actor: Actor): Promise<Share> {
    const { row } = await this.require(userId, idParam, "owner");
    if (target.id === userId) throw new ConflictError("you own this device already");
    const now = new Date(this.clock.now());
    await this.db.transaction(async (tx) => {
      await tx
        .insert(deviceUsers)
        .values({ deviceId: row.id, userId: target.id, role, createdAt: now })
        .onConflictDoUpdate({ target: [deviceUsers.deviceId, deviceUsers.userId], set: { role } });
      await audit(tx, now, actor, { action: "device.share", targetType: "share", targetId: row.id, detail: { user_id: target.id, role } });
    });
    this.bus.emit("accessChanged", { userIds: [target.id] }); // the hub link pushes the new access list
    const [s] = await this.db.select().from(deviceUsers).where(and(eq(deviceUsers.deviceId, row.id), eq(deviceUsers.userId, target.id)));
    return { user_id: target.id, email: target.email, name: target.name, role, created_at: (s?.createdAt ?? now).toISOString() };
  }

  async shares(userId: string, idParam: string): Promise<Share[]> {
    const { row } = await this.require(userId, idParam, "owner");
    const rows = await this.db
      .select({ s: deviceUsers, email: users.email, name: users.name })
      .from(deviceUsers)
      .innerJoin(users, eq(users.id, deviceUsers.userId))
      .where(eq(deviceUsers.deviceId, row.id))
      .orderBy(deviceUsers.createdAt);
    return rows.map((r) => ({ user_id: r.s.userId, email: r.email, name: r.name, role: r.s.role, created_at: r.s.createdAt.toISOString() }));
  }

  async unshare(userId: string, idParam: string, targetUserId: string, actor: Actor): Promise<void> {
    const { row } = await this.require(userId, idParam, "owner");
    const now = new Date(this.clock.now());
    const gone = await this.db.transaction(async (tx) => {
      const del = /^[0-9a-f-]{36}$/i.test(targetUserId)
        ? await tx.delete(deviceUsers).where(and(eq(deviceUsers.deviceId, row.id), eq(deviceUsers.userId, targetUserId))).returning({ u: deviceUsers.userId })
        : [];
      if (del.length) await audit(tx, now, actor, { action: "device.unshare", targetType: "share", targetId: row.id, detail: { user_id: targetUserId } });
      return del.length > 0;
    });
    if (!gone) throw new NotFoundError(`device is not shared with '${targetUserId.slice(0, 64)}'`);
    this.bus.emit("accessChanged", { userIds: [targetUserId] });
  }

  /**
   * The latest state a hub reported for one of its devices (the sync issue calls this). Older reports than the
   * stored one are ignored, so a redelivered batch never moves the state backwards.
   */
  async setLatest(hubId: string, s: LatestState): Promise<boolean> {
    const at = new Date(s.ts);
    const [row] = await this.db
      .update(devices)
      .set({
        latestAt: at,
        lastSeen: at,
        power: s.power,
        voltage: s.voltage,
        current: s.current,
        energyWh: s.energy_wh,
        relayOn: s.relay_state,
        ...(s.online !== undefined ? { online: s.online } : {}),
        ...(s.firmware_version !== undefined ? { firmware: s.firmware_version } : {}),
      })
      .where(and(eq(devices.hubId, hubId), eq(devices.deviceId, s.device_id), sql`(${devices.latestAt} is null or ${devices.latestAt} <= ${at})`))
      .returning({ id: devices.id, online: devices.online });
    if (!row) return false;
    this.bus.emit("readingReported", {
      devicePk: row.id,
      deviceId: s.device_id,
      ts: s.ts,
      power: s.power,
      voltage: s.voltage,
      current: s.current,
      energyWh: s.energy_wh,
      relayOn: s.relay_state,
    });
    if (s.online !== undefined) this.bus.emit("deviceStatusChanged", { devicePk: row.id, deviceId: s.device_id, online: s.online, at: s.ts });
    return true;
  }

  /** Internal keys of every device the user may see (for `"*"` WebSocket subscriptions). */
  async visibleKeys(userId: string): Promise<Map<string, string>> {
    const rows = await this.visible(userId)(undefined);
    return new Map(rows.map((r) => [r.row.id, r.row.deviceId]));
  }

  async deviceKey(hubId: string, deviceId: string): Promise<string | null> {
    const [r] = await this.db.select({ id: devices.id }).from(devices).where(and(eq(devices.hubId, hubId), eq(devices.deviceId, deviceId))).limit(1);
    return r?.id ?? null;
  }
}

function latestView(r: DeviceRow): LatestView {
  return { deviceId: r.deviceId, latestAt: r.latestAt, voltage: r.voltage, current: r.current, power: r.power, energyWh: r.energyWh, relayOn: r.relayOn };
}

export function toDevice(r: DeviceRow): Device {
  return {
    device_id: r.deviceId,
    name: r.name,
    family: r.family as PlugFamily,
    channel: r.channel,
    status: r.online ? "online" : "offline",
    relay_state: r.relayOn,
    firmware_version: r.firmware,
    last_seen: r.lastSeen?.toISOString() ?? null,
    power: r.power,
    energy_kwh: r.energyWh === null ? 0 : Math.round(r.energyWh) / 1000,
    created_at: r.createdAt.toISOString(),
  };
}
