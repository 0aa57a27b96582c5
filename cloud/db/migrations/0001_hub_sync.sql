CREATE TABLE "alerts" (
	"hub_id" uuid NOT NULL,
	"alert_id" text NOT NULL,
	"device_id" text,
	"kind" text NOT NULL,
	"message" text NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"resolved_at" timestamp with time zone,
	"acknowledged_at" timestamp with time zone,
	CONSTRAINT "alerts_hub_id_alert_id_pk" PRIMARY KEY("hub_id","alert_id")
);
--> statement-breakpoint
CREATE TABLE "schedules" (
	"hub_id" uuid NOT NULL,
	"id" text NOT NULL,
	"device_id" text NOT NULL,
	"rule" jsonb,
	"version" bigint NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"pending" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "schedules_hub_id_id_pk" PRIMARY KEY("hub_id","id")
);
--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "name_version" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "name_pending" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "relay_at" bigint;--> statement-breakpoint
ALTER TABLE "hubs" ADD COLUMN "synced_seq" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "hubs" ADD COLUMN "last_sync_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "alerts" ADD CONSTRAINT "alerts_hub_id_hubs_id_fk" FOREIGN KEY ("hub_id") REFERENCES "public"."hubs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "schedules" ADD CONSTRAINT "schedules_hub_id_hubs_id_fk" FOREIGN KEY ("hub_id") REFERENCES "public"."hubs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "alerts_hub_device" ON "alerts" USING btree ("hub_id","device_id");--> statement-breakpoint
CREATE INDEX "schedules_id" ON "schedules" USING btree ("id");--> statement-breakpoint
CREATE INDEX "schedules_hub_device" ON "schedules" USING btree ("hub_id","device_id");