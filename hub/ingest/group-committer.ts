// Group commit (RELIABILITY fact 1): many writes share one transaction, and each caller is told only
// after the commit, so a QoS 1 PUBACK always means "on disk". The transaction runs on the writer thread
// (writer-worker.mjs), so the fsync never blocks the event loop (fact 6); one batch is in flight at a time.
import { Worker } from "node:worker_threads";
import type { Logger } from "../../shared/logger.js";
import type { HubMetrics } from "../metrics.js";

/** One SQL statement with its parameters, run on the writer thread. */
export interface WriteOp {
  sql: string;
  params: (string | number | bigint | null | Buffer)[];
}

/** Called after the commit with each op's `changes`, or with the error that rolled the batch back. */
export type WriteDone = (err: Error | null, changes: number[]) => void;

export interface GroupCommitterOptions {
  /** Longest a write waits for its commit to start, ms. */
  intervalMs: number;
  /** A batch this large commits at once. */
  maxBatch: number;
  dbPath: string;
  maxPageCount?: number;
}

interface Pending {
  ops: WriteOp[];
  done: WriteDone;
}

/** Callers told per event-loop turn after a commit (see finish). */
const DONE_SLICE = 250;

export class StorageError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

export class GroupCommitter {
  private queue: Pending[] = [];
  private queuedOps = 0;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: { id: number; items: Pending[]; started: number } | null = null;
  private nextId = 1;
  private closed = false;
  private readonly worker: Worker;
  private drainWaiters: (() => void)[] = [];
  /** flush() was called while a batch was in flight: send the queue right after it. */
  private flushAfterInFlight = false;
  /** Set while the last commit failed (disk full, I/O error); cleared by the next success. */
  lastError: Error | null = null;
  /** While set (storage full), writes submitted as `ingest` are refused at once with this reason. */
  refuseIngest: string | null = null;

  constructor(
    private readonly opts: GroupCommitterOptions,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
  ) {
    this.worker = new Worker(new URL("./writer-worker.mjs", import.meta.url), { workerData: { path: opts.dbPath, maxPageCount: opts.maxPageCount } });
    this.worker.on("message", (msg: { type: string; id?: number; changes?: number[]; error?: { message: string; code?: string } }) => {
      if (msg.type === "done") this.finish(msg.changes ?? null, msg.error ?? null);
    });
    this.worker.on("error", (err) => {
      this.log.fatal({ err }, "writer thread died");
      this.finish(null, { message: `writer thread died: ${err.message}` });
    });
    this.worker.unref();
  }

  /** Ops waiting for a commit (queued or in flight). */
  get pending(): number {
    return this.queuedOps + (this.inFlight?.items.reduce((n, p) => n + p.ops.length, 0) ?? 0);
  }

  submit(ops: WriteOp | WriteOp[], done: WriteDone, opts: { ingest?: boolean } = {}): void {
    const list = Array.isArray(ops) ? ops : [ops];
    if (this.closed) return done(new Error("hub is shutting down"), []);
    if (opts.ingest && this.refuseIngest) {
      this.metrics.dropped.inc({ reason: "storage_full" });
      return done(new StorageError(this.refuseIngest, "STORAGE_FULL"), []);
    }
    this.queue.push({ ops: list, done });
    this.queuedOps += list.length;
    if (this.queuedOps >= this.opts.maxBatch) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.opts.intervalMs);
  }

  /** The same as submit, as a promise of the changes; `now` sends the batch without waiting for the window. */
  write(ops: WriteOp | WriteOp[], opts: { now?: boolean } = {}): Promise<number[]> {
    const p = new Promise<number[]>((resolve, reject) => this.submit(ops, (err, changes) => (err ? reject(err) : resolve(changes))));
    if (opts.now) this.flush();
    return p;
  }

  /** Sends what is queued to the writer now (or as soon as the batch in flight is committed). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.inFlight) {
      // Asked for now while a batch commits: send what is queued as soon as that one is done, not a window later.
      if (this.queue.length > 0) this.flushAfterInFlight = true;
      return;
    }
    if (this.queue.length === 0) return;
    const items = this.queue;
    this.queue = [];
    this.queuedOps = 0;
    const id = this.nextId++;
    this.inFlight = { id, items, started: performance.now() };
    this.worker.ref();
    this.worker.postMessage({ type: "batch", id, ops: items.flatMap((p) => p.ops) });
  }

  private finish(changes: number[] | null, error: { message: string; code?: string } | null) {
    const batch = this.inFlight;
    if (!batch) return;
    const ops = batch.items.reduce((n, p) => n + p.ops.length, 0);
    let results: (p: Pending, offset: number) => [Error | null, number[]];
    if (error || !changes) {
      const e = new StorageError(error?.message ?? "commit failed", error?.code);
      if (!this.lastError) this.log.error({ err: e.message, code: e.code }, "commit failed; nothing in this batch was acknowledged");
      this.lastError = e;
      this.metrics.dropped.inc({ reason: "storage_error" }, ops);
      results = () => [e, []];
    } else {
      if (this.lastError) this.log.info("commits succeed again");
      this.lastError = null;
      this.metrics.commitSeconds.observe((performance.now() - batch.started) / 1000);
      this.metrics.commitBatch.observe(ops);
      results = (p, offset) => [null, changes.slice(offset, offset + p.ops.length)];
    }
    // Callers are told in slices of DONE_SLICE, yielding between them: a 1 s window's batch holds thousands of
    // readings, and acking them all in one tick would stall the event loop for tens of ms. The batch stays in
    // flight until all are told, so the next one cannot overtake it (PUBACKs keep the order of the PUBLISHes).
    let next = 0;
    let offset = 0;
    const tell = () => {
      const end = Math.min(batch.items.length, next + DONE_SLICE);
      for (; next < end; next++) {
        const p = batch.items[next]!;
        const [err, mine] = results(p, offset);
        offset += p.ops.length;
        try {
          p.done(err, mine);
        } catch (e) {
          this.log.error({ err: e }, "post-commit step failed"); // the data is committed; the rest must still be told
        }
      }
      if (next < batch.items.length) setImmediate(tell);
      else this.settled();
    };
    tell();
  }

  /** The batch in flight has been committed (or failed) and every caller told: start the next one. */
  private settled() {
    this.inFlight = null;
    this.worker.unref();
    const urgent = this.flushAfterInFlight;
    this.flushAfterInFlight = false;
    if (this.queue.length > 0) {
      if (this.closed || urgent || this.queuedOps >= this.opts.maxBatch) this.flush();
      else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.opts.intervalMs);
    } else {
      for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  /** Commits everything queued, then stops the writer. */
  async close(): Promise<void> {
    this.closed = true;
    this.flush();
    if (this.inFlight || this.queue.length > 0) await new Promise<void>((r) => this.drainWaiters.push(r));
    this.worker.ref();
    await new Promise<void>((resolve) => {
      this.worker.once("message", () => resolve());
      this.worker.once("exit", () => resolve());
      this.worker.postMessage({ type: "close" });
    });
    await this.worker.terminate();
  }
}
