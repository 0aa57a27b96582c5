// Hub database schema (drizzle, SQLite). `readings` is created WITHOUT ROWID and keyed by
// (ts, device) in the migration SQL: appends then touch only the right edge of one B-tree,
// which keeps bytes written per reading low on an SD card (issue 2, disk figure).
import { sqliteTable, text, integer, real, primaryKey, index } from "drizzle-orm/sqlite-core";

export const users = sqliteTable("users", {
  id: text("id").primaryKey(),
  email: text("email").notNull().unique(),
  name: text("name"),
  passwordHash: text("password_hash").notNull(),
  role: text("role", { enum: ["owner", "member"] }).notNull(),
  createdAt: integer("created_at").notNull(),
});

export const refreshTokens = sqliteTable(
  "refresh_tokens",
  {
    tokenHash: text("token_hash").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    familyId: text("family_id").notNull(),
    expiresAt: integer("expires_at").notNull(),
    usedAt: integer("used_at"),
    revokedAt: integer("revoked_at"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("refresh_tokens_family").on(t.familyId)],
);

export const devices = sqliteTable("devices", {
  /** Small integer key used in `readings` (2 bytes instead of a text id per row). */
  idx: integer("idx").primaryKey({ autoIncrement: true }),
  deviceId: text("device_id").notNull().unique(),
  name: text("name").notNull(),
  family: text("family").notNull(),
  mqttUser: text("mqtt_user").notNull().unique(),
  topic: text("topic").notNull(),
  channel: integer("channel").notNull().default(0),
  secretHash: text("secret_hash").notNull(),
  createdAt: integer("created_at").notNull(),
  online: integer("online", { mode: "boolean" }).notNull().default(false),
  firmware: text("firmware"),
  relayOn: integer("relay_on", { mode: "boolean" }),
  lastSeen: integer("last_seen"),
  /** Energy accumulator state, flushed periodically; readings after `stateAsOf` are replayed at start. */
  energyWh: real("energy_wh").notNull().default(0),
  counterWh: real("counter_wh"),
  lastPowerW: real("last_power_w"),
  lastReadingTs: integer("last_reading_ts"),
  stateAsOf: integer("state_as_of").notNull().default(0),
});

/** Raw samples; integer-scaled: power 0.1 W, voltage 0.1 V, current mA, counter mWh. */
export const readings = sqliteTable(
  "readings",
  {
    ts: integer("ts").notNull(),
    device: integer("device").notNull(),
    powerDw: integer("power_dw"),
    voltageDv: integer("voltage_dv"),
    currentMa: integer("current_ma"),
    relay: integer("relay"),
    counterMwh: integer("counter_mwh"),
  },
  (t) => [primaryKey({ columns: [t.ts, t.device] })],
);

export const commands = sqliteTable("commands", {
  id: text("id").primaryKey(),
  deviceId: text("device_id").notNull(),
  command: text("command").notNull(),
  status: text("status").notNull(),
  relayOn: integer("relay_on", { mode: "boolean" }),
  createdAt: integer("created_at").notNull(),
  completedAt: integer("completed_at"),
});

export const meta = sqliteTable("meta", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

const rollupColumns = {
  bucket: integer("bucket").notNull(),
  device: integer("device").notNull(),
  samples: integer("samples").notNull(),
  powerSum: integer("power_sum").notNull(),
  powerN: integer("power_n").notNull(),
  powerMin: integer("power_min"),
  powerMax: integer("power_max"),
  voltageSum: integer("voltage_sum").notNull(),
  voltageN: integer("voltage_n").notNull(),
  currentSum: integer("current_sum").notNull(),
  currentN: integer("current_n").notNull(),
  energyWh: real("energy_wh").notNull(),
  onMs: integer("on_ms").notNull(),
};

/** 1-minute rollups, keyed (bucket, device) like `readings`: each run appends at the right edge (WITHOUT ROWID in SQL). */
export const rollup1m = sqliteTable("rollup_1m", rollupColumns, (t) => [primaryKey({ columns: [t.bucket, t.device] })]);
/** Hourly (UTC hours) and daily (local days) rollups, keyed (device, bucket): written rarely, read per device. */
export const rollup1h = sqliteTable("rollup_1h", rollupColumns, (t) => [primaryKey({ columns: [t.device, t.bucket] })]);
export const rollup1d = sqliteTable("rollup_1d", rollupColumns, (t) => [primaryKey({ columns: [t.device, t.bucket] })]);

/** Each device's last reading as the 1-minute rollup saw it: the exact starting point of the next run. */
export const rollupCarry = sqliteTable("rollup_carry", {
  device: integer("device").primaryKey(),
  ts: integer("ts").notNull(),
  powerDw: integer("power_dw"),
  relay: integer("relay"),
  counterMwh: integer("counter_mwh"),
});

export const schedules = sqliteTable(
  "schedules",
  {
    id: text("id").primaryKey(),
    deviceId: text("device_id").notNull(),
    type: text("type", { enum: ["weekly", "window", "once"] }).notNull(),
    name: text("name"),
    days: text("days"), // JSON array of ISO weekdays
    at: text("at"),
    from: text("from_time"),
    to: text("to_time"),
    action: text("action", { enum: ["on", "off"] }).notNull(),
    timeZone: text("time_zone").notNull(),
    enabled: integer("enabled", { mode: "boolean" }).notNull(),
    reassertOnBoot: integer("reassert_on_boot", { mode: "boolean" }).notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("schedules_device").on(t.deviceId)],
);

/** The last schedule edge applied to each device, so an edge is applied once (F10: no burst after a clock jump). */
export const scheduleState = sqliteTable("schedule_state", {
  deviceId: text("device_id").primaryKey(),
  firedEdgeTs: integer("fired_edge_ts").notNull(),
  /** Last manual switch (API or the plug's button): holds until the next edge. */
  manualAt: integer("manual_at"),
});

export const alerts = sqliteTable(
  "alerts",
  {
    id: text("id").primaryKey(),
    deviceId: text("device_id"),
    kind: text("kind").notNull(),
    message: text("message").notNull(),
    details: text("details"),
    startedAt: integer("started_at").notNull(),
    resolvedAt: integer("resolved_at"),
    acknowledgedAt: integer("acknowledged_at"),
  },
  (t) => [index("alerts_started").on(t.startedAt)],
);

export const alertSettings = sqliteTable("alert_settings", {
  deviceId: text("device_id").primaryKey(),
  offlineGraceS: integer("offline_grace_s"),
  powerAboveW: real("power_above_w"),
  finishedAboveW: real("finished_above_w"),
  finishedIdleMin: integer("finished_idle_min"),
});
