-- Hub ↔ cloud sync (issue 6): a durable outbox with a monotonically increasing sequence (AUTOINCREMENT never
-- reuses a sequence, even after the outbox was emptied). Rows name what changed; the uplink reads the current
-- content when it sends, so a rollup re-folded after a late reading goes up with its final values.
-- Triggers fill the outbox in the same transaction as the change, and only once the hub has a cloud
-- (meta 'sync_enabled'), so a hub without a cloud writes nothing extra.
CREATE TABLE `sync_outbox` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`ref` text NOT NULL,
	`ts` integer NOT NULL,
	`payload` text,
	`bytes` integer NOT NULL,
	`queued_at` integer NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);
--> statement-breakpoint
CREATE INDEX `sync_outbox_kind` ON `sync_outbox` (`kind`, `seq`);
--> statement-breakpoint
CREATE TABLE `sync_dead_letters` (
	`seq` integer PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`ref` text NOT NULL,
	`row` text NOT NULL,
	`reason` text NOT NULL,
	`dead_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `sync_tombstones` (
	`kind` text NOT NULL,
	`ref` text NOT NULL,
	`device_id` text,
	`version` integer NOT NULL,
	PRIMARY KEY(`kind`, `ref`)
);
--> statement-breakpoint
ALTER TABLE `devices` ADD `name_version` integer NOT NULL DEFAULT 0;
--> statement-breakpoint
ALTER TABLE `schedules` ADD `version` integer NOT NULL DEFAULT 0;
--> statement-breakpoint
CREATE TRIGGER `sync_rollup_1m` AFTER INSERT ON `rollup_1m` WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled') BEGIN
	INSERT INTO sync_outbox (kind, ref, ts, bytes) VALUES ('rollup_1m', NEW.device, NEW.bucket, 280);
END;
--> statement-breakpoint
CREATE TRIGGER `sync_rollup_1h` AFTER INSERT ON `rollup_1h` WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled') BEGIN
	INSERT INTO sync_outbox (kind, ref, ts, bytes) VALUES ('rollup_1h', NEW.device, NEW.bucket, 280);
END;
--> statement-breakpoint
CREATE TRIGGER `sync_rollup_1d` AFTER INSERT ON `rollup_1d` WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled') BEGIN
	INSERT INTO sync_outbox (kind, ref, ts, bytes) VALUES ('rollup_1d', NEW.device, NEW.bucket, 280);
END;
--> statement-breakpoint
CREATE TRIGGER `sync_device_insert` AFTER INSERT ON `devices` BEGIN
	UPDATE devices SET name_version = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) WHERE idx = NEW.idx AND NEW.name_version = 0;
	INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'device', NEW.device_id, NEW.created_at, 200 WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled');
END;
--> statement-breakpoint
CREATE TRIGGER `sync_device_rename` AFTER UPDATE OF `name` ON `devices` WHEN NEW.name IS NOT OLD.name BEGIN
	UPDATE devices SET name_version = MAX(OLD.name_version + 1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) WHERE idx = NEW.idx AND NEW.name_version = OLD.name_version;
	INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'device', NEW.device_id, NEW.created_at, 200 WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled');
END;
--> statement-breakpoint
CREATE TRIGGER `sync_device_delete` AFTER DELETE ON `devices` BEGIN
	INSERT OR REPLACE INTO sync_tombstones (kind, ref, device_id, version) VALUES ('device', OLD.device_id, OLD.device_id, MAX(OLD.name_version + 1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)));
	INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'device', OLD.device_id, OLD.created_at, 120 WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled');
END;
--> statement-breakpoint
CREATE TRIGGER `sync_schedule_insert` AFTER INSERT ON `schedules` BEGIN
	UPDATE schedules SET version = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) WHERE id = NEW.id AND NEW.version = 0;
	DELETE FROM sync_tombstones WHERE kind = 'schedule' AND ref = NEW.id;
	INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'schedule', NEW.id, NEW.created_at, 400 WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled');
END;
--> statement-breakpoint
CREATE TRIGGER `sync_schedule_update` AFTER UPDATE ON `schedules` WHEN NEW.version = OLD.version BEGIN
	UPDATE schedules SET version = MAX(OLD.version + 1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) WHERE id = NEW.id;
	INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'schedule', NEW.id, NEW.created_at, 400 WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled');
END;
--> statement-breakpoint
CREATE TRIGGER `sync_schedule_delete` AFTER DELETE ON `schedules` BEGIN
	INSERT OR REPLACE INTO sync_tombstones (kind, ref, device_id, version) VALUES ('schedule', OLD.id, OLD.device_id, MAX(OLD.version + 1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)));
	INSERT INTO sync_outbox (kind, ref, ts, bytes) SELECT 'schedule', OLD.id, OLD.created_at, 120 WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled');
END;
--> statement-breakpoint
CREATE TRIGGER `sync_alert_insert` AFTER INSERT ON `alerts` WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled') BEGIN
	INSERT INTO sync_outbox (kind, ref, ts, bytes) VALUES ('alert', NEW.id, NEW.started_at, 300);
END;
--> statement-breakpoint
CREATE TRIGGER `sync_alert_update` AFTER UPDATE ON `alerts` WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled') BEGIN
	INSERT INTO sync_outbox (kind, ref, ts, bytes) VALUES ('alert', NEW.id, NEW.started_at, 300);
END;
