CREATE TABLE `schedule_state` (
	`device_id` text PRIMARY KEY NOT NULL,
	`fired_edge_ts` integer NOT NULL,
	`manual_at` integer
);
--> statement-breakpoint
CREATE TABLE `schedules` (
	`id` text PRIMARY KEY NOT NULL,
	`device_id` text NOT NULL,
	`type` text NOT NULL,
	`name` text,
	`days` text,
	`at` text,
	`from_time` text,
	`to_time` text,
	`action` text NOT NULL,
	`time_zone` text NOT NULL,
	`enabled` integer NOT NULL,
	`reassert_on_boot` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `schedules_device` ON `schedules` (`device_id`);