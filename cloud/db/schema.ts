// Cloud metadata schema (drizzle, PostgreSQL dialect; the same migrations run on PGlite and PostgreSQL).
// Time series live in InfluxDB, not here; this holds who owns what and the latest state hubs report.
import { pgTable, text, uuid, timestamp, boolean, doublePrecision, integer, bigserial, jsonb, primaryKey, index, uniqueIndex } from "drizzle-orm/pg-core";

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
  },
  (t) => [uniqueIndex("devices_hub_device").on(t.hubId, t.deviceId), index("devices_device_id").on(t.deviceId)],
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
