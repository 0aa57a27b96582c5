// The uplink's pure parts (issue 6 §2, RELIABILITY F5/F6/F7): full-jitter backoff, Retry-After in both of its
// forms, and which rows a 400/422 problem body names.
import { describe, expect, it } from "vitest";
import { fullJitter, rejectedRows, retryAfterMs } from "../../../hub/sync/uplink.js";
import { loadHubConfig } from "../../../hub/config.js";

/** A seeded PRNG (mulberry32), so the distribution checks are the same on every run. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("fullJitter (F5: full-jitter backoff, capped at 15 min)", () => {
  const { backoffBaseMs, backoffMaxMs } = loadHubConfig({}).sync.uplink;

  it("defaults: 1 s base, capped at HUB_SYNC_BACKOFF_MAX_S = 900 s (15 min)", () => {
    expect(backoffBaseMs).toBe(1000);
    expect(backoffMaxMs).toBe(15 * 60_000);
  });

  it("draws from the whole range [0, min(cap, base · 2^attempt)): lowest and highest random give 0 and just under the bound", () => {
    for (let attempt = 0; attempt <= 12; attempt++) {
      const bound = Math.min(backoffMaxMs, backoffBaseMs * 2 ** attempt);
      expect(fullJitter(attempt, backoffBaseMs, backoffMaxMs, () => 0)).toBe(0);
      expect(fullJitter(attempt, backoffBaseMs, backoffMaxMs, () => 0.5)).toBe(Math.floor(bound / 2));
      const top = fullJitter(attempt, backoffBaseMs, backoffMaxMs, () => 1 - Number.EPSILON);
      expect(top).toBeLessThan(bound);
      expect(top).toBeGreaterThanOrEqual(bound - 1);
    }
  });

  it("the bound doubles with each attempt until it reaches the cap, then stays there (also for absurd attempt counts)", () => {
    const bounds = Array.from({ length: 14 }, (_, a) => fullJitter(a, backoffBaseMs, backoffMaxMs, () => 1 - Number.EPSILON) + 1);
    expect(bounds).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 900_000, 900_000, 900_000, 900_000]);
    expect(fullJitter(10_000, backoffBaseMs, backoffMaxMs, () => 1 - Number.EPSILON)).toBe(900_000 - 1);
  });

  it("is uniform over its range (20,000 seeded draws at attempt 4: mean ≈ bound/2, every decile filled)", () => {
    const rnd = prng(42);
    const bound = 16_000;
    const draws = Array.from({ length: 20_000 }, () => fullJitter(4, 1000, 900_000, rnd));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(bound);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(Math.abs(mean - bound / 2) / (bound / 2)).toBeLessThan(0.02);
    const deciles = new Array<number>(10).fill(0);
    for (const d of draws) deciles[Math.floor((d / bound) * 10)]!++;
    for (const n of deciles) expect(Math.abs(n - 2000)).toBeLessThan(200);
  });
});

describe("retryAfterMs (F6: no request before Retry-After elapses)", () => {
  const now = Date.parse("2026-03-01T12:00:00Z");

  it("reads delay-seconds", () => {
    expect(retryAfterMs("120", now)).toBe(120_000);
    expect(retryAfterMs(" 2 ", now)).toBe(2000);
    expect(retryAfterMs("0", now)).toBe(0);
  });

  it("reads an HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms) as the time left until then", () => {
    expect(retryAfterMs(new Date(now + 90_000).toUTCString(), now)).toBe(90_000);
    expect(retryAfterMs("Sun, 01 Mar 2026 12:00:30 GMT", now)).toBe(30_000);
    expect(retryAfterMs("Sunday, 01-Mar-26 12:01:00 GMT", now)).toBe(60_000);
    expect(retryAfterMs("Sun Mar  1 12:00:05 2026", now)).toBe(5000); // asctime: GMT although it does not say so
  });

  it("a date already past means now (0), never a negative wait", () => {
    expect(retryAfterMs("Sun, 01 Mar 2026 11:00:00 GMT", now)).toBe(0);
  });

  it("absent or unreadable is null (the caller picks its own wait)", () => {
    expect(retryAfterMs(null, now)).toBeNull();
    expect(retryAfterMs("", now)).toBeNull();
    expect(retryAfterMs("soon", now)).toBeNull();
    expect(retryAfterMs("1.5", now)).toBeNull();
    expect(retryAfterMs("-3", now)).toBeNull();
  });
});

describe("rejectedRows (F7: only rows the cloud names are dead-lettered)", () => {
  const wire = [{ seq: 10 }, { seq: 11 }, { seq: 12 }];

  it("maps the cloud's rejected[] to rows of this batch by seq, with their reasons", () => {
    const body = { type: "https://smartplug.dev/problems/sync-rows-rejected", status: 422, rejected: [{ seq: 11, index: 1, reason: "device_id: invalid" }] };
    expect([...rejectedRows(body, wire)]).toEqual([[11, "device_id: invalid"]]);
  });

  it("falls back to the index for a row that had no readable seq", () => {
    expect([...rejectedRows({ rejected: [{ seq: -1, index: 2, reason: "seq: required" }] }, wire)]).toEqual([[12, "seq: required"]]);
  });

  it("names nothing for a body without rejected[], an empty list, or entries that point outside the batch", () => {
    expect(rejectedRows(null, wire).size).toBe(0);
    expect(rejectedRows({ title: "Not Found", status: 404 }, wire).size).toBe(0);
    expect(rejectedRows({ rejected: [] }, wire).size).toBe(0);
    expect(rejectedRows({ rejected: [{ seq: 99, index: 0, reason: "x" }, { seq: -1, index: 7, reason: "y" }, null, "z"] }, wire).size).toBe(0);
    expect(rejectedRows({ rejected: "everything" }, wire).size).toBe(0);
  });
});
