// Pure arithmetic of the autonomy bench (issue 4), unit-tested in test/unit/bench/autonomy-math.test.ts.
import { DateTime } from "luxon";

export const MINUTE_MS = 60_000;

/** The next `count` minute boundaries, the first at least `leadMs` after `now`. */
export function minuteInstants(now: number, count: number, leadMs: number): number[] {
  const first = Math.ceil((now + leadMs) / MINUTE_MS) * MINUTE_MS;
  return Array.from({ length: count }, (_, i) => first + i * MINUTE_MS);
}

/** A one-shot schedule's `at` (local date-time, YYYY-MM-DDTHH:MM[:SS]) for an instant in `zone`. */
export function onceAt(ts: number, zone: string): string {
  const d = DateTime.fromMillis(ts, { zone });
  return d.second === 0 ? d.toFormat("yyyy-MM-dd'T'HH:mm") : d.toFormat("yyyy-MM-dd'T'HH:mm:ss");
}

export interface Expected {
  deviceId: string;
  at: number;
  relayOn: boolean;
}

export interface RelayEvent {
  deviceId: string;
  relayOn: boolean;
  /** when the bench received the hub's WebSocket frame, ms since epoch */
  recvAt: number;
}

/**
 * For each expected switch, the delay from its instant to the first event of that device reaching the
 * wanted state at or after `at - earlyMs` and before the device's next expected switch. Missing ones
 * (no such event) are listed apart: they count as misses, not as delays.
 */
export function scheduleDelays(expected: Expected[], events: RelayEvent[], earlyMs = 0): { delays: number[]; missed: Expected[] } {
  const byDevice = new Map<string, RelayEvent[]>();
  for (const e of events) {
    const l = byDevice.get(e.deviceId) ?? [];
    l.push(e);
    byDevice.set(e.deviceId, l);
  }
  for (const l of byDevice.values()) l.sort((a, b) => a.recvAt - b.recvAt);
  const delays: number[] = [];
  const missed: Expected[] = [];
  const sorted = [...expected].sort((a, b) => a.at - b.at);
  for (const x of sorted) {
    const next = sorted.find((y) => y.deviceId === x.deviceId && y.at > x.at)?.at ?? Infinity;
    const hit = (byDevice.get(x.deviceId) ?? []).find((e) => e.relayOn === x.relayOn && e.recvAt >= x.at - earlyMs && e.recvAt < next);
    if (hit) delays.push(hit.recvAt - x.at);
    else missed.push(x);
  }
  return { delays, missed };
}

/** Whether `now` is within [instant - before, instant + after] of any instant. */
export function nearAny(now: number, instants: number[], before: number, after: number): boolean {
  return instants.some((t) => now >= t - before && now <= t + after);
}

export const MB_DEC = 1_000_000;

/** Storage per plug for `rowsPerPeriod` rows of `bytesPerRow`, bytes. */
export const bytesFor = (bytesPerRow: number, rowsPerPeriod: number) => bytesPerRow * rowsPerPeriod;

/** Rows one plug produces per day at `hz` readings per second, and per year at each rollup level. */
export const ROWS = {
  rawPerDay: (hz: number) => 86_400 * hz,
  m1PerYear: 525_600,
  h1PerYear: 8_760,
  d1PerYear: 365,
};

/**
 * Steady-state footprint of one plug under retention (days kept per level), from bytes per row: raw at
 * `hz`, 1 m, 1 h and 1 d rows. Returns bytes per level and the total.
 */
export function retainedFootprint(perRow: { raw: number; m1: number; h1: number; d1: number }, keepDays: { raw: number; m1: number; h1: number; d1: number }, hz: number) {
  const raw = perRow.raw * ROWS.rawPerDay(hz) * keepDays.raw;
  const m1 = perRow.m1 * 1440 * keepDays.m1;
  const h1 = perRow.h1 * 24 * keepDays.h1;
  const d1 = perRow.d1 * keepDays.d1;
  return { raw, m1, h1, d1, total: raw + m1 + h1 + d1 };
}
