// Local accounts (issue 2 §7): work with no cloud at all. The first registration creates the owner;
// after that only the owner adds users. Refresh tokens are opaque, stored hashed, rotated on every use;
// reusing a rotated one revokes its whole family (A13). A phone stays signed in as long as it refreshes
// within `refreshTtlSec` (default 30 days), with or without internet.
import { randomBytes, randomUUID } from "node:crypto";
import type { HubDb } from "../db/open-db.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { RegisterRequest, LoginRequest, TokenResponse, User } from "../../shared/schemas/auth.js";
import { ConflictError, ForbiddenError, TooManyRequestsError, UnauthorizedError } from "../../shared/problem.js";
import { hashSecret, sha256, verifySecret, SCRYPT_PASSWORD } from "../devices/secrets.js";
import type { TokenService, AccessClaims } from "./token-service.js";
import { KeyedBuckets } from "../broker/rate-limit.js";
import type { ScryptOptions } from "node:crypto";

export interface AccountOptions {
  refreshTtlSec: number;
  /** Failed logins allowed per client address and per account in a burst, then one per `loginRefillSec`. */
  loginBurst: number;
  loginRefillSec: number;
  passwordCost?: ScryptOptions;
}

interface UserRow {
  id: string;
  email: string;
  name: string | null;
  password_hash: string;
  role: "owner" | "member";
  created_at: number;
}

export class AccountService {
  private readonly failuresByIp: KeyedBuckets;
  private readonly failuresByEmail: KeyedBuckets;
  private dummyHash: Promise<string> | null = null;
  /** Access-token families revoked since start (their access tokens die with them, A13). */
  private readonly revokedFamilies = new Set<string>();
  private readonly onRevoke: ((familyId: string) => void)[] = [];

  constructor(
    private readonly db: HubDb,
    private readonly tokens: TokenService,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: AccountOptions,
  ) {
    const rate = 1 / opts.loginRefillSec;
    this.failuresByIp = new KeyedBuckets(rate, opts.loginBurst);
    this.failuresByEmail = new KeyedBuckets(rate, opts.loginBurst);
    for (const r of db.sqlite.prepare("SELECT DISTINCT family_id FROM refresh_tokens WHERE revoked_at IS NOT NULL").all() as { family_id: string }[]) {
      this.revokedFamilies.add(r.family_id);
    }
  }

  userCount(): number {
    return (this.db.sqlite.prepare("SELECT count(*) AS n FROM users").get() as { n: number }).n;
  }

  /** First user becomes the owner; later ones need the owner's token. */
  async register(req: RegisterRequest, actor: AccessClaims | null): Promise<User> {
    const first = this.userCount() === 0;
    if (!first) {
      if (!actor) throw new UnauthorizedError("this hub has an owner; only the owner can add users");
      if (actor.role !== "owner") throw new ForbiddenError("only the hub's owner can add users");
    }
    if (this.db.sqlite.prepare("SELECT 1 FROM users WHERE email = ?").get(req.email)) throw new ConflictError("a user with this email exists");
    const hash = await hashSecret(req.password, this.opts.passwordCost ?? SCRYPT_PASSWORD);
    const row: UserRow = {
      id: randomUUID(),
      email: req.email,
      name: req.name ?? null,
      password_hash: hash,
      role: this.userCount() === 0 ? "owner" : "member",
      created_at: this.clock.now(),
    };
    try {
      this.db.sqlite
        .prepare("INSERT INTO users (id, email, name, password_hash, role, created_at) VALUES (@id, @email, @name, @password_hash, @role, @created_at)")
        .run(row);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") throw new ConflictError("a user with this email exists");
      throw err;
    }
    this.log.info({ userId: row.id, role: row.role }, "user registered");
    return toUser(row);
  }

  async login(req: LoginRequest, ip: string): Promise<TokenResponse> {
    const now = this.clock.now();
    this.checkLimited(ip, req.email, now);
    const row = this.db.sqlite.prepare("SELECT * FROM users WHERE email = ?").get(req.email) as UserRow | undefined;
    // The same work and the same answer for an unknown user and a wrong password (A14).
    const ok = row ? await verifySecret(req.password, row.password_hash) : await this.burnDummy(req.password);
    if (!row || !ok) {
      this.failuresByIp.take(ip, now);
      this.failuresByEmail.take(req.email, now);
      throw new UnauthorizedError("email or password is wrong");
    }
    return this.issue(row, randomUUID());
  }

  private checkLimited(ip: string, email: string, now: number) {
    // Peek: a bucket with no tokens left refuses; successful logins do not consume.
    if (!this.failuresByIp.has(ip, now) || !this.failuresByEmail.has(email, now)) {
      throw new TooManyRequestsError(this.opts.loginRefillSec, "too many failed sign-ins; try again later");
    }
  }

  private async burnDummy(password: string): Promise<false> {
    this.dummyHash ??= hashSecret(randomBytes(16).toString("hex"), this.opts.passwordCost ?? SCRYPT_PASSWORD);
    await verifySecret(password, await this.dummyHash);
    return false;
  }

  async refresh(refreshToken: string): Promise<TokenResponse> {
    const now = this.clock.now();
    const h = sha256(refreshToken);
    const row = this.db.sqlite.prepare("SELECT * FROM refresh_tokens WHERE token_hash = ?").get(h) as
      | { token_hash: string; user_id: string; family_id: string; expires_at: number; used_at: number | null; revoked_at: number | null }
      | undefined;
    if (!row || row.revoked_at !== null || row.expires_at <= now) throw new UnauthorizedError("refresh token is invalid or expired");
    if (row.used_at !== null) {
      this.revokeFamily(row.family_id, "refresh token reused");
      throw new UnauthorizedError("refresh token was already used; all sessions of this sign-in are revoked");
    }
    const user = this.db.sqlite.prepare("SELECT * FROM users WHERE id = ?").get(row.user_id) as UserRow | undefined;
    if (!user) throw new UnauthorizedError("user no longer exists");
    this.db.sqlite.prepare("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?").run(now, h);
    return this.issue(user, row.family_id);
  }

  logout(refreshToken: string): void {
    const row = this.db.sqlite.prepare("SELECT family_id FROM refresh_tokens WHERE token_hash = ?").get(sha256(refreshToken)) as { family_id: string } | undefined;
    if (row) this.revokeFamily(row.family_id, "logout");
  }

  private revokeFamily(familyId: string, why: string) {
    this.db.sqlite.prepare("UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL").run(this.clock.now(), familyId);
    this.revokedFamilies.add(familyId);
    this.log.warn({ familyId, why }, "token family revoked");
    for (const f of this.onRevoke) f(familyId);
  }

  onFamilyRevoked(f: (familyId: string) => void): void {
    this.onRevoke.push(f);
  }

  /** Cloud grants (issue 6 §7) are verified by this, when the hub has a cloud. */
  grants: { isGrant(token: string): boolean; verify(token: string): Promise<AccessClaims> } | null = null;

  /** Verifies an access token (or a cloud grant) and that its sign-in was not revoked. */
  async authenticate(token: string): Promise<AccessClaims> {
    if (this.grants?.isGrant(token)) {
      try {
        return await this.grants.verify(token);
      } catch (err) {
        throw new UnauthorizedError(`cloud grant is not valid for this hub: ${(err as Error).message}`);
      }
    }
    let claims: AccessClaims;
    try {
      claims = await this.tokens.verifyAccess(token);
    } catch {
      throw new UnauthorizedError("access token is invalid or expired");
    }
    if (this.revokedFamilies.has(claims.familyId)) throw new UnauthorizedError("this sign-in was revoked");
    if (!this.db.sqlite.prepare("SELECT 1 FROM users WHERE id = ?").get(claims.userId)) throw new UnauthorizedError("user no longer exists");
    return claims;
  }

  private async issue(user: UserRow, familyId: string): Promise<TokenResponse> {
    const now = this.clock.now();
    const refresh = randomBytes(32).toString("base64url");
    this.db.sqlite
      .prepare("INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at, created_at) VALUES (?, ?, ?, ?, ?)")
      .run(sha256(refresh), user.id, familyId, now + this.opts.refreshTtlSec * 1000, now);
    const access = await this.tokens.signAccess({ userId: user.id, role: user.role, familyId });
    return { access_token: access, token_type: "bearer", expires_in: this.tokens.accessTtl, refresh_token: refresh, refresh_expires_in: this.opts.refreshTtlSec };
  }

  listUsers(): User[] {
    return (this.db.sqlite.prepare("SELECT * FROM users ORDER BY created_at").all() as UserRow[]).map(toUser);
  }

  getUser(id: string): User {
    const row = this.db.sqlite.prepare("SELECT * FROM users WHERE id = ?").get(id) as UserRow | undefined;
    if (!row) throw new UnauthorizedError("user no longer exists");
    return toUser(row);
  }
}

function toUser(r: UserRow): User {
  return { id: r.id, email: r.email, name: r.name, role: r.role, created_at: new Date(r.created_at).toISOString() };
}
