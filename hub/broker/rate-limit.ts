/** A token bucket: `rate` tokens per second, up to `burst`. Time is passed in so tests can drive it. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }
  take(now: number, n = 1): boolean {
    const elapsed = (now - this.last) / 1000;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate);
      this.last = now;
    }
    if (this.tokens >= n) {
      this.tokens -= n;
      return true;
    }
    return false;
  }
  /** Whether `n` tokens are available, without taking them. */
  has(now: number, n = 1): boolean {
    const elapsed = Math.max(0, (now - this.last) / 1000);
    return Math.min(this.burst, this.tokens + elapsed * this.rate) >= n;
  }
}

/** Per-key buckets (e.g. per remote IP) that forget idle keys. */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}
  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.buckets.clear();
      b = new TokenBucket(this.rate, this.burst, now);
      this.buckets.set(key, b);
    }
    return b.take(now);
  }
  has(key: string, now: number): boolean {
    return this.buckets.get(key)?.has(now) ?? true;
  }
}

/**
 * Bounds the PUBLISH packets admitted past the byte guard whose processing has not finished (queued in
 * aedes, waiting for their commit). When it is full the guard sheds new ones, counted, so under overload
 * the hub's backlog, memory and event-loop delay stay bounded whatever the machine's speed (RELIABILITY
 * fact 7); a rate budget alone lets a backlog grow wherever the hub is slower than the budget.
 */
export class InflightGate {
  private n = 0;
  constructor(readonly limit: number) {}
  get inflight(): number {
    return this.n;
  }
  tryEnter(): boolean {
    if (this.n >= this.limit) return false;
    this.n++;
    return true;
  }
  leave(k = 1): void {
    this.n = Math.max(0, this.n - k);
  }
}
