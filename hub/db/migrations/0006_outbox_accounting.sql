-- Outbox accounting (issue 6 §1, §8). The byte budget (HUB_OUTBOX_MAX_MB) now counts what a row costs on disk in
-- the outbox — its record in sync_outbox plus its entry in sync_outbox_kind — instead of a flat 280 B per rollup:
-- a rollup row only names its rollup (the values stay in rollup_1m whatever the outbox does). Measured with dbstat
-- on 504,000 1-minute rollup rows (50 plugs × 7 days): 64.2 B a row (30.9 MiB); relay rows with their payload
-- 99.7 B. The estimate 44 + 2·length(kind) + length(ref) + length(payload) gives 63–64 B and 100 B for them.
-- Running totals per kind, kept by triggers in the same transaction as every insert and delete, so /health and a
-- /metrics scrape read a few rows instead of summing an outbox of half a million rows (≈ 100 ms on the event loop).
CREATE TABLE `sync_outbox_totals` (
	`kind` text PRIMARY KEY NOT NULL,
	`rows` integer NOT NULL,
	`bytes` integer NOT NULL
);
--> statement-breakpoint
UPDATE `sync_outbox` SET `bytes` = 44 + 2 * length(`kind`) + length(`ref`) + coalesce(length(`payload`), 0);
--> statement-breakpoint
INSERT INTO `sync_outbox_totals` (`kind`, `rows`, `bytes`) SELECT `kind`, count(*), sum(`bytes`) FROM `sync_outbox` GROUP BY `kind`;
--> statement-breakpoint
CREATE TRIGGER `sync_outbox_count_insert` AFTER INSERT ON `sync_outbox` BEGIN
	INSERT INTO sync_outbox_totals (kind, rows, bytes) VALUES (NEW.kind, 1, 44 + 2 * length(NEW.kind) + length(NEW.ref) + coalesce(length(NEW.payload), 0))
	ON CONFLICT(kind) DO UPDATE SET rows = rows + 1, bytes = bytes + excluded.bytes;
END;
--> statement-breakpoint
CREATE TRIGGER `sync_outbox_count_delete` AFTER DELETE ON `sync_outbox` BEGIN
	UPDATE sync_outbox_totals SET rows = rows - 1, bytes = bytes - (44 + 2 * length(OLD.kind) + length(OLD.ref) + coalesce(length(OLD.payload), 0)) WHERE kind = OLD.kind;
END;
--> statement-breakpoint
-- The rollup triggers of 0005 with the honest size in `bytes` (informational: the totals above are what counts).
DROP TRIGGER `sync_rollup_1m`;
--> statement-breakpoint
CREATE TRIGGER `sync_rollup_1m` AFTER INSERT ON `rollup_1m` WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled') BEGIN
	INSERT INTO sync_outbox (kind, ref, ts, bytes) VALUES ('rollup_1m', NEW.device, NEW.bucket, 62 + length(NEW.device));
END;
--> statement-breakpoint
DROP TRIGGER `sync_rollup_1h`;
--> statement-breakpoint
CREATE TRIGGER `sync_rollup_1h` AFTER INSERT ON `rollup_1h` WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled') BEGIN
	INSERT INTO sync_outbox (kind, ref, ts, bytes) VALUES ('rollup_1h', NEW.device, NEW.bucket, 62 + length(NEW.device));
END;
--> statement-breakpoint
DROP TRIGGER `sync_rollup_1d`;
--> statement-breakpoint
CREATE TRIGGER `sync_rollup_1d` AFTER INSERT ON `rollup_1d` WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'sync_enabled') BEGIN
	INSERT INTO sync_outbox (kind, ref, ts, bytes) VALUES ('rollup_1d', NEW.device, NEW.bucket, 62 + length(NEW.device));
END;
--> statement-breakpoint
-- Rows dropped before reaching the cloud, by reason (max_age, full_rollup_1m, …), written in the same transaction
-- as the drop itself, so the counts in /health, /metrics and /cloud survive a restart.
CREATE TABLE `sync_drops` (
	`reason` text PRIMARY KEY NOT NULL,
	`n` integer NOT NULL,
	`last_at` integer NOT NULL
);
