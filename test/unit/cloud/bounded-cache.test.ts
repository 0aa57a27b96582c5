// The rules that make cached answers safe for revocation (cloud/auth/bounded-cache.ts), on an injected clock.
import { describe, expect, it } from "vitest";
import { BoundedCache } from "../../../cloud/auth/bounded-cache.js";

function cache(o: { max?: number; ttlMs?: number; horizonMs?: number } = {}) {
  let now = 1_000_000;
  const c = new BoundedCache<string, string>({ max: o.max ?? 100, ttlMs: o.ttlMs ?? 2000, now: () => now, horizonMs: o.horizonMs });
  return { c, advance: (ms: number) => (now += ms), now: () => now };
}

describe("BoundedCache", () => {
  it("an answer lives ttlMs from the start of its lookup, not from when it was stored", () => {
    const { c, advance } = cache();
    const t = c.begin();
    advance(1500); // a slow lookup
    expect(c.fill("k", "v", t)).toBe(true);
    advance(499);
    expect(c.get("k")).toBe("v");
    advance(1);
    expect(c.get("k")).toBeUndefined();
  });

  it("an explicit expiry sooner than ttlMs wins (a token's exp)", () => {
    const { c, advance, now } = cache({ ttlMs: Infinity });
    expect(c.fill("k", "v", c.begin(), now() + 100)).toBe(true);
    advance(99);
    expect(c.get("k")).toBe("v");
    advance(1);
    expect(c.get("k")).toBeUndefined();
    expect(c.fill("late", "v", c.begin(), now())).toBe(false);
  });

  it("a lookup that raced an invalidation of its key is not stored; one that began after it is", () => {
    const { c } = cache();
    const before = c.begin();
    c.invalidate("k");
    expect(c.fill("k", "stale", before)).toBe(false);
    expect(c.get("k")).toBeUndefined();
    expect(c.fill("other", "v", before)).toBe(true); // another key is unaffected
    expect(c.fill("k", "fresh", c.begin())).toBe(true);
    expect(c.get("k")).toBe("fresh");
    c.invalidate("k");
    expect(c.get("k")).toBeUndefined();
  });

  it("invalidateWhere and clear refuse every lookup that began before them, whatever its key", () => {
    const { c } = cache();
    c.fill("a", "user-1", c.begin());
    c.fill("b", "user-2", c.begin());
    const racing = c.begin();
    c.invalidateWhere((v) => v === "user-1");
    expect(c.get("a")).toBeUndefined();
    expect(c.get("b")).toBe("user-2");
    expect(c.fill("c", "user-1", racing)).toBe(false);
    const racing2 = c.begin();
    c.clear();
    expect(c.get("b")).toBeUndefined();
    expect(c.fill("d", "x", racing2)).toBe(false);
    expect(c.fill("d", "x", c.begin())).toBe(true);
  });

  it("a lookup older than the horizon is not stored (its key's invalidation may be forgotten)", () => {
    const { c, advance } = cache({ horizonMs: 5000, ttlMs: 60_000 });
    const t = c.begin();
    c.invalidate("k");
    advance(5001);
    c.invalidate("other"); // prunes the record of "k"
    expect(c.fill("k", "stale", t)).toBe(false);
  });

  it("keeps at most max entries, dropping the oldest", () => {
    const { c } = cache({ max: 3 });
    for (const k of ["a", "b", "c", "d"]) c.fill(k, k, c.begin());
    expect(c.size).toBe(3);
    expect(c.get("a")).toBeUndefined();
    expect(c.get("d")).toBe("d");
  });
});
