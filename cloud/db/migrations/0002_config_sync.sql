-- Config sync both ways (issue 6 §5): devices deleted in the cloud keep a tombstone (final against renames,
-- pushed to the hub until it echoes it), and devices created in the cloud wait for the hub's confirmation.
CREATE TABLE "device_tombstones" (
	"hub_id" uuid NOT NULL,
	"device_id" text NOT NULL,
	"version" bigint NOT NULL,
	"pending" boolean DEFAULT false NOT NULL,
	"deleted_at" timestamp with time zone NOT NULL,
	CONSTRAINT "device_tombstones_hub_id_device_id_pk" PRIMARY KEY("hub_id","device_id")
);
--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "pairing_pending" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "device_tombstones" ADD CONSTRAINT "device_tombstones_hub_id_hubs_id_fk" FOREIGN KEY ("hub_id") REFERENCES "public"."hubs"("id") ON DELETE cascade ON UPDATE no action;