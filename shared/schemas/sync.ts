// The hub ↔ cloud sync protocol (issue 6, ARCHITECTURE §3): the hub's durable outbox goes up as gzip JSON
// batches on `POST /hub/sync`; commands, live state and config travel over one hub-initiated WebSocket,
// `GET /hub/link`. Both authenticate with the hub credential (`Authorization: Basic base64(hub_id:hub_secret)`).
// Every row carries the outbox sequence; the cloud writes rows idempotently (rollups keyed by hub, device and
// bucket; config by version) and answers with the highest sequence it stored, so a redelivered batch is a no-op.
import { z } from "zod";
import { DeviceId, IsoTime } from "./common.js";
import { RollupPoint, LatestState } from "./rollups.js";
import { CommandName } from "./devices.js";
import { PlugFamily } from "./devices.js";

const Seq = z.number().int().positive();
/**
 * Milliseconds since the epoch of the edit at its origin, strictly greater than the version it replaced. The
 * conflict rule (issue 6 §5, the same in hub/sync/sync-service.ts and cloud/sync/sync-service.ts): between two
 * edits the higher version wins, and the hub's at equal versions; a deletion is final — it beats every edit of
 * the item, older or newer — and only a new pairing (newer than the deletion) brings a device id back.
 */
const Version = z.number().int().nonnegative();

export const SyncRollupRow = z.strictObject({ seq: Seq, kind: z.literal("rollup"), point: RollupPoint });

/** A device as the hub has it; `deleted` when it was unpaired. The name is config (synced both ways). */
export const SyncDeviceRow = z.strictObject({
  seq: Seq,
  kind: z.literal("device"),
  device_id: DeviceId,
  deleted: z.boolean(),
  name: z.string().min(1).max(100).nullable(),
  family: PlugFamily.nullable(),
  channel: z.number().int().min(0).max(7).nullable(),
  version: Version,
  /**
   * When the hub's current pairing of this id was made (ms; absent on deletions and from older hubs). A deletion
   * removes every pairing not newer than it; a pairing newer than a deletion is a new device (issue 6 §5).
   */
  paired_at: Version.optional(),
});

/** A relay change the hub saw (command, schedule, the plug's button), in order. */
export const SyncRelayRow = z.strictObject({
  seq: Seq,
  kind: z.literal("relay"),
  device_id: DeviceId,
  ts: z.number().int().nonnegative(),
  relay_state: z.boolean(),
  source: z.enum(["command", "schedule", "plug"]).nullable(),
});

export const SyncAlertRow = z.strictObject({
  seq: Seq,
  kind: z.literal("alert"),
  alert_id: z.string().min(1).max(64),
  device_id: DeviceId.nullable(),
  alert_kind: z.string().min(1).max(32),
  message: z.string().max(500),
  started_at: z.number().int().nonnegative(),
  resolved_at: z.number().int().nonnegative().nullable(),
  acknowledged_at: z.number().int().nonnegative().nullable(),
});

/** A schedule as the hub has it (`rule` is the hub's CreateScheduleRequest shape), or its deletion. */
export const SyncScheduleRow = z.strictObject({
  seq: Seq,
  kind: z.literal("schedule"),
  schedule_id: z.string().min(1).max(64),
  device_id: DeviceId,
  deleted: z.boolean(),
  rule: z.record(z.string(), z.unknown()).nullable(),
  version: Version,
  /** When the schedule was created (ms), so both sides answer the same `created_at` (absent from older hubs). */
  created_at: Version.optional(),
});

export const SyncRow = z.discriminatedUnion("kind", [SyncRollupRow, SyncDeviceRow, SyncRelayRow, SyncAlertRow, SyncScheduleRow]);
export type SyncRow = z.infer<typeof SyncRow>;

export const MAX_SYNC_ROWS = 5000;
/**
 * A batch of outbox rows (at least one), or — with `query: "synced_seq"` and no rows — the hub asking for the highest
 * sequence the cloud has stored for it, before it sends anything numbered since it opened its database: a hub restored
 * from a backup numbers new rows from the backup's sequence, which the cloud may have passed already (it would skip
 * them as "already stored"), so the hub renumbers them above the cloud's answer first (hub/sync/outbox.ts).
 */
export const SyncBatch = z
  .strictObject({
    rows: z.array(z.unknown()).max(MAX_SYNC_ROWS),
    query: z.literal("synced_seq").optional(),
  })
  .refine((b) => (b.query === undefined ? b.rows.length >= 1 : b.rows.length === 0), {
    message: 'a batch has at least one row; a query ("synced_seq") has none',
    path: ["rows"],
  })
  .meta({ id: "SyncBatch" });
export type SyncBatch = z.infer<typeof SyncBatch>;

export const SyncAck = z
  .object({
    acked_seq: z.number().int().nonnegative().meta({ description: "every row of the batch up to this sequence is durably stored (0 for a query)" }),
    stored: z.number().int().nonnegative(),
    synced_seq: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .meta({ description: 'in the answer to a query ("synced_seq"): the highest sequence the cloud has stored for this hub; rows numbered at or below it are skipped as already stored' }),
  })
  .meta({ id: "SyncAck" });
export type SyncAck = z.infer<typeof SyncAck>;

/** One row the cloud refused, with why (the hub bisects 4xx batches down to these and dead-letters them). */
export const SyncRejected = z.object({ seq: z.number().int(), index: z.number().int(), reason: z.string() });
export type SyncRejected = z.infer<typeof SyncRejected>;

// --- the link (JSON text frames) ---

/** cloud → hub: run a command. `expires_at` past means the hub answers `expired` without touching the plug (A19). */
export const LinkCommand = z.strictObject({
  type: z.literal("command"),
  id: z.string().min(1).max(64),
  device_id: z.string().max(200),
  command: CommandName,
  expires_at: IsoTime,
});
export type LinkCommand = z.infer<typeof LinkCommand>;

/** cloud → hub: config edited in the cloud (applied when its version is newer than the hub's). */
export const LinkDeviceConfig = z.strictObject({ type: z.literal("device_config"), device_id: DeviceId, name: z.string().min(1).max(100), version: Version });
export type LinkDeviceConfig = z.infer<typeof LinkDeviceConfig>;

export const LinkScheduleConfig = z.strictObject({
  type: z.literal("schedule_config"),
  schedule_id: z.string().min(1).max(64),
  device_id: DeviceId,
  deleted: z.boolean(),
  rule: z.record(z.string(), z.unknown()).nullable(),
  version: Version,
  created_at: Version.optional(),
});
export type LinkScheduleConfig = z.infer<typeof LinkScheduleConfig>;

/**
 * cloud → hub: a device created in the cloud (POST /devices), until the hub's device row echoes it. It carries
 * the pairing code's scrypt hash in the hub's `scrypt$N$r$p$salt$hash` format, never the code itself: the hub
 * checks the plug's MQTT password against it. `paired_at` is the pairing's version (see SyncDeviceRow).
 */
export const LinkDevicePairing = z.strictObject({
  type: z.literal("device_pairing"),
  device_id: DeviceId,
  name: z.string().min(1).max(100),
  name_version: Version,
  family: PlugFamily,
  channel: z.number().int().min(0).max(7),
  secret_hash: z.string().regex(/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/).max(200),
  paired_at: Version,
});
export type LinkDevicePairing = z.infer<typeof LinkDevicePairing>;

/** cloud → hub: a device deleted in the cloud at `version`, until the hub's deletion row echoes it. */
export const LinkDeviceRemoved = z.strictObject({ type: z.literal("device_removed"), device_id: DeviceId, version: Version });
export type LinkDeviceRemoved = z.infer<typeof LinkDeviceRemoved>;

/** cloud → hub: who may use the hub's local API with a cloud grant (sent on connect and on every change). */
export const LinkAccess = z.strictObject({
  type: z.literal("access"),
  users: z.array(z.strictObject({ user_id: z.string(), email: z.string(), role: z.enum(["owner", "controller", "viewer"]), device_ids: z.array(z.string()).nullable() })),
  public_key_pem: z.string().max(4096),
  /** The `iss` local grants carry (CLOUD_JWT_ISSUER): the hub pins it with the key (RELIABILITY fact 4). */
  issuer: z.string().min(1).max(256),
  issued_at: z.number().int(),
});
export type LinkAccess = z.infer<typeof LinkAccess>;

export const LinkDown = z.discriminatedUnion("type", [LinkCommand, LinkDeviceConfig, LinkScheduleConfig, LinkDevicePairing, LinkDeviceRemoved, LinkAccess]);
export type LinkDown = z.infer<typeof LinkDown>;

export const LINK_COMMAND_STATUSES = ["confirmed", "offline", "timeout", "failed", "expired", "rejected"] as const;
/** hub → cloud: what became of a command (`rejected`: unknown device or malformed; never sent to MQTT). */
export const LinkCommandResult = z.strictObject({
  type: z.literal("command_result"),
  id: z.string().max(64),
  status: z.enum(LINK_COMMAND_STATUSES),
  relay_state: z.boolean().nullable(),
  reason: z.string().max(300).nullable(),
  at: z.number().int(),
});
export type LinkCommandResult = z.infer<typeof LinkCommandResult>;

/** hub → cloud: the latest state of devices (throttled) and status changes. */
export const LinkState = z.strictObject({ type: z.literal("state"), devices: z.array(LatestState).max(1000) });
export type LinkState = z.infer<typeof LinkState>;

/** hub → cloud, on every link connect: where the hub's local API answers on its LAN (for local grants, issue 6 §7). */
export const LinkHello = z.strictObject({ type: z.literal("hello"), local_api_url: z.url({ protocol: /^https?$/ }).max(300).nullable() });
export type LinkHello = z.infer<typeof LinkHello>;

export const LinkUp = z.discriminatedUnion("type", [LinkCommandResult, LinkState, LinkHello]);
export type LinkUp = z.infer<typeof LinkUp>;
