// Energy accounting, the same for every family (PROTOCOLS.md §5).
import type { Reading } from "../bus.js";

export interface EnergyState {
  /** Total consumption since pairing, Wh. */
  energyWh: number;
  /** The plug's last counter value we counted from, Wh (null: no counter seen yet). */
  counterWh: number | null;
  lastPowerW: number | null;
  lastTs: number | null;
}

export const EMPTY_ENERGY: EnergyState = { energyWh: 0, counterWh: null, lastPowerW: null, lastTs: null };

/** A counter drop smaller than this fraction is noise, not a reset (Home Assistant's total_increasing rule). */
export const RESET_FRACTION = 0.1;

/**
 * Folds one reading into the energy state. With a counter: add positive deltas; a drop of < 10 % is
 * ignored (the baseline stays, so the dip is not counted twice); a larger drop starts a new cycle from
 * zero. Without one: trapezoid integration of power, not bridging gaps longer than `maxGapMs` — but only
 * for plugs that have never sent a counter. Once there is a baseline, the next counter delta covers the
 * interval, so integrating it too counted it twice: a Shelly Gen1's first reading after (re)connecting
 * has no counter yet, and after a hub restart that double-counted the whole downtime (issue 3 §3).
 */
export function accumulateEnergy(s: EnergyState, r: Reading, maxGapMs: number): EnergyState {
  const inOrder = s.lastTs === null || r.ts > s.lastTs;
  let { energyWh, counterWh } = s;
  if (r.counterWh !== null) {
    if (counterWh === null) counterWh = r.counterWh;
    else {
      const delta = r.counterWh - counterWh;
      if (delta >= 0) {
        energyWh += delta;
        counterWh = r.counterWh;
      } else if (-delta >= RESET_FRACTION * counterWh) {
        energyWh += r.counterWh; // reset: the plug counted from zero since
        counterWh = r.counterWh;
      }
    }
  } else if (counterWh === null && r.power !== null && inOrder && s.lastTs !== null && s.lastPowerW !== null && r.ts - s.lastTs <= maxGapMs) {
    energyWh += ((s.lastPowerW + r.power) / 2) * ((r.ts - s.lastTs) / 3_600_000);
  }
  if (!inOrder) return { ...s, energyWh, counterWh };
  return { energyWh, counterWh, lastPowerW: r.power ?? s.lastPowerW, lastTs: r.ts };
}
