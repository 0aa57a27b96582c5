import { describe, expect, it } from "vitest";
import { accumulateEnergy, EMPTY_ENERGY, type EnergyState } from "../../../hub/devices/energy.js";
import type { Reading } from "../../../hub/bus.js";

const r = (ts: number, o: Partial<Reading>): Reading => ({ ts, power: null, voltage: null, current: null, relayOn: null, counterWh: null, ...o });
const fold = (rs: Reading[], gap = 300_000): EnergyState => rs.reduce((s, x) => accumulateEnergy(s, x, gap), { ...EMPTY_ENERGY });

describe("energy accounting (PROTOCOLS.md §5)", () => {
  it("sums counter deltas; the first value is only a baseline", () => {
    expect(fold([r(1, { counterWh: 1000 }), r(2, { counterWh: 1001.5 }), r(3, { counterWh: 1004 })]).energyWh).toBeCloseTo(4);
  });

  it("ignores a drop of less than 10 % as noise without counting the dip twice", () => {
    const s = fold([r(1, { counterWh: 1000 }), r(2, { counterWh: 950 }), r(3, { counterWh: 1010 })]);
    expect(s.energyWh).toBeCloseTo(10);
  });

  it("treats a drop of 10 % or more as a reset and counts from zero", () => {
    const s = fold([r(1, { counterWh: 1000 }), r(2, { counterWh: 1010 }), r(3, { counterWh: 3 }), r(4, { counterWh: 5 })]);
    expect(s.energyWh).toBeCloseTo(10 + 3 + 2);
  });

  it("integrates power with the trapezoid rule when there is no counter", () => {
    // 100 W → 200 W over one hour = 150 Wh
    expect(fold([r(0, { power: 100 }), r(3_600_000, { power: 200 })], 4_000_000).energyWh).toBeCloseTo(150);
  });

  it("does not bridge gaps longer than the limit", () => {
    expect(fold([r(0, { power: 100 }), r(600_001, { power: 100 })], 600_000).energyWh).toBe(0);
  });

  it("does not integrate power between counters: the next counter delta covers it (no double count)", () => {
    // A Shelly Gen1's first reading after connecting carries power but not yet its counter (issue 3 §3).
    const s = fold([r(0, { power: 3600, counterWh: 1000 }), r(60_000, { power: 3600 }), r(61_000, { power: 3600, counterWh: 1061 })]);
    expect(s.energyWh).toBeCloseTo(61);
  });

  it("does not integrate out-of-order readings", () => {
    const s = fold([r(10_000, { power: 100 }), r(5_000, { power: 100 }), r(20_000, { power: 100 })]);
    expect(s.energyWh).toBeCloseTo((100 * 10) / 3600);
  });
});
