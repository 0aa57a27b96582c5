CREATE TABLE `commands` (
	`id` text PRIMARY KEY NOT NULL,
	`device_id` text NOT NULL,
	`command` text NOT NULL,
	`status` text NOT NULL,
	`relay_on` integer,
	`created_at` integer NOT NULL,
	`completed_at` integer
);
--> statement-breakpoint
CREATE TABLE `devices` (
	`idx` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device_id` text NOT NULL,
	`name` text NOT NULL,
	`family` text NOT NULL,
	`mqtt_user` text NOT NULL,
	`topic` text NOT NULL,
	`secret_hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`online` integer DEFAULT false NOT NULL,
	`firmware` text,
	`relay_on` integer,
	`last_seen` integer,
	`energy_wh` real DEFAULT 0 NOT NULL,
	`counter_wh` real,
	`last_power_w` real,
	`last_reading_ts` integer,
	`state_as_of` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `devices_device_id_unique` ON `devices` (`device_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `devices_mqtt_user_unique` ON `devices` (`mqtt_user`);--> statement-breakpoint
CREATE TABLE `meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `readings` (
	`ts` integer NOT NULL,
	`device` integer NOT NULL,
	`power_dw` integer,
	`voltage_dv` integer,
	`current_ma` integer,
	`relay` integer,
	`counter_mwh` integer,
	PRIMARY KEY(`ts`, `device`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `refresh_tokens` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`family_id` text NOT NULL,
	`expires_at` integer NOT NULL,
	`used_at` integer,
	`revoked_at` integer,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `refresh_tokens_family` ON `refresh_tokens` (`family_id`);--> statement-breakpoint
CREATE TABLE `users` (
	`id` text PRIMARY KEY NOT NULL,
	`email` text NOT NULL,
	`name` text,
	`password_hash` text NOT NULL,
	`role` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `users_email_unique` ON `users` (`email`);