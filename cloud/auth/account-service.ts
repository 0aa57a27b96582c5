// Cloud accounts (issue 5 §3): open registration, sign-in with rate limits, rotating opaque refresh tokens
// stored hashed (reuse revokes the family, A13), logout, profile and password changes.
// Access tokens die with their family. Every request checks that its user exists and its family is not revoked:
// from the database, or from an answer of at most `recheckMs` ago (bounded-cache.ts). A revocation in this
// process forgets that answer before it returns, so it holds here at once; one made by another cloud process
// holds here within `recheckMs`.
import { randomBytes, randomUUID, type ScryptOptions } from "node:crypto";
import { and, eq, gt, isNull, ne, sql } from "drizzle-orm";
import type { CloudOrm } from "../db/open-db.js";
import { refreshTokens, users } from "../db/schema.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { RegisterRequest, LoginRequest, TokenResponse, User } from "../../shared/schemas/auth.js";
import { ConflictError, TooManyRequestsError, UnauthorizedError } from "../../shared/problem.js";
import { hashSecret, sha256, verifySecret, SCRYPT_PASSWORD } from "./secrets.js";
import type { TokenService, AccessClaims } from "./token-service.js";
import { KeyedBuckets } from "./rate-limit.js";
import { BoundedCache } from "./bounded-cache.js";
import { audit, type Actor } from "../audit.js";

export interface AccountOptions {
  refreshTtlSec: number;
  /** Failed sign-ins allowed per client address and per account in a burst, then one per `loginRefillSec`. */
  loginBurst: number;
  loginRefillSec: number;
  passwordCost?: ScryptOptions;
  /** How long a "user exists, sign-in not revoked" answer is trusted for changes made by another process (ms). */
  recheckMs?: number;
}

/** Default `recheckMs`: the bound on how late a revocation by another cloud process reaches this one. */
export const SESSION_RECHECK_MS = 2_000;
/** Sign-ins (token families) whose check is kept at most. */
const SESSIONS_MAX = 20_000;

type UserRow = typeof users.$inferSelect;

export class AccountService {
  private readonly failuresByIp: KeyedBuckets;
  private readonly failuresByEmail: KeyedBuckets;
  private dummyHash: Promise<string> | null = null;
  private readonly onRevoke: ((familyId: string) => void)[] = [];
  /** familyId → userId of a sign-in checked live (user exists, family not revoked) within `recheckMs`. */
  private readonly liveSessions: BoundedCache<string, string>;

  constructor(
    private readonly db: CloudOrm,
    private readonly tokens: TokenService,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: AccountOptions,
  ) {
    const rate = 1 / opts.loginRefillSec;
    this.failuresByIp = new KeyedBuckets(rate, opts.loginBurst);
    this.failuresByEmail = new KeyedBuckets(rate, opts.loginBurst);
    this.liveSessions = new BoundedCache({ max: SESSIONS_MAX, ttlMs: opts.recheckMs ?? SESSION_RECHECK_MS, now: () => clock.now() });
  }

  private get cost(): ScryptOptions {
    return this.opts.passwordCost ?? SCRYPT_PASSWORD;
  }

  async register(req: RegisterRequest, actor: Actor): Promise<User> {
    const hash = await hashSecret(req.password, this.cost);
    const now = new Date(this.clock.now());
    const row: UserRow = { id: randomUUID(), email: req.email, name: req.name ?? null, passwordHash: hash, createdAt: now, updatedAt: now };
    try {
      await this.db.transaction(async (tx) => {
        await tx.insert(users).values(row);
        await audit(tx, now, { ...actor, userId: row.id }, { action: "user.register", targetType: "user", targetId: row.id });
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("a user with this email exists");
      throw err;
    }
    this.log.info({ userId: row.id }, "user registered");
    return toUser(row);
  }

  async login(req: LoginRequest, ip: string): Promise<TokenResponse> {
    const now = this.clock.now();
    // Peek: an empty bucket refuses; successful sign-ins do not consume (A14).
    if (!this.failuresByIp.has(ip, now) || !this.failuresByEmail.has(req.email, now)) {
      throw new TooManyRequestsError(this.opts.loginRefillSec, "too many failed sign-ins; try again later");
    }
    const [row] = await this.db.select().from(users).where(eq(users.email, req.email)).limit(1);
    // The same work and the same answer for an unknown user and a wrong password (A14).
    const ok = row ? await verifySecret(req.password, row.passwordHash) : await this.burnDummy(req.password);
    if (!row || !ok) {
      this.failuresByIp.take(ip, now);
      this.failuresByEmail.take(req.email, now);
      throw new UnauthorizedError("email or password is wrong");
    }
    return this.issue(row.id, randomUUID());
  }

  private async burnDummy(password: string): Promise<false> {
    this.dummyHash ??= hashSecret(randomBytes(16).toString("hex"), this.cost);
    await verifySecret(password, await this.dummyHash);
    return false;
  }

  /** Rotates a refresh token. Marking it used is one conditional UPDATE, so two processes cannot both rotate it. */
  async refresh(refreshToken: string): Promise<TokenResponse> {
    const now = new Date(this.clock.now());
    const h = sha256(refreshToken);
    const [rotated] = await this.db
      .update(refreshTokens)
      .set({ usedAt: now })
      .where(and(eq(refreshTokens.tokenHash, h), isNull(refreshTokens.usedAt), isNull(refreshTokens.revokedAt), gt(refreshTokens.expiresAt, now)))
      .returning({ userId: refreshTokens.userId, familyId: refreshTokens.familyId });
    if (rotated) return this.issue(rotated.userId, rotated.familyId);
    const [row] = await this.db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, h)).limit(1);
    if (row && row.usedAt !== null && row.revokedAt === null) {
      await this.revokeFamily(row.familyId, "refresh token reused", { userId: row.userId });
      throw new UnauthorizedError("refresh token was already used; all sessions of this sign-in are revoked");
    }
    throw new UnauthorizedError("refresh token is invalid or expired");
  }

  async logout(refreshToken: string, actor: Actor): Promise<void> {
    const [row] = await this.db.select({ familyId: refreshTokens.familyId, userId: refreshTokens.userId }).from(refreshTokens).where(eq(refreshTokens.tokenHash, sha256(refreshToken))).limit(1);
    if (row) await this.revokeFamily(row.familyId, "logout", { ...actor, userId: row.userId });
  }

  private async revokeFamily(familyId: string, why: string, actor: Actor) {
    const now = new Date(this.clock.now());
    await this.db.transaction(async (tx) => {
      await tx.update(refreshTokens).set({ revokedAt: now }).where(and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt)));
      await audit(tx, now, actor, { action: "session.revoke", targetType: "session", targetId: familyId, detail: { why } });
    });
    this.liveSessions.invalidate(familyId);
    this.log.warn({ familyId, why }, "token family revoked");
    for (const f of this.onRevoke) f(familyId);
  }

  onFamilyRevoked(f: (familyId: string) => void): void {
    this.onRevoke.push(f);
  }

  /**
   * `authenticate` answered from memory alone: the claims when the token was verified and its sign-in checked
   * within `recheckMs`, else undefined (then `authenticate` decides, whatever the reason).
   */
  authenticatedFromMemory(token: string): AccessClaims | undefined {
    const claims = this.tokens.verifiedFromMemory(token);
    return claims && this.liveSessions.get(claims.familyId) === claims.userId ? claims : undefined;
  }

  /** Verifies an access token, that its user exists and that its sign-in was not revoked. */
  async authenticate(token: string): Promise<AccessClaims> {
    let claims: AccessClaims;
    try {
      claims = await this.tokens.verifyAccess(token);
    } catch {
      throw new UnauthorizedError("access token is invalid or expired");
    }
    if (this.liveSessions.get(claims.familyId) === claims.userId) return claims;
    const ticket = this.liveSessions.begin();
    const [row] = await this.db
      .select({
        id: users.id,
        revoked: sql<boolean>`exists (select 1 from ${refreshTokens} where ${refreshTokens.familyId} = ${claims.familyId} and ${refreshTokens.revokedAt} is not null)`,
      })
      .from(users)
      .where(eq(users.id, claims.userId))
      .limit(1);
    if (!row) throw new UnauthorizedError("user no longer exists");
    if (row.revoked) throw new UnauthorizedError("this sign-in was revoked");
    this.liveSessions.fill(claims.familyId, claims.userId, ticket);
    return claims;
  }

  private async issue(userId: string, familyId: string): Promise<TokenResponse> {
    const now = this.clock.now();
    const refresh = randomBytes(32).toString("base64url");
    await this.db.insert(refreshTokens).values({
      tokenHash: sha256(refresh),
      userId,
      familyId,
      expiresAt: new Date(now + this.opts.refreshTtlSec * 1000),
      createdAt: new Date(now),
    });
    const access = await this.tokens.signAccess({ userId, familyId });
    return { access_token: access, token_type: "bearer", expires_in: this.tokens.accessTtl, refresh_token: refresh, refresh_expires_in: this.opts.refreshTtlSec };
  }

  async getUser(id: string): Promise<User> {
    const [row] = await this.db.select().from(users).where(eq(users.id, id)).limit(1);
    if (!row) throw new UnauthorizedError("user no longer exists");
    return toUser(row);
  }

  async findByEmail(email: string): Promise<UserRow | undefined> {
    const [row] = await this.db.select().from(users).where(eq(users.email, email)).limit(1);
    return row;
  }

  async updateProfile(id: string, patch: { name: string | null }, actor: Actor): Promise<User> {
    const now = new Date(this.clock.now());
    const row = await this.db.transaction(async (tx) => {
      const [r] = await tx.update(users).set({ name: patch.name, updatedAt: now }).where(eq(users.id, id)).returning();
      if (!r) throw new UnauthorizedError("user no longer exists");
      await audit(tx, now, actor, { action: "user.update", targetType: "user", targetId: id, detail: { fields: ["name"] } });
      return r;
    });
    return toUser(row);
  }

  /** Changes the password and revokes every other sign-in of the user; the current one stays. */
  async changePassword(claims: AccessClaims, current: string, next: string, actor: Actor): Promise<void> {
    const [row] = await this.db.select().from(users).where(eq(users.id, claims.userId)).limit(1);
    if (!row) throw new UnauthorizedError("user no longer exists");
    if (!(await verifySecret(current, row.passwordHash))) {
      const now = this.clock.now();
      const ip = actor.ip ?? "?";
      if (!this.failuresByIp.has(ip, now)) throw new TooManyRequestsError(this.opts.loginRefillSec, "too many failed attempts; try again later");
      this.failuresByIp.take(ip, now);
      throw new UnauthorizedError("the current password is wrong");
    }
    const hash = await hashSecret(next, this.cost);
    const now = new Date(this.clock.now());
    const revoked = await this.db.transaction(async (tx) => {
      await tx.update(users).set({ passwordHash: hash, updatedAt: now }).where(eq(users.id, row.id));
      const fams = await tx
        .update(refreshTokens)
        .set({ revokedAt: now })
        .where(and(eq(refreshTokens.userId, row.id), ne(refreshTokens.familyId, claims.familyId), isNull(refreshTokens.revokedAt)))
        .returning({ familyId: refreshTokens.familyId });
      await audit(tx, now, actor, { action: "user.password", targetType: "user", targetId: row.id });
      return [...new Set(fams.map((f) => f.familyId))];
    });
    for (const fam of revoked) this.liveSessions.invalidate(fam);
    for (const fam of revoked) for (const f of this.onRevoke) f(fam);
    this.log.info({ userId: row.id, revokedSessions: revoked.length }, "password changed");
  }
}

export function toUser(r: UserRow): User {
  // Cloud accounts are all alike; what a user may do is decided per hub and device (owner/controller/viewer).
  return { id: r.id, email: r.email, name: r.name, role: "member", created_at: r.createdAt.toISOString() };
}

export function isUniqueViolation(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; i < 3 && e; i++) {
    if ((e as { code?: string }).code === "23505") return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
