import { describe, expect, it } from "vitest";
import { loadTraces, powerAt, type Trace } from "../../sim/traces.js";

const DAY_SEC = 86_400;

describe("shipped tracebase subset", () => {
  const traces = loadTraces();

  it("holds the six appliances, in the CLI's round-robin order", () => {
    expect(traces.map((t) => t.appliance)).toEqual(["fridge", "kettle", "washing machine", "LCD TV", "desktop PC", "coffee maker"]);
  });

  it("covers 24 h on a 10 s grid of non-negative integer watts, per trace", () => {
    for (const t of traces) {
      expect({ appliance: t.appliance, stepSec: t.stepSec, points: t.watts.length * t.stepSec }).toEqual({ appliance: t.appliance, stepSec: 10, points: DAY_SEC });
      expect(Array.from(t.watts).every((w) => Number.isInteger(w) && w >= 0)).toBe(true);
    }
  });

  it("has a fridge mean power in the plausible 20–80 W range and a compressor that cycles", () => {
    const fridge = traces.find((t) => t.appliance === "fridge")!;
    const watts = Array.from(fridge.watts);
    const mean = watts.reduce((a, w) => a + w, 0) / watts.length;
    expect(mean).toBeGreaterThan(20);
    expect(mean).toBeLessThan(80);
    expect(watts.filter((w) => w === 0).length).toBeGreaterThan(watts.length / 10);
  });

  it("has a kettle that boils at kilowatts for a few minutes only", () => {
    const kettle = traces.find((t) => t.appliance === "kettle")!;
    const watts = Array.from(kettle.watts);
    expect(Math.max(...watts)).toBeGreaterThan(1500);
    expect(watts.filter((w) => w > 1000).length * kettle.stepSec).toBeLessThan(3600);
  });

  it("returns a fresh array each call, sharing the parsed traces", () => {
    const again = loadTraces();
    expect(again).not.toBe(traces);
    expect(again[0]).toBe(traces[0]);
  });
});

describe("powerAt", () => {
  const trace: Trace = { appliance: "test", stepSec: 10, watts: Array.from({ length: DAY_SEC / 10 }, (_, i) => (i === 0 ? 100 : i === 1 ? 200 : i === DAY_SEC / 10 - 1 ? 50 : 0)) };

  it("returns grid values on grid points", () => {
    expect([powerAt(trace, 0), powerAt(trace, 10), powerAt(trace, 20)]).toEqual([100, 200, 0]);
  });

  it("interpolates linearly between grid points", () => {
    expect([powerAt(trace, 2.5), powerAt(trace, 5), powerAt(trace, 15)]).toEqual([125, 150, 100]);
  });

  it("wraps at 24 h in both directions, interpolating across midnight", () => {
    expect(powerAt(trace, DAY_SEC + 5)).toBe(150);
    expect(powerAt(trace, 3 * DAY_SEC + 10)).toBe(200);
    expect(powerAt(trace, DAY_SEC - 5)).toBe(75); // between 23:59:50 (50 W) and midnight (100 W)
    expect(powerAt(trace, -5)).toBe(75);
  });

  it("works on the shipped Int32Array traces", () => {
    const fridge = loadTraces()[0]!;
    const i = 4321;
    const a = fridge.watts[i]!;
    const b = fridge.watts[i + 1]!;
    expect(powerAt(fridge, i * 10 + 4)).toBeCloseTo(a + (b - a) * 0.4, 9);
  });
});
