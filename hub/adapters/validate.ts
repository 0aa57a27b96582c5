// Plausibility bounds shared by every adapter (A7: NaN, negative or absurd values are dropped with a reason).
export const LIMITS = {
  voltage: { min: 0, max: 500 }, // V
  current: { min: 0, max: 100 }, // A
  power: { min: 0, max: 25_000 }, // W; a 16 A plug tops out near 3.7 kW, 3-phase meters ~25 kW
  counterWh: { min: 0, max: 1e10 }, // Wh
} as const;

/** Readings stamped further than this ahead of the hub's clock are refused (a plug with a wrong clock). */
export const MAX_FUTURE_SKEW_MS = 10 * 60_000;
/** …and older than this (a plug without time source replaying 1970). */
export const MAX_AGE_MS = 30 * 24 * 3600_000;

export type Bounded = keyof typeof LIMITS;

/** Returns null when absent, the number when plausible, or a reason string. */
export function checkValue(name: Bounded, v: unknown): number | null | { reason: string } {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) return { reason: `bad_${name}` };
  const { min, max } = LIMITS[name];
  if (v < min || v > max) return { reason: `out_of_range_${name}` };
  return v;
}

export function checkTimestamp(ts: number, receivedAt: number): string | null {
  if (!Number.isFinite(ts)) return "bad_timestamp";
  if (ts > receivedAt + MAX_FUTURE_SKEW_MS) return "timestamp_in_future";
  if (ts < receivedAt - MAX_AGE_MS) return "timestamp_too_old";
  return null;
}

export function parseJsonObject(payload: Buffer): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString("utf8"));
  } catch {
    return null;
  }
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}
