// The one seam for time, so tests can drive it (STYLE.md §7: doubles only for the clock).
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
