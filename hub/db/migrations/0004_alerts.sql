CREATE TABLE `alert_settings` (
	`device_id` text PRIMARY KEY NOT NULL,
	`offline_grace_s` integer,
	`power_above_w` real,
	`finished_above_w` real,
	`finished_idle_min` integer
);
--> statement-breakpoint
CREATE TABLE `alerts` (
	`id` text PRIMARY KEY NOT NULL,
	`device_id` text,
	`kind` text NOT NULL,
	`message` text NOT NULL,
	`details` text,
	`started_at` integer NOT NULL,
	`resolved_at` integer,
	`acknowledged_at` integer
);
--> statement-breakpoint
CREATE INDEX `alerts_started` ON `alerts` (`started_at`);