import { describe, expect, it } from "vitest";
import { cpuPerReadingUs, familyRows, pool, ratioOf, readingsPerPlugPerPeriod, type FamilyFigures, type FamilyWindow } from "../../bench/families-math.js";
import { summarize } from "../../bench/stats.js";

const w = (family: FamilyWindow["family"], cpuSec: number, stored: number, windowMs = 10_000, plugs = 100): FamilyWindow => ({ family, plugs, windowMs, cpuSec, stored });

describe("families bench arithmetic", () => {
  it("CPU per reading is hub CPU seconds over readings stored, in µs", () => {
    expect(cpuPerReadingUs(w("native", 0.5, 500))).toBe(1000);
    expect(cpuPerReadingUs(w("native", 0.5, 0))).toBeNaN();
  });

  it("cadence counts readings per plug per period", () => {
    // 100 plugs, 10 s, one reading per plug per 2 s → 500 readings
    expect(readingsPerPlugPerPeriod(w("tasmota", 1, 500), 2000)).toBe(1);
    expect(readingsPerPlugPerPeriod(w("tasmota", 1, 750), 2000)).toBe(1.5);
    expect(readingsPerPlugPerPeriod({ stored: 5, plugs: 0, windowMs: 1000 }, 2000)).toBeNaN();
  });

  it("pooling sums CPU, readings and time, so the pooled figure is total CPU over total readings", () => {
    const p = pool([w("native", 0.6, 500), w("native", 0.4, 500)])!;
    expect(p).toEqual({ family: "native", plugs: 100, windowMs: 20_000, cpuSec: 1, stored: 1000 });
    expect(cpuPerReadingUs(p)).toBe(1000);
    expect(pool([])).toBeNull();
  });

  it("ratios refuse zero and non-finite baselines", () => {
    expect(ratioOf(3, 2)).toBe(1.5);
    expect(ratioOf(3, 0)).toBeNull();
    expect(ratioOf(NaN, 2)).toBeNull();
  });

  it("rows pass at ≤ 1.5× native CPU and p99 ≤ 25 ms with no failed command; native is the reference", () => {
    const fig = (family: FamilyWindow["family"], cpuUs: number, rtts: number[], failed = 0): FamilyFigures => ({
      family,
      window: w(family, cpuUs / 1000, 1000),
      cpuUs,
      cpuRatio: family === "native" ? 1 : cpuUs / 800,
      cadence: 1,
      rtt: summarize(rtts),
      commandsOk: rtts.length,
      commandsFailed: failed,
    });
    const rows = familyRows([fig("native", 800, [5, 6]), fig("tasmota", 1200, [5, 24]), fig("shelly-gen1", 1201, [5, 26]), fig("shelly-gen2", 900, [5, 6], 1)], [], (ms) => `${ms} ms`);
    const cpu = rows.slice(0, 4).map((r) => r.pass);
    const rtt = rows.slice(4).map((r) => r.pass);
    expect(cpu).toEqual([null, true, false, true]);
    expect(rtt).toEqual([true, true, false, false]);
    expect(rows[1]!.ratio).toBe(1.5);
  });
});
