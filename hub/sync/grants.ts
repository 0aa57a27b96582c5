// Local access for cloud users (issue 6 §7): the cloud signs a hub-scoped grant (Ed25519 JWT, typ
// `smartplug-grant+jwt`, aud `smartplug-hub:<hub id>`, sub = the cloud user, exp ≥ 7 days) that the hub
// verifies offline with the cloud public key it received over the link. The role comes from the access list
// the cloud last sent (on every link connect and on every sharing change), so a revocation takes effect as
// soon as the link is back, while a grant keeps working through an outage of up to its lifetime.
import { decodeProtectedHeader, importSPKI, jwtVerify, type CryptoKey } from "jose";
import type { AccessClaims } from "../accounts/token-service.js";
import type { CloudAccess } from "./sync-service.js";

export const GRANT_TYP = "smartplug-grant+jwt";

export function isGrant(token: string): boolean {
  try {
    return decodeProtectedHeader(token).typ === GRANT_TYP;
  } catch {
    return false;
  }
}

export class GrantVerifier {
  private key: { pem: string; key: CryptoKey } | null = null;

  constructor(
    private readonly access: () => CloudAccess | null,
    private readonly hubId: () => string | null,
  ) {}

  /** The caller's local claims, or an Error saying why the grant does not open this hub. */
  async verify(token: string): Promise<AccessClaims> {
    const access = this.access();
    const hubId = this.hubId();
    if (!access || !hubId) throw new Error("this hub has no cloud access list yet");
    if (this.key?.pem !== access.publicKeyPem) this.key = { pem: access.publicKeyPem, key: await importSPKI(access.publicKeyPem, "EdDSA") };
    const { payload } = await jwtVerify(token, this.key.key, {
      algorithms: ["EdDSA"],
      audience: `smartplug-hub:${hubId}`,
      typ: GRANT_TYP,
      requiredClaims: ["exp", "sub", "iat"],
    });
    const user = access.users.find((u) => u.user_id === payload.sub);
    if (!user) throw new Error("this cloud user no longer has access to this hub");
    return {
      userId: `cloud:${user.user_id}`,
      role: user.role === "owner" ? "owner" : user.role === "controller" ? "member" : "viewer",
      familyId: `grant:${user.user_id}`,
      deviceIds: user.device_ids,
    };
  }
}
