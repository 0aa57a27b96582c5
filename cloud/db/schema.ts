// Cloud metadata schema (drizzle, PostgreSQL dialect; the same migrations run on PGlite and PostgreSQL).
// Time series live in InfluxDB, not here; this holds who owns what and the latest state hubs report.
import { pgTable, text, uuid, timestamp, boolean, doublePrecision, integer, bigint, bigserial, jsonb, primaryKey, index, uniqueIndex } from "drizzle-orm/pg-core";

import type { Tariff } from "../../shared/schemas/energy.js";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

export const users = pgTable("users", {
  id: uuid("id").primaryKey(),
  email: text("email").notNull().unique(),
  name: text("name"),
  passwordHash: text("password_hash").notNull(),
  createdAt: ts("created_at").notNull(),
  updatedAt: ts("updated_at").notNull(),
});

export const refreshTokens = pgTable(
  "refresh_tokens",
  {
    tokenHash: text("token_hash").primaryKey(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    familyId: uuid("family_id").notNull(),
    expiresAt: ts("expires_at").notNull(),
    usedAt: ts("used_at"),
    revokedAt: ts("revoked_at"),
    createdAt: ts("created_at").notNull(),
  },
  (t) => [index("refresh_tokens_family").on(t.familyId), index("refresh_tokens_user").on(t.userId)],
);

export const hubs = pgTable(
  "hubs",
  {
    id: uuid("id").primaryKey(),
    name: text("name").notNull(),
    /** sha256 of the hub's 256-bit secret (high entropy: a fast hash is enough). */
    secretHash: text("secret_hash").notNull(),
    ownerId: uuid("owner_id").references(() => users.id, { onDelete: "set null" }),
    mqttHost: text("mqtt_host").notNull(),
    mqttPort: integer("mqtt_port").notNull(),
    /** IANA zone of the hub's home: local days, weeks and months and tariff hours are counted in it. */
    timeZone: text("time_zone").notNull().default("UTC"),
    tariff: jsonb("tariff").$type<Tariff>(),
    /** sha256 of the current claim code; single use (RELIABILITY A17). */
    claimCodeHash: text("claim_code_hash"),
    claimExpiresAt: ts("claim_expires_at"),
    claimUsedAt: ts("claim_used_at"),
    claimedAt: ts("claimed_at"),
    lastSeen: ts("last_seen"),
    createdAt: ts("created_at").notNull(),
    /** Highest outbox sequence of this hub the cloud has durably stored (issue 6: POST /hub/sync acks it). */
    syncedSeq: bigint("synced_seq", { mode: "number" }).notNull().default(0),
    lastSyncAt: ts("last_sync_at"),
  },
  (t) => [uniqueIndex("hubs_claim_code").on(t.claimCodeHash), index("hubs_owner").on(t.ownerId)],
);

/** A whole hub shared with another user. */
export const hubUsers = pgTable(
  "hub_users",
  {
    hubId: uuid("hub_id")
      .notNull()
      .references(() => hubs.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    role: text("role", { enum: ["viewer", "controller"] }).notNull(),
    createdAt: ts("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.hubId, t.userId] }), index("hub_users_user").on(t.userId)],
);

export const devices = pgTable(
  "devices",
  {
    id: uuid("id").primaryKey(),
    hubId: uuid("hub_id")
      .notNull()
      .references(() => hubs.id, { onDelete: "cascade" }),
    /** The hub-local id (also the plug's MQTT client id); unique per hub, not globally. */
    deviceId: text("device_id").notNull(),
    name: text("name").notNull(),
    family: text("family").notNull(),
    /** Relay/meter channel on a multi-channel plug (0 = first). */
    channel: integer("channel").notNull().default(0),
    /** The plug's secret in the hub's scrypt format, handed to the hub by the link; never the plain code. */
    secretHash: text("secret_hash"),
    createdAt: ts("created_at").notNull(),
    // Latest state the hub reported (setLatest): GET /devices and /telemetry/latest read it from here.
    online: boolean("online").notNull().default(false),
    relayOn: boolean("relay_on"),
    firmware: text("firmware"),
    lastSeen: ts("last_seen"),
    latestAt: ts("latest_at"),
    power: doublePrecision("power"),
    voltage: doublePrecision("voltage"),
    current: doublePrecision("current"),
    energyWh: doublePrecision("energy_wh"),
    /** Version (ms at the edit's origin) of `name`: last writer wins between hub and cloud (issue 6). */
    nameVersion: bigint("name_version", { mode: "number" }).notNull().default(0),
    /** The name was edited in the cloud and the hub has not echoed that version back yet. */
    namePending: boolean("name_pending").notNull().default(false),
    /** When the hub saw the relay change stored in relay_on (ms); older relay rows do not move it back. */
    relayAt: bigint("relay_at", { mode: "number" }),
    /**
     * Created in the cloud (POST /devices) and not yet confirmed by the hub's device row: pushed to the hub as
     * LinkDevicePairing (with `secret_hash`) on every connect. The hash is cleared once the hub has it.
     */
    pairingPending: boolean("pairing_pending").notNull().default(false),
  },
  (t) => [uniqueIndex("devices_hub_device").on(t.hubId, t.deviceId), index("devices_device_id").on(t.deviceId)],
);

/**
 * A device deleted on either side (issue 6 §5): a deletion is final against renames, so a hub row for a pairing
 * not newer than `version` does not bring it back. `pending`: deleted in the cloud and the hub has not echoed it
 * yet, pushed as LinkDeviceRemoved on every connect.
 */
export const deviceTombstones = pgTable(
  "device_tombstones",
  {
    hubId: uuid("hub_id")
      .notNull()
      .references(() => hubs.id, { onDelete: "cascade" }),
    deviceId: text("device_id").notNull(),
    version: bigint("version", { mode: "number" }).notNull(),
    pending: boolean("pending").notNull().default(false),
    deletedAt: ts("deleted_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.hubId, t.deviceId] })],
);

/** A single device shared with another user. */
export const deviceUsers = pgTable(
  "device_users",
  {
    deviceId: uuid("device_id")
      .notNull()
      .references(() => devices.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    role: text("role", { enum: ["viewer", "controller"] }).notNull(),
    createdAt: ts("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.deviceId, t.userId] }), index("device_users_user").on(t.userId)],
);

export const commands = pgTable(
  "commands",
  {
    id: uuid("id").primaryKey(),
    /** The client's idempotency key (or a generated one); unique per device. */
    commandId: text("command_id").notNull(),
    deviceId: uuid("device_id")
      .notNull()
      .references(() => devices.id, { onDelete: "cascade" }),
    hubId: uuid("hub_id")
      .notNull()
      .references(() => hubs.id, { onDelete: "cascade" }),
    userId: uuid("user_id").references(() => users.id, { onDelete: "set null" }),
    command: text("command").notNull(),
    status: text("status").notNull(),
    relayOn: boolean("relay_on"),
    createdAt: ts("created_at").notNull(),
    expiresAt: ts("expires_at").notNull(),
    completedAt: ts("completed_at"),
  },
  (t) => [uniqueIndex("commands_device_command").on(t.deviceId, t.commandId), index("commands_hub_status").on(t.hubId, t.status)],
);

export const auditLogs = pgTable(
  "audit_logs",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: ts("at").notNull(),
    actorUserId: uuid("actor_user_id"),
    actorHubId: uuid("actor_hub_id"),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id"),
    detail: jsonb("detail").$type<Record<string, unknown>>(),
    ip: text("ip"),
  },
  (t) => [index("audit_logs_at").on(t.at), index("audit_logs_actor").on(t.actorUserId)],
);

/** Alerts the hub raised, synced up (issue 6); keyed by the hub's alert id, so redelivery overwrites itself. */
export const alerts = pgTable(
  "alerts",
  {
    hubId: uuid("hub_id")
      .notNull()
      .references(() => hubs.id, { onDelete: "cascade" }),
    alertId: text("alert_id").notNull(),
    /** Hub-local device id (null: a hub-wide alert such as storage). */
    deviceId: text("device_id"),
    kind: text("kind").notNull(),
    message: text("message").notNull(),
    startedAt: ts("started_at").notNull(),
    resolvedAt: ts("resolved_at"),
    acknowledgedAt: ts("acknowledged_at"),
  },
  (t) => [primaryKey({ columns: [t.hubId, t.alertId] }), index("alerts_hub_device").on(t.hubId, t.deviceId)],
);

/**
 * Schedules, edited on either side (issue 6): `rule` is the hub's CreateScheduleRequest shape. Last writer wins
 * by `version`; a deletion is kept as a tombstone so a stale upsert cannot bring the schedule back.
 */
export const schedules = pgTable(
  "schedules",
  {
    hubId: uuid("hub_id")
      .notNull()
      .references(() => hubs.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    deviceId: text("device_id").notNull(),
    rule: jsonb("rule").$type<Record<string, unknown>>(),
    version: bigint("version", { mode: "number" }).notNull(),
    deleted: boolean("deleted").notNull().default(false),
    /** Edited in the cloud and not yet echoed back by the hub: pushed on every link connect. */
    pending: boolean("pending").notNull().default(false),
    createdAt: ts("created_at").notNull(),
    updatedAt: ts("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.hubId, t.id] }), index("schedules_id").on(t.id), index("schedules_hub_device").on(t.hubId, t.deviceId)],
);
