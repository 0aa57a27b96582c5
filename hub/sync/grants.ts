// Local access for cloud users (issue 6 §7): the cloud signs a hub-scoped grant (Ed25519 JWT, typ
// `smartplug-grant+jwt`, iss the cloud, aud `smartplug-hub:<hub id>`, sub = the cloud user, exp ≥ 7 days) that
// the hub verifies offline with the cloud public key and issuer it received over the link. What the user may
// do comes from the access list the cloud last sent (on every link connect and on every sharing change), never
// from the grant: the list is authoritative, so a user missing from it is refused even with an unexpired grant,
// and a revocation takes effect as soon as the link is back, while a grant keeps working through an outage of
// up to its lifetime. The list is persisted (meta `cloud_access`), so this also holds across a restart offline.
import { decodeProtectedHeader, importSPKI, jwtVerify, type CryptoKey } from "jose";
import type { Clock } from "../../shared/clock.js";
import { LOCAL_GRANT_TYP, localGrantAudience } from "../../shared/schemas/cloud.js";
import type { LinkAccess } from "../../shared/schemas/sync.js";
import type { AccessClaims } from "../accounts/token-service.js";
import type { CloudAccess } from "./sync-service.js";

export const GRANT_TYP = LOCAL_GRANT_TYP;

export function isGrant(token: string): boolean {
  try {
    return decodeProtectedHeader(token).typ === GRANT_TYP;
  } catch {
    return false;
  }
}

type Entry = LinkAccess["users"][number];
export type MergedAccess = Pick<AccessClaims, "role" | "deviceIds" | "controlIds">;

const RANK = { viewer: 1, controller: 2, owner: 3 } as const;

/**
 * Every access-list entry of one user merged into what the hub enforces. The cloud sends one entry per
 * (user, role) — the owner or a hub share with `device_ids: null`, and device shares grouped by role — so a
 * user can have several; each device gets the strongest role any entry gives it. Only the hub's owner is
 * `owner` here: a device share never goes beyond controlling its devices. null: the user has no entry.
 */
export function mergeAccess(entries: readonly Entry[], userId: string): MergedAccess | null {
  const mine = entries.filter((e) => e.user_id === userId);
  if (mine.length === 0) return null;
  let hubRank = 0;
  const deviceRank = new Map<string, number>();
  for (const e of mine) {
    if (e.device_ids === null) hubRank = Math.max(hubRank, RANK[e.role]);
    else for (const id of e.device_ids) deviceRank.set(id, Math.max(deviceRank.get(id) ?? 0, Math.min(RANK[e.role], RANK.controller)));
  }
  if (hubRank === RANK.owner) return { role: "owner", deviceIds: null, controlIds: null };
  if (hubRank === RANK.controller) return { role: "member", deviceIds: null, controlIds: null };
  const controlled = [...deviceRank].filter(([, r]) => r >= RANK.controller).map(([id]) => id).sort();
  const deviceIds = hubRank === RANK.viewer ? null : [...deviceRank.keys()].sort();
  if (controlled.length === 0) return { role: "viewer", deviceIds, controlIds: null };
  // Controls every device it sees: no per-device list needed.
  if (deviceIds !== null && controlled.length === deviceIds.length) return { role: "member", deviceIds, controlIds: null };
  return { role: "member", deviceIds, controlIds: controlled };
}

export class GrantVerifier {
  private key: { pem: string; key: CryptoKey } | null = null;

  constructor(
    private readonly access: () => CloudAccess | null,
    private readonly hubId: () => string | null,
    private readonly clock: Clock,
  ) {}

  /** The caller's local claims, or an Error saying why the grant does not open this hub. */
  async verify(token: string): Promise<AccessClaims> {
    const access = this.access();
    const hubId = this.hubId();
    if (!access || !hubId) throw new Error("this hub has no cloud access list yet");
    if (!access.issuer) throw new Error("this hub's cloud access list predates issuer pinning; it is replaced when the link reconnects");
    if (this.key?.pem !== access.publicKeyPem) this.key = { pem: access.publicKeyPem, key: await importSPKI(access.publicKeyPem, "EdDSA") };
    // RELIABILITY fact 4: algorithm, issuer, audience, typ and required claims pinned; time is the hub's clock.
    const { payload } = await jwtVerify(token, this.key.key, {
      algorithms: ["EdDSA"],
      issuer: access.issuer,
      audience: localGrantAudience(hubId),
      typ: GRANT_TYP,
      requiredClaims: ["exp", "iat", "sub"],
      currentDate: new Date(this.clock.now()),
    });
    const merged = mergeAccess(access.users, payload.sub!);
    if (!merged) throw new Error("this cloud user no longer has access to this hub");
    return { userId: `cloud:${payload.sub!}`, familyId: `grant:${payload.sub!}`, ...merged };
  }
}
