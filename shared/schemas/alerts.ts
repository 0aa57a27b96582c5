import { z } from "zod";

export const ALERT_KINDS = ["device_offline", "power_above", "appliance_finished", "storage", "anomaly"] as const;

export const Alert = z
  .object({
    id: z.string(),
    device_id: z.string().nullable(),
    kind: z.enum(ALERT_KINDS),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).nullable(),
    started_at: z.string(),
    resolved_at: z.string().nullable(),
    acknowledged_at: z.string().nullable(),
  })
  .meta({ id: "Alert" });
export type Alert = z.infer<typeof Alert>;

export const AlertQuery = z.strictObject({
  active: z.enum(["true", "false"]).optional().meta({ description: "only unresolved (true) or resolved (false) alerts" }),
  device_id: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const AlertSettings = z
  .strictObject({
    offline_grace_s: z.number().int().min(0).max(86_400).nullable().default(300).meta({ description: "alert when offline this long; null = never" }),
    power_above_w: z.number().min(0).max(25_000).nullable().default(null).meta({ description: "alert while power is above this; null = never" }),
    finished_above_w: z.number().min(0).max(25_000).nullable().default(null).meta({ description: "a run is power above this…" }),
    finished_idle_min: z.number().int().min(1).max(240).default(5).meta({ description: "…followed by this many minutes below it: 'appliance finished'" }),
  })
  .meta({ id: "AlertSettings" });
export type AlertSettings = z.infer<typeof AlertSettings>;
