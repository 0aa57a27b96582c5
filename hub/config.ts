// Hub configuration: parsed once from the environment, validated, frozen (STYLE.md §4).
// Every variable here has a row in the README's configuration table and in systemd/hub.env.
import { z } from "zod";
import { hostname } from "node:os";
import { isValidTimeZone } from "../shared/time-zone.js";

const port = z.coerce.number().int().min(0).max(65535);
const positive = z.coerce.number().int().positive();

export const HubEnv = z.object({
  HUB_DATA_DIR: z.string().min(1).default("./data/hub"),
  HUB_HTTP_HOST: z.string().min(1).default("0.0.0.0"),
  HUB_HTTP_PORT: port.default(8080),
  HUB_MQTT_HOST: z.string().min(1).default("0.0.0.0"),
  HUB_MQTT_PORT: port.default(1883),
  HUB_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  HUB_PUBLIC_HOST: z.string().min(1).default(`${hostname()}.local`),
  HUB_CORS_ORIGINS: z.string().default(""),
  HUB_COMMIT_INTERVAL_MS: positive.max(1000).default(1000),
  HUB_COMMAND_TIMEOUT_MS: positive.max(30_000).default(3000),
  HUB_STATE_FLUSH_MS: positive.default(10_000),
  HUB_TIMEZONE: z
    .string()
    .default(Intl.DateTimeFormat().resolvedOptions().timeZone)
    .refine(isValidTimeZone, "must be an IANA time zone such as Europe/Berlin"),
  HUB_RETENTION_RAW_DAYS: positive.default(7),
  HUB_RETENTION_1M_DAYS: positive.default(30),
  HUB_RETENTION_1H_DAYS: positive.default(365),
  HUB_RETENTION_1D_DAYS: positive.default(1825),
  HUB_ROLLUP_INTERVAL_MS: positive.default(10_000),
  HUB_SNTP_PORT: z.union([z.literal("off"), port]).default(123),
  HUB_DISK_BUDGET_MB: positive.default(256),
  HUB_DISK_RESERVE_MB: positive.default(64),
  HUB_POLL_INTERVAL_MS: z.coerce.number().int().min(0).default(5000),
  HUB_ACCESS_TOKEN_TTL_S: positive.min(60).max(86_400).default(900),
  HUB_REFRESH_TOKEN_TTL_S: positive.min(7 * 86_400).default(30 * 86_400),
  HUB_MQTT_MAX_CONNECTIONS: positive.default(1000),
  HUB_MQTT_CONNECT_RATE: positive.default(50),
  HUB_MQTT_MSG_RATE: positive.default(20),
  HUB_MQTT_GLOBAL_MSG_RATE: positive.default(15_000),
  HUB_MQTT_CONNECT_TIMEOUT_MS: positive.max(60_000).default(10_000),
  HUB_MQTT_MAX_KEEPALIVE_S: positive.max(65_535).default(3600),
  HUB_CLOUD_URL: z
    .string()
    .default("")
    .refine((v) => v === "" || /^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(v), "must be an http(s) URL such as https://cloud.example.com, or empty for no cloud"),
  HUB_NAME: z.string().trim().min(1).max(100).default("Smart plug hub"),
  HUB_SYNC_INTERVAL_MS: positive.default(10_000),
  HUB_SYNC_BATCH_ROWS: positive.max(5000).default(5000),
  HUB_SYNC_TIMEOUT_MS: positive.max(30_000).default(30_000),
  HUB_SYNC_BACKOFF_BASE_MS: positive.default(1000),
  HUB_SYNC_BACKOFF_MAX_S: positive.default(900),
  HUB_OUTBOX_MAX_MB: positive.default(64),
  HUB_OUTBOX_MAX_AGE_DAYS: positive.default(7),
  HUB_LINK_STATE_MS: positive.default(1000),
});

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

export interface HubConfig {
  dataDir: string;
  http: { host: string; port: number };
  mqtt: { host: string; port: number; publicHost: string };
  logLevel: string;
  corsOrigins: string[];
  ingest: { commitIntervalMs: number; maxBatch: number };
  commandTimeoutMs: number;
  stateFlushMs: number;
  /** How often metered plugs that report slowly (Tasmota, Shelly Gen2) are polled, ms; 0 = never. */
  pollIntervalMs: number;
  /** The hub's IANA time zone: local days for daily rollups, tariffs and schedules. */
  timeZone: string;
  rollupIntervalMs: number;
  storage: { budgetBytes: number; reserveBytes: number };
  /** UDP port of the LAN time server, or null when off. */
  sntpPort: number | null;
  retention: { rawMs: number; minuteMs: number; hourMs: number; dayMs: number };
  /** Power is not integrated across gaps longer than this (PROTOCOLS.md §5). */
  maxEnergyGapMs: number;
  tokens: { accessTtlSec: number; refreshTtlSec: number };
  login: { burst: number; refillSec: number };
  sync: {
    /** The cloud's base URL without a trailing slash, or null: no cloud, nothing leaves the LAN. */
    cloudUrl: string | null;
    hubName: string;
    outbox: { maxBytes: number; maxAgeMs: number };
    uplink: { intervalMs: number; maxRows: number; maxBytes: number; requestTimeoutMs: number; backoffBaseMs: number; backoffMaxMs: number };
    link: { pingMs: number; stateThrottleMs: number; backoffBaseMs: number; backoffMaxMs: number };
  };
  limits: {
    maxPacketBytes: number;
    connectTimeoutMs: number;
    msgRate: number;
    msgBurst: number;
    maxShedPerConnection: number;
    maxConnections: number;
    connectsPerIpPerSec: number;
    connectsPerIpBurst: number;
    globalMsgRate: number;
    maxKeepaliveSec: number;
    maxTopicLevels: number;
    maxInflight: number;
  };
}

/** Writes that commit at once, without waiting for the rest of HUB_COMMIT_INTERVAL_MS. */
const MAX_COMMIT_BATCH = 2000;

export function loadHubConfig(env: Record<string, string | undefined>): Readonly<HubConfig> {
  const parsed = HubEnv.safeParse(env);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
  const e = parsed.data;
  return Object.freeze({
    dataDir: e.HUB_DATA_DIR,
    http: { host: e.HUB_HTTP_HOST, port: e.HUB_HTTP_PORT },
    mqtt: { host: e.HUB_MQTT_HOST, port: e.HUB_MQTT_PORT, publicHost: e.HUB_PUBLIC_HOST },
    logLevel: e.HUB_LOG_LEVEL,
    corsOrigins: e.HUB_CORS_ORIGINS.split(",").map((s) => s.trim()).filter(Boolean),
    ingest: { commitIntervalMs: e.HUB_COMMIT_INTERVAL_MS, maxBatch: MAX_COMMIT_BATCH },
    commandTimeoutMs: e.HUB_COMMAND_TIMEOUT_MS,
    stateFlushMs: e.HUB_STATE_FLUSH_MS,
    pollIntervalMs: e.HUB_POLL_INTERVAL_MS,
    timeZone: e.HUB_TIMEZONE,
    rollupIntervalMs: e.HUB_ROLLUP_INTERVAL_MS,
    sntpPort: e.HUB_SNTP_PORT === "off" ? null : e.HUB_SNTP_PORT,
    storage: { budgetBytes: e.HUB_DISK_BUDGET_MB * 1024 * 1024, reserveBytes: e.HUB_DISK_RESERVE_MB * 1024 * 1024 },
    retention: {
      rawMs: e.HUB_RETENTION_RAW_DAYS * 86_400_000,
      minuteMs: e.HUB_RETENTION_1M_DAYS * 86_400_000,
      hourMs: e.HUB_RETENTION_1H_DAYS * 86_400_000,
      dayMs: e.HUB_RETENTION_1D_DAYS * 86_400_000,
    },
    maxEnergyGapMs: 5 * 60_000,
    tokens: { accessTtlSec: e.HUB_ACCESS_TOKEN_TTL_S, refreshTtlSec: e.HUB_REFRESH_TOKEN_TTL_S },
    login: { burst: 5, refillSec: 60 },
    sync: {
      cloudUrl: e.HUB_CLOUD_URL ? e.HUB_CLOUD_URL.replace(/\/+$/, "") : null,
      hubName: e.HUB_NAME,
      outbox: { maxBytes: e.HUB_OUTBOX_MAX_MB * 1024 * 1024, maxAgeMs: e.HUB_OUTBOX_MAX_AGE_DAYS * 86_400_000 },
      uplink: {
        intervalMs: e.HUB_SYNC_INTERVAL_MS,
        maxRows: e.HUB_SYNC_BATCH_ROWS,
        maxBytes: 4 * 1024 * 1024,
        requestTimeoutMs: e.HUB_SYNC_TIMEOUT_MS,
        backoffBaseMs: e.HUB_SYNC_BACKOFF_BASE_MS,
        backoffMaxMs: e.HUB_SYNC_BACKOFF_MAX_S * 1000,
      },
      // The link reconnects with the uplink's backoff, capped at a minute: commands wait on it.
      link: { pingMs: 15_000, stateThrottleMs: e.HUB_LINK_STATE_MS, backoffBaseMs: e.HUB_SYNC_BACKOFF_BASE_MS, backoffMaxMs: Math.min(60_000, e.HUB_SYNC_BACKOFF_MAX_S * 1000) },
    },
    limits: {
      maxPacketBytes: 16 * 1024, // RELIABILITY A6/A7
      connectTimeoutMs: e.HUB_MQTT_CONNECT_TIMEOUT_MS,
      msgRate: e.HUB_MQTT_MSG_RATE,
      msgBurst: e.HUB_MQTT_MSG_RATE * 5,
      maxShedPerConnection: e.HUB_MQTT_MSG_RATE * 10,
      maxConnections: e.HUB_MQTT_MAX_CONNECTIONS,
      connectsPerIpPerSec: e.HUB_MQTT_CONNECT_RATE,
      connectsPerIpBurst: e.HUB_MQTT_CONNECT_RATE * 2,
      globalMsgRate: e.HUB_MQTT_GLOBAL_MSG_RATE,
      maxKeepaliveSec: e.HUB_MQTT_MAX_KEEPALIVE_S,
      maxTopicLevels: 8, // RELIABILITY A7
      // Readings wait unacked for their group commit: a full batch queued while the previous one commits, plus room
      // for the rest of the traffic; beyond it PUBLISHes are shed as `backlog` (RELIABILITY fact 7).
      maxInflight: 2 * MAX_COMMIT_BATCH + 1000,
    },
  });
}
