// The cloud's line-protocol writer for rollups against the client library's Point: the same bytes for any
// rollup, whatever its ids and values (cloud/timeseries/rollup-store.ts RollupLines).
import { describe, expect, it } from "vitest";
import { RollupLines, rollupPointLine } from "../../../cloud/timeseries/rollup-store.js";
import type { RollupPoint } from "../../../shared/schemas/rollups.js";

/** Deterministic PRNG (mulberry32) so a failure names its seed. */
function rng(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRICKY = ["plug 1", "a,b", "k=v", "back\\slash", 'quote"d', "tab\there", "ünïcødé-⚡", "x".repeat(64), "plain-id_01"];

function randomFloat(r: () => number): number {
  const kind = Math.floor(r() * 6);
  if (kind === 0) return 0;
  if (kind === 1) return -Math.round(r() * 1e4) / 10;
  if (kind === 2) return r() * 1e-7;
  if (kind === 3) return r() * 1e22;
  if (kind === 4) return Math.round(r() * 36_000_000) / 10;
  return r() * 3000;
}

function randomPoint(r: () => number): RollupPoint {
  const n = Math.floor(r() * 8641);
  const nullable = r() < 0.2;
  return {
    device_id: TRICKY[Math.floor(r() * TRICKY.length)]!,
    level: (["1m", "1h", "1d"] as const)[Math.floor(r() * 3)]!,
    ts: Math.floor(r() * 2e12),
    samples: n,
    power_sum: randomFloat(r),
    power_n: Math.floor(r() * n),
    power_min: nullable ? null : randomFloat(r),
    power_max: nullable ? null : randomFloat(r),
    voltage_sum: randomFloat(r),
    voltage_n: Math.floor(r() * n),
    current_sum: randomFloat(r),
    current_n: Math.floor(r() * n),
    energy_wh: randomFloat(r),
    on_ms: Math.floor(r() * 86_400_000),
  };
}

describe("rollup line protocol", () => {
  it("writes byte for byte what the library's Point writes, for 20,000 random rollups with tricky ids and extreme values", () => {
    const seed = 20261204;
    const r = rng(seed);
    for (const hub of ["hub-1", "hub with space", "h,=\\"]) {
      const lines = new RollupLines(hub);
      for (let i = 0; i < 20_000 / 3; i++) {
        const p = randomPoint(r);
        expect(lines.line(p), `seed ${seed}, point ${JSON.stringify(p)}`).toBe(rollupPointLine(hub, p));
      }
    }
  });

  it("refuses a value that is not a finite number, as Point does", () => {
    const p = randomPoint(rng(1));
    expect(() => new RollupLines("h").line({ ...p, energy_wh: Number.NaN })).toThrow(/energy_wh/);
    expect(() => rollupPointLine("h", { ...p, energy_wh: Number.NaN })).toThrow();
    expect(() => new RollupLines("h").line({ ...p, power_sum: Number.POSITIVE_INFINITY })).toThrow(/power_sum/);
  });
});
