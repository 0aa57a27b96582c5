// A stored rollup row (integer scales of `readings`: 0.1 W, 0.1 V, mA; energy in Wh) as the wire's
// RollupPoint in engineering units (W, V, A, Wh), which is what the cloud stores.
import type { RollupLevel, RollupPoint } from "../../shared/schemas/rollups.js";

export interface StoredRollupRow {
  bucket: number;
  device: number;
  samples: number;
  power_sum: number;
  power_n: number;
  power_min: number | null;
  power_max: number | null;
  voltage_sum: number;
  voltage_n: number;
  current_sum: number;
  current_n: number;
  energy_wh: number;
  on_ms: number;
}

/**
 * Decimals of energy_wh on the wire (µWh). Plugs measure to 1 mWh at best (counter_mwh); the float sum of a bucket
 * carries ~17 digits, mostly noise, which gzip cannot shrink (the sync bench: 31.7 -> 29.7 KB per plug-day).
 */
export const ENERGY_DECIMALS = 6;

export function fromRollupRow(deviceId: string, level: RollupLevel, r: StoredRollupRow): RollupPoint {
  return {
    device_id: deviceId,
    level,
    ts: r.bucket,
    samples: r.samples,
    power_sum: r.power_sum / 10,
    power_n: r.power_n,
    power_min: r.power_min === null ? null : r.power_min / 10,
    power_max: r.power_max === null ? null : r.power_max / 10,
    voltage_sum: r.voltage_sum / 10,
    voltage_n: r.voltage_n,
    current_sum: r.current_sum / 1000,
    current_n: r.current_n,
    energy_wh: Math.round(r.energy_wh * 10 ** ENERGY_DECIMALS) / 10 ** ENERGY_DECIMALS,
    on_ms: r.on_ms,
  };
}
