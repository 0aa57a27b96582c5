import { z } from "zod";
import { IsoTime } from "./common.js";

/** Aggregation intervals, seconds. `raw` returns stored samples unaggregated. */
export const INTERVALS = { raw: 0, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400 } as const;
export type IntervalName = keyof typeof INTERVALS;
export const TELEMETRY_FIELDS = ["power", "voltage", "current", "energy", "on"] as const;
export type TelemetryField = (typeof TELEMETRY_FIELDS)[number];
export const MAX_TELEMETRY_POINTS = 10_000;

export const TelemetryQuery = z
  .strictObject({
    start: IsoTime.optional(),
    end: IsoTime.optional(),
    interval: z.enum(Object.keys(INTERVALS) as [IntervalName, ...IntervalName[]]).default("1h"),
    fields: z
      .string()
      .default(TELEMETRY_FIELDS.join(","))
      .transform((s, ctx) => {
        const list = [...new Set(s.split(",").map((f) => f.trim()).filter(Boolean))];
        for (const f of list) {
          if (!(TELEMETRY_FIELDS as readonly string[]).includes(f)) {
            ctx.addIssue({ code: "custom", message: `unknown field '${f}'; known: ${TELEMETRY_FIELDS.join(", ")}` });
            return z.NEVER;
          }
        }
        return list as TelemetryField[];
      })
      .meta({ description: "comma-separated: power, voltage, current, energy, on (seconds the relay was on)" }),
  })
  .meta({ id: "TelemetryQuery" });
export type TelemetryQuery = z.infer<typeof TelemetryQuery>;

export const TelemetryPoint = z
  .object({
    timestamp: z.string(),
    power_avg: z.number().optional(),
    power_min: z.number().optional(),
    power_max: z.number().optional(),
    voltage_avg: z.number().optional(),
    current_avg: z.number().optional(),
    energy_wh: z.number().optional(),
    on_seconds: z.number().optional(),
    samples: z.number().int(),
  })
  .meta({ id: "TelemetryPoint" });

export const TelemetryResponse = z
  .object({
    device_id: z.string(),
    start: z.string(),
    end: z.string(),
    interval: z.string(),
    fields: z.array(z.string()),
    data: z.array(TelemetryPoint),
    total_points: z.number().int(),
  })
  .meta({ id: "TelemetryResponse" });

export const LatestTelemetry = z
  .object({
    device_id: z.string(),
    timestamp: z.string(),
    voltage: z.number().nullable(),
    current: z.number().nullable(),
    power: z.number().nullable(),
    energy_wh: z.number().nullable(),
    relay_state: z.boolean().nullable(),
  })
  .meta({ id: "LatestTelemetry" });
export { IsoTime };
