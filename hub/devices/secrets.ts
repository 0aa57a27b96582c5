import { randomBytes, scrypt, timingSafeEqual, createHash, type ScryptOptions } from "node:crypto";

/**
 * scrypt cost profiles. scrypt needs 128·N·r bytes per hash on a libuv thread; glibc keeps freed blocks of
 * that size in each thread's arena, so on a 1 GB Pi the memory cost shows up as resident memory for good
 * (measured: N=2^17 passwords + N=2^14 plug secrets left the hub ~110 MB larger after pairing 100 plugs).
 * Passwords: OWASP's N=2^13, r=8, p=10 (8 MiB; one of its equivalent settings to N=2^17, r=8, p=1).
 * Plug secrets are checked on every reconnect: N=2^12, r=8, p=4 (4 MiB), the same CPU work (N·p = 2^14)
 * as the former N=2^14, r=8, p=1. The stored format `scrypt$N$r$p$salt$hash` carries its own cost, so
 * hashes made with the former settings still verify.
 */
export const SCRYPT_PASSWORD: ScryptOptions = { N: 2 ** 13, r: 8, p: 10, maxmem: 64 * 1024 * 1024 };
export const SCRYPT_PLUG: ScryptOptions = { N: 2 ** 12, r: 8, p: 4, maxmem: 64 * 1024 * 1024 };

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
