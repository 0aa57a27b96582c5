// Cloud access tokens: Ed25519 JWTs via jose. Verification pins algorithm, issuer, audience, typ and
// required claims (RELIABILITY fact 4, A12). The signing key is given (CLOUD_JWT_PRIVATE_KEY) or generated
// once and kept in the data dir with mode 0600, so every process sharing that dir or key verifies the others.
import { SignJWT, jwtVerify, generateKeyPair, exportPKCS8, importPKCS8, importSPKI, type CryptoKey } from "jose";
import { createPublicKey, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../shared/logger.js";
import { LOCAL_GRANT_TYP, localGrantAudience } from "../../shared/schemas/cloud.js";
import { BoundedCache } from "./bounded-cache.js";

const ALG = "EdDSA";
export const ACCESS_TYP = "at+jwt";
export const CLOUD_AUDIENCE = "smartplug-cloud-api";
export const KEY_FILE = "jwt-ed25519.pem";

export interface AccessClaims {
  userId: string;
  familyId: string;
}

/** Verified access tokens kept (each ≤ accessTtl); beyond that the oldest are verified again on their next use. */
const VERIFIED_MAX = 20_000;

export class TokenService {
  /**
   * Access tokens this process verified → their claims, until their `exp`: Ed25519 verification runs once per
   * token, not once per request. Keyed by the whole token, so any other byte string is verified in full; the expiry
   * is jose's own rule (valid while now < exp, on the system clock as jose reads it).
   */
  private readonly verified = new BoundedCache<string, AccessClaims>({ max: VERIFIED_MAX, ttlMs: Infinity, now: Date.now });

  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    readonly publicKeyPem: string,
    readonly issuer: string,
    readonly accessTtl: number,
  ) {}

  static async open(opts: { dataDir: string; privateKeyPem: string | null; issuer: string; accessTtlSec: number }, log: Logger): Promise<TokenService> {
    let pem = opts.privateKeyPem;
    if (!pem) {
      const file = join(opts.dataDir, KEY_FILE);
      if (existsSync(file)) {
        pem = readFileSync(file, "utf8");
      } else {
        const { privateKey } = await generateKeyPair(ALG, { crv: "Ed25519", extractable: true });
        pem = await exportPKCS8(privateKey);
        mkdirSync(opts.dataDir, { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, pem, { mode: 0o600 });
        renameSync(tmp, file);
        log.info({ file }, "generated the cloud's signing key");
      }
    }
    const privateKey = await importPKCS8(pem, ALG, { extractable: false });
    const spkiPem = createPublicKey(pem).export({ type: "spki", format: "pem" }).toString();
    const publicKey = await importSPKI(spkiPem, ALG);
    return new TokenService(privateKey, publicKey, spkiPem, opts.issuer, opts.accessTtlSec);
  }

  signAccess(c: AccessClaims): Promise<string> {
    return new SignJWT({ fam: c.familyId })
      .setProtectedHeader({ alg: ALG, typ: ACCESS_TYP })
      .setSubject(c.userId)
      .setIssuer(this.issuer)
      .setAudience(CLOUD_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.accessTtl}s`)
      .setJti(randomUUID())
      .sign(this.privateKey);
  }

  /**
   * A local grant (issue 6 §7): opens one hub's LAN API for one user until `expMs`, verified by the hub offline
   * with this cloud's public key. Times come from the caller's clock (whole seconds).
   */
  signLocalGrant(g: { userId: string; hubId: string; role: string; iatMs: number; expMs: number; jti: string }): Promise<string> {
    return new SignJWT({ role: g.role })
      .setProtectedHeader({ alg: ALG, typ: LOCAL_GRANT_TYP })
      .setSubject(g.userId)
      .setIssuer(this.issuer)
      .setAudience(localGrantAudience(g.hubId))
      .setIssuedAt(Math.floor(g.iatMs / 1000))
      .setExpirationTime(Math.floor(g.expMs / 1000))
      .setJti(g.jti)
      .sign(this.privateKey);
  }

  /** The claims of a token `verifyAccess` accepted and that has not expired since; undefined for any other. */
  verifiedFromMemory(token: string): AccessClaims | undefined {
    return this.verified.get(token);
  }

  /** Throws on anything but a valid, unexpired access token of this cloud. */
  async verifyAccess(token: string): Promise<AccessClaims> {
    const known = this.verified.get(token);
    if (known) return known;
    const ticket = this.verified.begin();
    const { payload } = await jwtVerify(token, this.publicKey, {
      algorithms: [ALG],
      issuer: this.issuer,
      audience: CLOUD_AUDIENCE,
      typ: ACCESS_TYP,
      requiredClaims: ["exp", "iat", "sub", "fam"],
    });
    if (typeof payload.fam !== "string" || typeof payload.sub !== "string" || typeof payload.exp !== "number") throw new Error("bad claims");
    const claims: AccessClaims = Object.freeze({ userId: payload.sub, familyId: payload.fam });
    this.verified.fill(token, claims, ticket, payload.exp * 1000);
    return claims;
  }
}
