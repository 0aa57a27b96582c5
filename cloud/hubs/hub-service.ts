// Hubs (issue 5 §4): a hub registers itself and gets its own credential; its owner claims it with a short-lived,
// single-use, rate-limited claim code the hub shows locally (RELIABILITY A17). Hubs are listed, renamed,
// removed and shared; a hub's owner owns every device on it.
import { randomBytes, randomInt, randomUUID } from "node:crypto";
import { and, count, eq, or, sql } from "drizzle-orm";
import type { CloudOrm } from "../db/open-db.js";
import { devices, hubUsers, hubs, users } from "../db/schema.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { Tariff } from "../../shared/schemas/energy.js";
import type { Hub, HubCredential, RegisterHubRequest, Share, ShareRole, AccessRole } from "../../shared/schemas/cloud.js";
import { AppError, ConflictError, ForbiddenError, NotFoundError, TooManyRequestsError, UnauthorizedError } from "../../shared/problem.js";
import { sameDigest, sha256 } from "../auth/secrets.js";
import { KeyedBuckets } from "../auth/rate-limit.js";
import { audit, type Actor } from "../audit.js";
import type { HubLink } from "../link/hub-link.js";
import type { CloudBus } from "../bus.js";

export class GoneError extends AppError {
  override readonly status = 410;
  override readonly code = "gone";
  override readonly title = "Gone";
}

/** Crockford base32 without I, L, O, U: unambiguous when read off a hub's screen. */
const CLAIM_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** 10 symbols × 5 bits = 50 bits (A17 asks for ≥ 40). */
const CLAIM_SYMBOLS = 10;

export function newClaimCode(): string {
  let s = "";
  for (let i = 0; i < CLAIM_SYMBOLS; i++) s += CLAIM_ALPHABET[randomInt(CLAIM_ALPHABET.length)];
  return `${s.slice(0, 5)}-${s.slice(5)}`;
}

/** Accepts what a person types: any case, spaces or dashes, and the look-alikes O→0, I/L→1. */
export function normalizeClaimCode(input: string): string | null {
  const s = input.toUpperCase().replace(/[\s-]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
  if (s.length !== CLAIM_SYMBOLS || [...s].some((c) => !CLAIM_ALPHABET.includes(c))) return null;
  return `${s.slice(0, 5)}-${s.slice(5)}`;
}

export interface HubServiceOptions {
  claimTtlSec: number;
  /** Failed claims allowed per user and per address in a burst, then one per `claimRefillSec`. */
  claimBurst: number;
  claimRefillSec: number;
}

export interface HubAccess {
  hubId: string;
  role: AccessRole;
}

const ROLE_RANK: Record<AccessRole, number> = { viewer: 1, controller: 2, owner: 3 };
export const atLeast = (role: AccessRole, need: AccessRole) => ROLE_RANK[role] >= ROLE_RANK[need];

export class HubService {
  private readonly claimFailuresByUser: KeyedBuckets;
  private readonly claimFailuresByIp: KeyedBuckets;

  constructor(
    private readonly db: CloudOrm,
    private readonly link: HubLink,
    private readonly bus: CloudBus,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: HubServiceOptions,
  ) {
    this.claimFailuresByUser = new KeyedBuckets(1 / opts.claimRefillSec, opts.claimBurst);
    this.claimFailuresByIp = new KeyedBuckets(1 / opts.claimRefillSec, opts.claimBurst);
  }

  async register(req: RegisterHubRequest, actor: Actor): Promise<HubCredential> {
    const now = this.clock.now();
    const id = randomUUID();
    const secret = randomBytes(32).toString("base64url");
    const code = newClaimCode();
    const expires = new Date(now + this.opts.claimTtlSec * 1000);
    await this.db.transaction(async (tx) => {
      await tx.insert(hubs).values({
        id,
        name: req.name,
        secretHash: sha256(secret),
        ownerId: null,
        mqttHost: req.mqtt_host,
        mqttPort: req.mqtt_port,
        timeZone: req.time_zone,
        claimCodeHash: sha256(code),
        claimExpiresAt: expires,
        createdAt: new Date(now),
        lastSeen: new Date(now),
      });
      await audit(tx, new Date(now), { ...actor, hubId: id }, { action: "hub.register", targetType: "hub", targetId: id });
    });
    this.log.info({ hubId: id }, "hub registered");
    return { hub_id: id, hub_secret: secret, claim_code: code, claim_expires_at: expires.toISOString() };
  }

  /** Checks a hub's own credential (`Authorization: Basic base64(hub_id:hub_secret)`); the same answer for every failure. */
  async authenticateHub(hubId: string, secret: string): Promise<string> {
    const [row] = /^[0-9a-f-]{36}$/i.test(hubId) ? await this.db.select({ id: hubs.id, secretHash: hubs.secretHash }).from(hubs).where(eq(hubs.id, hubId)).limit(1) : [];
    const given = sha256(secret);
    if (!row || !sameDigest(given, row.secretHash)) throw new UnauthorizedError("hub credential is invalid");
    return row.id;
  }

  /** A fresh claim code for the hub to show (the previous one stops working). */
  async newClaimCode(hubId: string, actor: Actor): Promise<{ claim_code: string; claim_expires_at: string }> {
    const now = this.clock.now();
    const code = newClaimCode();
    const expires = new Date(now + this.opts.claimTtlSec * 1000);
    await this.db.transaction(async (tx) => {
      await tx.update(hubs).set({ claimCodeHash: sha256(code), claimExpiresAt: expires, claimUsedAt: null, lastSeen: new Date(now) }).where(eq(hubs.id, hubId));
      await audit(tx, new Date(now), { ...actor, hubId }, { action: "hub.claim_code", targetType: "hub", targetId: hubId });
    });
    return { claim_code: code, claim_expires_at: expires.toISOString() };
  }

  /**
   * A17: unknown codes are 404, consumed or expired ones 410, a hub that already has an owner 409; every
   * failure takes a token from the user's and the address's bucket, and an empty bucket answers 429.
   */
  async claim(userId: string, input: string, actor: Actor): Promise<Hub> {
    const now = this.clock.now();
    const ip = actor.ip ?? "?";
    if (!this.claimFailuresByUser.has(userId, now) || !this.claimFailuresByIp.has(ip, now)) {
      throw new TooManyRequestsError(this.opts.claimRefillSec, "too many failed claims; try again later");
    }
    const fail = (e: AppError) => {
      this.claimFailuresByUser.take(userId, now);
      this.claimFailuresByIp.take(ip, now);
      return e;
    };
    const code = normalizeClaimCode(input);
    if (!code) throw fail(new NotFoundError("no hub shows this claim code"));
    const hash = sha256(code);
    const result = await this.db.transaction(async (tx) => {
      const [row] = await tx.select().from(hubs).where(eq(hubs.claimCodeHash, hash)).for("update").limit(1);
      if (!row) return { err: new NotFoundError("no hub shows this claim code") };
      if (row.claimUsedAt !== null) return { err: new GoneError("this claim code was already used") };
      if (!row.claimExpiresAt || row.claimExpiresAt.getTime() <= now) return { err: new GoneError("this claim code has expired; ask the hub for a new one") };
      if (row.ownerId !== null) return { err: new ConflictError("this hub already has an owner; the owner must remove it first") };
      const at = new Date(now);
      await tx.update(hubs).set({ ownerId: userId, claimUsedAt: at, claimedAt: at }).where(eq(hubs.id, row.id));
      await audit(tx, at, actor, { action: "hub.claim", targetType: "hub", targetId: row.id });
      return { hubId: row.id };
    });
    if ("err" in result) throw fail(result.err!);
    this.log.info({ hubId: result.hubId, userId }, "hub claimed");
    this.bus.emit("accessChanged", { userIds: [userId] });
    return this.get(userId, result.hubId);
  }

  /** The caller's role on a hub, or 404 exactly like a hub that does not exist (A10). */
  async access(userId: string, hubId: string): Promise<HubAccess> {
    if (!/^[0-9a-f-]{36}$/i.test(hubId)) throw new NotFoundError(`no hub '${hubId.slice(0, 64)}'`);
    const [row] = await this.db
      .select({ ownerId: hubs.ownerId, shared: hubUsers.role })
      .from(hubs)
      .leftJoin(hubUsers, and(eq(hubUsers.hubId, hubs.id), eq(hubUsers.userId, userId)))
      .where(eq(hubs.id, hubId))
      .limit(1);
    if (row?.ownerId === userId) return { hubId, role: "owner" };
    if (row?.shared) return { hubId, role: row.shared };
    throw new NotFoundError(`no hub '${hubId}'`);
  }

  async require(userId: string, hubId: string, need: AccessRole): Promise<HubAccess> {
    const a = await this.access(userId, hubId);
    if (!atLeast(a.role, need)) throw new ForbiddenError(need === "owner" ? "only the hub's owner can do this" : "your share of this hub does not allow this");
    return a;
  }

  async list(userId: string): Promise<Hub[]> {
    const rows = await this.db
      .select({
        hub: hubs,
        shared: hubUsers.role,
        deviceCount: sql<number>`(select count(*) from ${devices} where ${devices.hubId} = ${hubs.id})::int`,
      })
      .from(hubs)
      .leftJoin(hubUsers, and(eq(hubUsers.hubId, hubs.id), eq(hubUsers.userId, userId)))
      .where(or(eq(hubs.ownerId, userId), eq(hubUsers.userId, userId)))
      .orderBy(hubs.createdAt, hubs.id);
    return rows.map((r) => this.toHub(r.hub, r.hub.ownerId === userId ? "owner" : (r.shared ?? "viewer"), Number(r.deviceCount)));
  }

  async get(userId: string, hubId: string): Promise<Hub> {
    const a = await this.access(userId, hubId);
    const [row] = await this.db.select().from(hubs).where(eq(hubs.id, hubId)).limit(1);
    if (!row) throw new NotFoundError(`no hub '${hubId}'`);
    const [c] = await this.db.select({ n: count() }).from(devices).where(eq(devices.hubId, hubId));
    return this.toHub(row, a.role, Number(c?.n ?? 0));
  }

  async rename(userId: string, hubId: string, name: string, actor: Actor): Promise<Hub> {
    await this.require(userId, hubId, "owner");
    const now = new Date(this.clock.now());
    await this.db.transaction(async (tx) => {
      await tx.update(hubs).set({ name }).where(eq(hubs.id, hubId));
      await audit(tx, now, actor, { action: "hub.rename", targetType: "hub", targetId: hubId });
    });
    return this.get(userId, hubId);
  }

  /** Removes the hub with its devices, shares and commands; its credential stops working. */
  async remove(userId: string, hubId: string, actor: Actor): Promise<void> {
    await this.require(userId, hubId, "owner");
    const now = new Date(this.clock.now());
    await this.db.transaction(async (tx) => {
      await tx.delete(hubs).where(eq(hubs.id, hubId));
      await audit(tx, now, actor, { action: "hub.remove", targetType: "hub", targetId: hubId });
    });
    this.log.info({ hubId }, "hub removed");
    this.bus.emit("accessChanged", { userIds: "*" });
  }

  async share(userId: string, hubId: string, target: { id: string; email: string; name: string | null }, role: ShareRole, actor: Actor): Promise<Share> {
    await this.require(userId, hubId, "owner");
    if (target.id === userId) throw new ConflictError("you own this hub already");
    const now = new Date(this.clock.now());
    await this.db.transaction(async (tx) => {
      await tx
        .insert(hubUsers)
        .values({ hubId, userId: target.id, role, createdAt: now })
        .onConflictDoUpdate({ target: [hubUsers.hubId, hubUsers.userId], set: { role } });
      await audit(tx, now, actor, { action: "hub.share", targetType: "share", targetId: hubId, detail: { user_id: target.id, role } });
    });
    this.bus.emit("accessChanged", { userIds: [target.id] }); // the hub link pushes the new access list
    const [row] = await this.db.select().from(hubUsers).where(and(eq(hubUsers.hubId, hubId), eq(hubUsers.userId, target.id)));
    return { user_id: target.id, email: target.email, name: target.name, role, created_at: (row?.createdAt ?? now).toISOString() };
  }

  async shares(userId: string, hubId: string): Promise<Share[]> {
    await this.require(userId, hubId, "owner");
    const rows = await this.db
      .select({ s: hubUsers, email: users.email, name: users.name })
      .from(hubUsers)
      .innerJoin(users, eq(users.id, hubUsers.userId))
      .where(eq(hubUsers.hubId, hubId))
      .orderBy(hubUsers.createdAt);
    return rows.map((r) => ({ user_id: r.s.userId, email: r.email, name: r.name, role: r.s.role, created_at: r.s.createdAt.toISOString() }));
  }

  async unshare(userId: string, hubId: string, targetUserId: string, actor: Actor): Promise<void> {
    await this.require(userId, hubId, "owner");
    const now = new Date(this.clock.now());
    const gone = await this.db.transaction(async (tx) => {
      const del = /^[0-9a-f-]{36}$/i.test(targetUserId)
        ? await tx.delete(hubUsers).where(and(eq(hubUsers.hubId, hubId), eq(hubUsers.userId, targetUserId))).returning({ u: hubUsers.userId })
        : [];
      if (del.length) await audit(tx, now, actor, { action: "hub.unshare", targetType: "share", targetId: hubId, detail: { user_id: targetUserId } });
      return del.length > 0;
    });
    if (!gone) throw new NotFoundError(`hub is not shared with '${targetUserId.slice(0, 64)}'`);
    this.bus.emit("accessChanged", { userIds: [targetUserId] });
  }

  /** The hub's tariff and time zone (viewers may read them: they see the costs). */
  async tariff(userId: string, hubId: string): Promise<{ tariff: Tariff | null; timeZone: string }> {
    await this.access(userId, hubId);
    return this.settings(hubId);
  }

  /** Tariff and time zone without an access check: for callers that authorized a device of this hub. */
  async settings(hubId: string): Promise<{ tariff: Tariff | null; timeZone: string }> {
    const [row] = await this.db.select({ tariff: hubs.tariff, timeZone: hubs.timeZone }).from(hubs).where(eq(hubs.id, hubId)).limit(1);
    if (!row) throw new NotFoundError(`no hub '${hubId}'`);
    return { tariff: row.tariff ?? null, timeZone: row.timeZone };
  }

  async setTariff(userId: string, hubId: string, tariff: Tariff, actor: Actor): Promise<Tariff> {
    await this.require(userId, hubId, "owner");
    const now = new Date(this.clock.now());
    await this.db.transaction(async (tx) => {
      await tx.update(hubs).set({ tariff }).where(eq(hubs.id, hubId));
      await audit(tx, now, actor, { action: "hub.tariff", targetType: "hub", targetId: hubId });
    });
    return tariff;
  }

  private toHub(r: typeof hubs.$inferSelect, role: AccessRole, deviceCount: number): Hub {
    return {
      hub_id: r.id,
      name: r.name,
      role,
      link: this.link.isConnected(r.id) ? "connected" : "disconnected",
      last_seen: r.lastSeen?.toISOString() ?? null,
      device_count: deviceCount,
      time_zone: r.timeZone,
      created_at: r.createdAt.toISOString(),
      claimed_at: r.claimedAt?.toISOString() ?? null,
    };
  }
}
