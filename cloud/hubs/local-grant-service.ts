// Local access for cloud users (issue 6 §7): `POST /hubs/{id}/local-grant` gives a user who owns the hub, or
// has a hub or device share on it, a hub-scoped grant (Ed25519 JWT, typ `smartplug-grant+jwt`, iss the cloud,
// aud `smartplug-hub:<hub id>`, sub the user, exp now + CLOUD_GRANT_TTL_S ≥ 7 days). The hub verifies it offline
// with the public key the link gave it; what the user may do there comes from the access list the link sends
// (on connect and on every share change), so a revocation reaches the hub as soon as its link is back.
import { randomUUID } from "node:crypto";
import { and, eq } from "drizzle-orm";
import type { CloudOrm } from "../db/open-db.js";
import { deviceUsers, devices } from "../db/schema.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { AccessRole, LocalGrant } from "../../shared/schemas/cloud.js";
import { NotFoundError } from "../../shared/problem.js";
import type { TokenService } from "../auth/token-service.js";
import { audit, type Actor } from "../audit.js";
import { atLeast, type HubService } from "./hub-service.js";

export interface LocalAccess {
  hubId: string;
  /** The strongest role the user has anywhere on the hub. */
  role: AccessRole;
  /** null: the whole hub (owner or hub share); else the devices shared with the user. */
  deviceIds: string[] | null;
}

export class LocalGrantService {
  constructor(
    private readonly db: CloudOrm,
    private readonly hubs: HubService,
    private readonly tokens: TokenService,
    /** The hub's LAN address as its link last reported it (LinkHello), if known. */
    private readonly localApiUrl: (hubId: string) => string | null,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: { ttlSec: number },
  ) {}

  /** Owner, hub share or device shares on the hub; otherwise the same 404 as a hub that does not exist (A10). */
  async access(userId: string, hubId: string): Promise<LocalAccess> {
    let hubRole: AccessRole | null = null;
    let notFound: unknown = null;
    try {
      hubRole = (await this.hubs.access(userId, hubId)).role;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      notFound = err;
    }
    // Not a uuid: no device of it can exist (and PostgreSQL would refuse the comparison).
    const shares = !/^[0-9a-f-]{36}$/i.test(hubId)
      ? []
      : await this.db
          .select({ deviceId: devices.deviceId, role: deviceUsers.role })
          .from(deviceUsers)
          .innerJoin(devices, eq(devices.id, deviceUsers.deviceId))
          .where(and(eq(devices.hubId, hubId), eq(deviceUsers.userId, userId)))
          .orderBy(devices.deviceId);
    if (hubRole === null && shares.length === 0) throw notFound;
    let role: AccessRole = hubRole ?? "viewer";
    for (const s of shares) if (!atLeast(role, s.role)) role = s.role;
    return { hubId, role, deviceIds: hubRole === null ? shares.map((s) => s.deviceId) : null };
  }

  async issue(userId: string, a: LocalAccess, actor: Actor): Promise<LocalGrant> {
    const now = this.clock.now();
    const iat = Math.floor(now / 1000) * 1000;
    const exp = iat + this.opts.ttlSec * 1000;
    const jti = randomUUID();
    const grant = await this.tokens.signLocalGrant({ userId, hubId: a.hubId, role: a.role, iatMs: iat, expMs: exp, jti });
    await audit(this.db, new Date(now), actor, {
      action: "hub.local_grant",
      targetType: "hub",
      targetId: a.hubId,
      detail: { jti, role: a.role, device_ids: a.deviceIds, expires_at: new Date(exp).toISOString() },
    });
    this.log.info({ hubId: a.hubId, userId, jti, role: a.role }, "local grant issued");
    return {
      grant,
      token_type: "bearer",
      hub_id: a.hubId,
      user_id: userId,
      role: a.role,
      device_ids: a.deviceIds,
      issued_at: new Date(iat).toISOString(),
      expires_at: new Date(exp).toISOString(),
      expires_in: this.opts.ttlSec,
      local_api_url: this.localApiUrl(a.hubId),
    };
  }
}
