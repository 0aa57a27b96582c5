// Rollup points as the hub computes them and the cloud stores them (ARCHITECTURE §3 "downsampling"):
// the hub ↔ cloud sync sends these; the cloud writes each level to its own InfluxDB database.
import { z } from "zod";
import { DeviceId } from "./common.js";

export const ROLLUP_LEVELS = ["1m", "1h", "1d"] as const;
export const RollupLevel = z.enum(ROLLUP_LEVELS);
export type RollupLevel = z.infer<typeof RollupLevel>;
export const ROLLUP_STEP_MS: Record<RollupLevel, number> = { "1m": 60_000, "1h": 3_600_000, "1d": 86_400_000 };

const finite = z.number().finite();

/**
 * One rollup bucket as the hub folds it (hub/rollups/rollup-math.ts `Bucket`): sums and counts rather than
 * means, so coarser intervals are re-aggregated exactly. Engineering units: W, V, A, Wh, ms.
 */
export const RollupPoint = z
  .strictObject({
    device_id: DeviceId,
    level: RollupLevel,
    ts: z.number().int().nonnegative().meta({ description: "bucket start, ms since the epoch" }),
    samples: z.number().int().nonnegative(),
    power_sum: finite,
    power_n: z.number().int().nonnegative(),
    power_min: finite.nullable(),
    power_max: finite.nullable(),
    voltage_sum: finite,
    voltage_n: z.number().int().nonnegative(),
    current_sum: finite,
    current_n: z.number().int().nonnegative(),
    energy_wh: finite,
    on_ms: z.number().int().nonnegative().meta({ description: "time the relay was on in this bucket" }),
  })
  .meta({ id: "RollupPoint" });
export type RollupPoint = z.infer<typeof RollupPoint>;

/** The latest state a hub reports for one of its devices. */
export const LatestState = z
  .strictObject({
    device_id: DeviceId,
    ts: z.number().int().nonnegative(),
    online: z.boolean().optional(),
    firmware_version: z.string().max(64).nullable().optional(),
    power: finite.nullable(),
    voltage: finite.nullable(),
    current: finite.nullable(),
    energy_wh: finite.nullable(),
    relay_state: z.boolean().nullable(),
  })
  .meta({ id: "LatestState" });
export type LatestState = z.infer<typeof LatestState>;
