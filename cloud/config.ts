// Cloud configuration: parsed once from the environment, validated, frozen (STYLE.md §4).
// Every variable here has a row in the README's cloud configuration table.
import { createPrivateKey } from "node:crypto";
import { z } from "zod";

const port = z.coerce.number().int().min(0).max(65535);
const positive = z.coerce.number().int().positive();
const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === "" ? undefined : v));

/** Values people paste from examples; a signing key must never be one of them (STYLE.md §4). */
const DEFAULT_SECRETS = ["changeme", "change-me", "secret", "default", "password", "test", "example"];

/**
 * Shared secrets given for InfluxDB (issue 5 §9: refuse a default or short secret when one is given): the
 * placeholders above, the usual admin passwords, and the tokens from InfluxDB's own Docker examples.
 */
const DEFAULT_SHARED_SECRETS = [
  ...DEFAULT_SECRETS,
  "admin",
  "root",
  "influx",
  "influxdb",
  "password123",
  "password1234",
  "changeme123",
  "my-token",
  "mytoken",
  "my-super-secret-auth-token",
  "my-secret-token",
];
/** Characters a given InfluxDB password or token must have at least. */
export const MIN_SHARED_SECRET_CHARS = 12;

export const CloudEnv = z.object({
  CLOUD_DATA_DIR: z.string().min(1).default("./data/cloud"),
  CLOUD_HTTP_HOST: z.string().min(1).default("0.0.0.0"),
  CLOUD_HTTP_PORT: port.default(8000),
  CLOUD_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  CLOUD_CORS_ORIGINS: z.string().default(""),
  CLOUD_DATABASE_URL: optionalText.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
      .optional(),
  ),
  CLOUD_INFLUX_URL: z.url({ protocol: /^https?$/ }).default("http://127.0.0.1:8086"),
  CLOUD_INFLUX_USER: optionalText,
  CLOUD_INFLUX_PASSWORD: optionalText,
  CLOUD_INFLUX_TOKEN: optionalText,
  CLOUD_INFLUX_DB_PREFIX: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_]{0,40}$/, "letters, digits and '_', starting with a letter")
    .default("smartplug"),
  CLOUD_INFLUX_CREATE_DATABASES: bool.default(true),
  CLOUD_INFLUX_TIMEOUT_MS: positive.max(120_000).default(10_000),
  CLOUD_JWT_PRIVATE_KEY: optionalText,
  CLOUD_JWT_ISSUER: z.string().min(1).default("urn:smartplug:cloud"),
  CLOUD_ACCESS_TOKEN_TTL_S: positive.min(60).max(1800).default(900),
  CLOUD_REFRESH_TOKEN_TTL_S: positive.min(3600).default(30 * 86_400),
  CLOUD_CLAIM_CODE_TTL_S: positive.min(60).max(3600).default(600),
  CLOUD_COMMAND_TTL_S: positive.min(5).max(86_400).default(300),
  CLOUD_COMMAND_WAIT_MS: z.coerce.number().int().min(0).max(30_000).default(5000),
  CLOUD_GRANT_TTL_S: positive.min(7 * 86_400).max(90 * 86_400).default(8 * 86_400),
  CLOUD_HUB_REGISTRATIONS_PER_HOUR: positive.default(60),
  CLOUD_TRUST_PROXY: z.string().default("false"),
});

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

export interface CloudConfig {
  dataDir: string;
  http: { host: string; port: number };
  logLevel: string;
  corsOrigins: string[];
  /** Unset: embedded PGlite in `<dataDir>/pglite`. */
  databaseUrl: string | null;
  influx: {
    url: string;
    user: string | null;
    password: string | null;
    token: string | null;
    dbPrefix: string;
    createDatabases: boolean;
    timeoutMs: number;
  };
  jwt: { privateKeyPem: string | null; issuer: string };
  tokens: { accessTtlSec: number; refreshTtlSec: number };
  login: { burst: number; refillSec: number };
  claim: { ttlSec: number; burst: number; refillSec: number };
  commandTtlSec: number;
  /** How long POST /devices/{id}/command waits for the hub's result before answering 202 `sent` (0: never waits). */
  commandWaitMs: number;
  /** Lifetime of a local-access grant (POST /hubs/{id}/local-grant); at least 7 days (issue 6 §7). */
  grantTtlSec: number;
  /** Unauthenticated hub self-registrations allowed per client address per hour (burst of 10). */
  hubRegistrationsPerHour: number;
  /** Express "trust proxy": false, true, a hop count, or addresses/CIDRs of the load balancers (client IPs for rate limits). */
  trustProxy: boolean | number | string;
}

export function loadCloudConfig(env: Record<string, string | undefined>): Readonly<CloudConfig> {
  const parsed = CloudEnv.safeParse(env);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  const e = parsed.success ? parsed.data : null;
  // These checks read the raw values so that they are listed even when another variable is bad.
  const given = (name: string) => env[name] !== undefined && env[name] !== "";
  if (given("CLOUD_INFLUX_USER") !== given("CLOUD_INFLUX_PASSWORD")) {
    problems.push("CLOUD_INFLUX_USER / CLOUD_INFLUX_PASSWORD: set both or neither");
  }
  for (const name of ["CLOUD_INFLUX_PASSWORD", "CLOUD_INFLUX_TOKEN"]) {
    if (!given(name)) continue;
    const v = env[name]!.trim();
    if (DEFAULT_SHARED_SECRETS.includes(v.toLowerCase()) || v.length < MIN_SHARED_SECRET_CHARS) {
      problems.push(`${name}: refusing a short or default value; give at least ${MIN_SHARED_SECRET_CHARS} characters that are not a well-known default, or leave it unset`);
    }
  }
  if (given("CLOUD_JWT_PRIVATE_KEY")) {
    const why = signingKeyProblem(env.CLOUD_JWT_PRIVATE_KEY!);
    if (why) problems.push(`CLOUD_JWT_PRIVATE_KEY: ${why}`);
  }
  if (problems.length || !e) throw new ConfigError(problems);
  return Object.freeze({
    dataDir: e.CLOUD_DATA_DIR,
    http: { host: e.CLOUD_HTTP_HOST, port: e.CLOUD_HTTP_PORT },
    logLevel: e.CLOUD_LOG_LEVEL,
    corsOrigins: e.CLOUD_CORS_ORIGINS.split(",").map((s) => s.trim()).filter(Boolean),
    databaseUrl: e.CLOUD_DATABASE_URL ?? null,
    influx: {
      url: e.CLOUD_INFLUX_URL.replace(/\/+$/, ""),
      user: e.CLOUD_INFLUX_USER ?? null,
      password: e.CLOUD_INFLUX_PASSWORD ?? null,
      token: e.CLOUD_INFLUX_TOKEN ?? null,
      dbPrefix: e.CLOUD_INFLUX_DB_PREFIX,
      createDatabases: e.CLOUD_INFLUX_CREATE_DATABASES,
      timeoutMs: e.CLOUD_INFLUX_TIMEOUT_MS,
    },
    jwt: { privateKeyPem: e.CLOUD_JWT_PRIVATE_KEY?.replace(/\\n/g, "\n") ?? null, issuer: e.CLOUD_JWT_ISSUER },
    tokens: { accessTtlSec: e.CLOUD_ACCESS_TOKEN_TTL_S, refreshTtlSec: e.CLOUD_REFRESH_TOKEN_TTL_S },
    login: { burst: 5, refillSec: 60 }, // RELIABILITY A14: 5 failures per address or account, then one a minute
    claim: { ttlSec: e.CLOUD_CLAIM_CODE_TTL_S, burst: 5, refillSec: 60 }, // RELIABILITY A17
    commandTtlSec: e.CLOUD_COMMAND_TTL_S,
    commandWaitMs: e.CLOUD_COMMAND_WAIT_MS,
    grantTtlSec: e.CLOUD_GRANT_TTL_S,
    hubRegistrationsPerHour: e.CLOUD_HUB_REGISTRATIONS_PER_HOUR,
    trustProxy: e.CLOUD_TRUST_PROXY === "true" ? true : e.CLOUD_TRUST_PROXY === "false" ? false : /^\d+$/.test(e.CLOUD_TRUST_PROXY) ? Number(e.CLOUD_TRUST_PROXY) : e.CLOUD_TRUST_PROXY,
  });
}

/** A given signing key must be a real Ed25519 private key, never a placeholder or a short secret. */
function signingKeyProblem(raw: string): string | null {
  const pem = raw.replace(/\\n/g, "\n").trim();
  if (DEFAULT_SECRETS.includes(pem.toLowerCase()) || pem.length < 100) {
    return "refusing a short or default value; give a PKCS#8 PEM Ed25519 private key (openssl genpkey -algorithm ed25519) or leave it unset to generate one in CLOUD_DATA_DIR";
  }
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== "ed25519") return `must be an Ed25519 key, got ${key.asymmetricKeyType ?? "unknown"}`;
  } catch {
    return "not a PEM private key";
  }
  return null;
}
