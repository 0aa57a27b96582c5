// Group commit (RELIABILITY fact 1): many writes share one transaction, and each caller is told only
// after the commit, so a QoS 1 PUBACK always means "on disk". One short transaction per window keeps
// the event loop free (fact 6) and the bytes written per reading low.
import type { HubDb } from "../db/open-db.js";
import type { Logger } from "../../shared/logger.js";
import type { HubMetrics } from "../metrics.js";

/** Runs inside the transaction; may return work to run after the commit. */
export type WriteOp = () => (() => void) | void;
type Done = (err: Error | null) => void;

export interface GroupCommitterOptions {
  /** Longest a write waits for its commit, ms. */
  intervalMs: number;
  /** A batch this large commits at once. */
  maxBatch: number;
}

export class GroupCommitter {
  private ops: WriteOp[] = [];
  private dones: Done[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Set while the last commit failed (disk full, I/O error); cleared by the next success. */
  lastError: Error | null = null;

  constructor(
    private readonly db: HubDb,
    private readonly opts: GroupCommitterOptions,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
  ) {}

  get pending(): number {
    return this.ops.length;
  }

  submit(op: WriteOp, done: Done): void {
    if (this.closed) return done(new Error("hub is shutting down"));
    this.ops.push(op);
    this.dones.push(done);
    if (this.ops.length >= this.opts.maxBatch) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.opts.intervalMs);
  }

  /** Commits what is pending now. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.ops.length === 0) return;
    const ops = this.ops;
    const dones = this.dones;
    this.ops = [];
    this.dones = [];
    const started = performance.now();
    const after: (() => void)[] = [];
    try {
      this.db.sqlite.transaction(() => {
        for (const op of ops) {
          const post = op();
          if (post) after.push(post);
        }
      })();
    } catch (err) {
      const e = err as Error;
      if (!this.lastError) this.log.error({ err: e.message, code: (e as { code?: string }).code }, "commit failed; nothing in this batch was acknowledged");
      this.lastError = e;
      this.metrics.dropped.inc({ reason: "storage_error" }, ops.length);
      for (const d of dones) d(e);
      return;
    }
    if (this.lastError) this.log.info("commits succeed again");
    this.lastError = null;
    this.metrics.commitSeconds.observe((performance.now() - started) / 1000);
    this.metrics.commitBatch.observe(ops.length);
    for (const a of after) {
      try {
        a();
      } catch (err) {
        this.log.error({ err }, "post-commit step failed"); // the data is committed; acks must still go out
      }
    }
    for (const d of dones) d(null);
  }

  close(): void {
    this.flush();
    this.closed = true;
  }
}
