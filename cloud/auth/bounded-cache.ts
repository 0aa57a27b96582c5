// A bounded in-process cache of answers a request would otherwise look up in the database every time (the
// sign-in check, device access, a device's latest state), for the authenticated read path (issue 5 figures:
// ≥ 3,000 req/s on GET /devices/{id}/telemetry/latest).
//
// Two rules keep it honest:
// - An answer lives `ttlMs` from the moment its lookup *started*, so what it says is never older than ttlMs. That
//   is the bound for changes made by another cloud process (this process learns of its own changes at once).
// - A lookup takes a ticket before it reads; its answer is stored only if nothing it could have missed was
//   invalidated since: a key invalidated after the ticket refuses that key's answer, and a fence (an
//   invalidation by predicate, or clear) refuses every answer whose lookup started before it. So a lookup that
//   raced a revocation can answer its own request (as it would have without a cache) but is never kept.
// Entries are evicted oldest first beyond `max` (they expire within ttlMs anyway).

export interface CacheTicket {
  readonly seq: number;
  readonly at: number;
}

export interface BoundedCacheOptions {
  /** Entries kept at most; the oldest go first. */
  max: number;
  /** How long an answer is trusted, from the start of the lookup that produced it (ms). */
  ttlMs: number;
  now: () => number;
  /** A lookup running longer than this is not stored (ms); bounds the memory of recent invalidations. */
  horizonMs?: number;
}

export class BoundedCache<K, V> {
  private readonly entries = new Map<K, { value: V; until: number }>();
  /** Keys invalidated within the horizon → the sequence number of that invalidation (oldest first). */
  private readonly invalidated = new Map<K, { seq: number; at: number }>();
  private seq = 0;
  private fence = 0;
  private readonly horizonMs: number;

  constructor(private readonly o: BoundedCacheOptions) {
    this.horizonMs = o.horizonMs ?? 10_000;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.until <= this.o.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  /** Take before the lookup whose answer `fill` may store. */
  begin(): CacheTicket {
    return { seq: this.seq, at: this.o.now() };
  }

  /**
   * Stores `value` unless an invalidation since `ticket` could make it stale. It expires `ttlMs` after the
   * ticket, or at `until` (epoch ms, same clock) when that is sooner. Returns whether it was stored.
   */
  fill(key: K, value: V, ticket: CacheTicket, until = Infinity): boolean {
    const now = this.o.now();
    if (ticket.seq < this.fence || now - ticket.at > this.horizonMs) return false;
    const inv = this.invalidated.get(key);
    if (inv !== undefined && inv.seq > ticket.seq) return false;
    const expires = Math.min(until, ticket.at + this.o.ttlMs);
    if (expires <= now) return false;
    this.entries.delete(key); // re-inserted last: the newest
    this.entries.set(key, { value, until: expires });
    if (this.entries.size > this.o.max) this.entries.delete(this.entries.keys().next().value as K);
    return true;
  }

  /** Forgets one key; a lookup of it already under way is not stored. */
  invalidate(key: K): void {
    this.entries.delete(key);
    const now = this.o.now();
    this.invalidated.delete(key);
    this.invalidated.set(key, { seq: ++this.seq, at: now });
    for (const [k, v] of this.invalidated) {
      if (now - v.at <= this.horizonMs) break;
      this.invalidated.delete(k);
    }
  }

  /** Forgets every entry `match` selects; no lookup already under way is stored (it may concern a matching key). */
  invalidateWhere(match: (value: V, key: K) => boolean): void {
    this.fence = ++this.seq;
    for (const [k, e] of this.entries) if (match(e.value, k)) this.entries.delete(k);
  }

  clear(): void {
    this.fence = ++this.seq;
    this.entries.clear();
    this.invalidated.clear();
  }
}
