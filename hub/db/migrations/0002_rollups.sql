CREATE TABLE `rollup_1d` (
	`bucket` integer NOT NULL,
	`device` integer NOT NULL,
	`samples` integer NOT NULL,
	`power_sum` integer NOT NULL,
	`power_n` integer NOT NULL,
	`power_min` integer,
	`power_max` integer,
	`voltage_sum` integer NOT NULL,
	`voltage_n` integer NOT NULL,
	`current_sum` integer NOT NULL,
	`current_n` integer NOT NULL,
	`energy_wh` real NOT NULL,
	`on_ms` integer NOT NULL,
	PRIMARY KEY(`device`, `bucket`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `rollup_1h` (
	`bucket` integer NOT NULL,
	`device` integer NOT NULL,
	`samples` integer NOT NULL,
	`power_sum` integer NOT NULL,
	`power_n` integer NOT NULL,
	`power_min` integer,
	`power_max` integer,
	`voltage_sum` integer NOT NULL,
	`voltage_n` integer NOT NULL,
	`current_sum` integer NOT NULL,
	`current_n` integer NOT NULL,
	`energy_wh` real NOT NULL,
	`on_ms` integer NOT NULL,
	PRIMARY KEY(`device`, `bucket`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `rollup_1m` (
	`bucket` integer NOT NULL,
	`device` integer NOT NULL,
	`samples` integer NOT NULL,
	`power_sum` integer NOT NULL,
	`power_n` integer NOT NULL,
	`power_min` integer,
	`power_max` integer,
	`voltage_sum` integer NOT NULL,
	`voltage_n` integer NOT NULL,
	`current_sum` integer NOT NULL,
	`current_n` integer NOT NULL,
	`energy_wh` real NOT NULL,
	`on_ms` integer NOT NULL,
	PRIMARY KEY(`bucket`, `device`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `rollup_carry` (
	`device` integer PRIMARY KEY NOT NULL,
	`ts` integer NOT NULL,
	`power_dw` integer,
	`relay` integer,
	`counter_mwh` integer
);
