// Hub-signed access tokens (Ed25519 JWT via jose) and opaque rotating refresh tokens.
// Verification pins algorithm, issuer, audience, typ and required claims (RELIABILITY fact 4, A12).
import { SignJWT, jwtVerify, generateKeyPair, exportPKCS8, importPKCS8, importSPKI, type CryptoKey } from "jose";
import { createPublicKey, randomUUID } from "node:crypto";
import type { HubDb } from "../db/open-db.js";
import { getMeta, setMeta } from "../db/open-db.js";

const ALG = "EdDSA";
export const ACCESS_TYP = "at+jwt";
export const AUDIENCE = "smartplug-hub-api";

export interface AccessClaims {
  userId: string;
  /** `viewer` only for cloud users with a viewer share (issue 6 §7): reads, never switches or edits. */
  role: "owner" | "member" | "viewer";
  familyId: string;
  /** Cloud users with device-level shares see only these devices; absent or null = every device. */
  deviceIds?: string[] | null;
  /** A `member` cloud user controls only these of the devices it sees; absent or null = all of them. */
  controlIds?: string[] | null;
}

export class TokenService {
  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    readonly publicKeyPem: string,
    readonly issuer: string,
    private readonly accessTtlSec: number,
  ) {}

  /** Loads the hub's signing key from the database, generating it on first start. */
  static async open(db: HubDb, opts: { accessTtlSec: number }): Promise<TokenService> {
    let pem = getMeta(db, "signing_key");
    if (!pem) {
      const { privateKey } = await generateKeyPair(ALG, { crv: "Ed25519", extractable: true });
      pem = await exportPKCS8(privateKey);
      setMeta(db, "signing_key", pem);
    }
    let hubId = getMeta(db, "hub_id");
    if (!hubId) {
      hubId = randomUUID();
      setMeta(db, "hub_id", hubId);
    }
    const privateKey = await importPKCS8(pem, ALG, { extractable: true });
    const spkiPem = createPublicKey(pem).export({ type: "spki", format: "pem" }).toString();
    const publicKey = await importSPKI(spkiPem, ALG);
    return new TokenService(privateKey, publicKey, spkiPem, `urn:smartplug:hub:${hubId}`, opts.accessTtlSec);
  }

  get accessTtl(): number {
    return this.accessTtlSec;
  }

  signAccess(c: AccessClaims): Promise<string> {
    return new SignJWT({ role: c.role, fam: c.familyId })
      .setProtectedHeader({ alg: ALG, typ: ACCESS_TYP })
      .setSubject(c.userId)
      .setIssuer(this.issuer)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.accessTtlSec}s`)
      .setJti(randomUUID())
      .sign(this.privateKey);
  }

  /** Throws on anything but a valid, unexpired access token of this hub. */
  async verifyAccess(token: string): Promise<AccessClaims> {
    const { payload } = await jwtVerify(token, this.publicKey, {
      algorithms: [ALG],
      issuer: this.issuer,
      audience: AUDIENCE,
      typ: ACCESS_TYP,
      requiredClaims: ["exp", "iat", "sub"],
    });
    if (payload.role !== "owner" && payload.role !== "member") throw new Error("bad role claim");
    return { userId: payload.sub!, role: payload.role, familyId: String(payload.fam ?? "") };
  }
}
