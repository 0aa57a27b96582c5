// The one seam for time, so tests can drive it (STYLE.md §7: doubles only for the clock).
export interface Clock {
  /** Milliseconds since the Unix epoch (the wall clock: NTP, an RTC-less boot or a user can step it). */
  now(): number;
  /**
   * Milliseconds on a clock that never steps (performance.now() by default). Intervals, timeouts and
   * clock-jump detection use it, so a wall-clock jump neither stalls nor bursts them (RELIABILITY F10).
   */
  monotonic?(): number;
}

export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };

/** The clock's monotonic reading, falling back to the process's own when a test clock gives none. */
export function monotonicNow(clock: Clock): number {
  return clock.monotonic ? clock.monotonic() : performance.now();
}
