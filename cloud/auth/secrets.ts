// Secret hashing for the cloud. A copy of hub/devices/secrets.ts (hub and cloud never import each other);
// it belongs in shared/ — the same `scrypt$N$r$p$salt$hash` format lets the cloud hand a plug's hash to its hub.
import { randomBytes, scrypt, timingSafeEqual, createHash, type ScryptOptions } from "node:crypto";

/** scrypt cost profiles. Passwords: OWASP's N=2^17, r=8, p=1. Plug secrets are checked on every reconnect, so cheaper. */
export const SCRYPT_PASSWORD: ScryptOptions = { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 1024 * 1024 };
export const SCRYPT_PLUG: ScryptOptions = { N: 2 ** 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

function scryptAsync(secret: string | Buffer, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(secret, salt, 32, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** `scrypt$N$r$p$salt$hash`, base64url parts. */
export async function hashSecret(secret: string | Buffer, opts: ScryptOptions): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, opts);
  return ["scrypt", opts.N, opts.r, opts.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

export async function verifySecret(secret: string | Buffer, stored: string): Promise<boolean> {
  const [alg, n, r, p, salt, hash] = stored.split("$");
  if (alg !== "scrypt" || !salt || !hash) return false;
  const N = Number(n);
  const opts: ScryptOptions = { N, r: Number(r), p: Number(p), maxmem: Math.max(64 * 1024 * 1024, 256 * N * Number(r)) };
  const key = await scryptAsync(secret, Buffer.from(salt, "base64url"), opts);
  const want = Buffer.from(hash, "base64url");
  return key.length === want.length && timingSafeEqual(key, want);
}

export function sha256(s: string | Buffer): string {
  return createHash("sha256").update(s).digest("hex");
}

/** Constant-time comparison of two hex digests. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
