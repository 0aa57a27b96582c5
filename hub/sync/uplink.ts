// The uplink (issue 6 §2): sends the outbox to the cloud as gzip JSON batches, one batch in flight, and
// deletes rows only up to the sequence the cloud says it stored. 2xx acks; 5xx, timeouts and network
// errors back off with full jitter (capped); 429 waits for Retry-After; 401/403 pause with "hub credential
// rejected". A row is dead-lettered only when the cloud's answer proves that row is bad (RELIABILITY F7):
// a 400/422 whose `rejected[]` names it (dead-letter exactly those, resend the rest), or — for a 400/422 that
// names nothing — after bisecting down to that one row and checking that the endpoint does take a known-good
// row. Any other 4xx (404, 405, 410, 415, a 413 for one row …) says the endpoint, not the data, is wrong: the
// uplink pauses with "endpoint_refused" and backs off, and nothing is dead-lettered. 413 halves the batch.
// While rows remain it sends back to back (catch-up). Before the first batch of a process it checks the outbox's
// numbering against the cloud's synced_seq (Outbox.checkSequence): a hub restored from a backup renumbers what it
// queued since the restore above what the cloud has stored, so nothing it sends is skipped as already stored.
import { gzip } from "node:zlib";
import { promisify } from "node:util";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import { SyncAck } from "../../shared/schemas/sync.js";
import type { Outbox, OutboxRow, SequenceCheck } from "./outbox.js";

const gzipAsync = promisify(gzip);

export interface UplinkOptions {
  /** How often an idle uplink looks for new rows, ms. */
  intervalMs: number;
  maxRows: number;
  /** Uncompressed JSON bytes per batch. */
  maxBytes: number;
  requestTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface UplinkCredential {
  url: string;
  authorization: string;
}

/**
 * `endpoint_refused`: the cloud URL answers with a 4xx that blames the request, not a row (404, 405, 413 for a
 * single row, a 400 that names no row and refuses a known-good row too …) — likely a wrong HUB_CLOUD_URL or a proxy
 * in the way. The uplink backs off and retries; nothing is dead-lettered.
 */
export type UplinkState = "idle" | "sending" | "backoff" | "rate_limited" | "credential_rejected" | "endpoint_refused" | "disabled";

export interface UplinkStatus {
  state: UplinkState;
  last_success_at: number | null;
  last_attempt_at: number | null;
  last_error: string | null;
  next_attempt_at: number | null;
  consecutive_failures: number;
  batches_sent: number;
  rows_sent: number;
  acked_seq: number;
}

/** Random in [0, min(cap, base · 2^attempt)) — "full jitter" (AWS Architecture Blog, exponential backoff). */
export function fullJitter(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30)));
}

/** Retry-After (RFC 9110 §10.2.3) as delay-seconds or an HTTP-date, in ms from now; null when absent or unreadable. */
export function retryAfterMs(header: string | null, now: number): number | null {
  if (!header) return null;
  const v = header.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date names its day and month ("Wed, 21 Oct 2015 07:28:00 GMT"); "1.5" or "-3" is neither form.
  if (!/[A-Za-z]{3}/.test(v)) return null;
  // HTTP-dates are GMT; asctime's form does not say so, and Date.parse would read it as local time.
  const at = Date.parse(/(GMT|UTC|Z)$/i.test(v) ? v : `${v} GMT`);
  return Number.isFinite(at) ? Math.max(0, at - now) : null;
}

/** The rows of a batch a 400/422 problem body names in `rejected[]` (by seq, or by index when it has no seq), with reasons. */
export function rejectedRows(problem: unknown, wire: readonly unknown[]): Map<number, string> {
  const named = new Map<number, string>();
  const list = (problem as { rejected?: unknown } | null)?.rejected;
  if (!Array.isArray(list)) return named;
  const seqs = wire.map((w) => (w as { seq: number }).seq);
  for (const r of list as { seq?: unknown; index?: unknown; reason?: unknown }[]) {
    if (!r || typeof r !== "object") continue;
    let seq: number | undefined;
    if (typeof r.seq === "number" && seqs.includes(r.seq)) seq = r.seq;
    else if (typeof r.index === "number" && Number.isInteger(r.index) && r.index >= 0 && r.index < seqs.length && (typeof r.seq !== "number" || r.seq < 0)) seq = seqs[r.index];
    if (seq === undefined) continue;
    named.set(seq, typeof r.reason === "string" && r.reason ? r.reason : "refused by the cloud");
  }
  return named;
}

/** A row of a batch as sent: its sequence and its JSON (parsed again only to dead-letter it). */
interface WireRow {
  seq: number;
  json: string;
}

interface Batch {
  /** Outbox.renumberings when it was read: a batch read before a renumbering is never sent. */
  epoch: number;
  used: OutboxRow[];
  wire: WireRow[];
  body: Buffer;
  lastSeq: number;
}

/**
 * Rows read from the outbox per query, and materialized between two yields to the event loop. Each stretch of
 * synchronous SQLite work stays at a few ms, so preparing a 5,000-row batch (while the previous one is in flight,
 * or again and again against a hanging cloud) keeps the hub's event-loop delay p99 well under 50 ms (F4).
 */
const HEAD_CHUNK = 200;
/** How long a 413's lower batch size holds before the uplink tries full batches again. */
const ROW_CAP_RETRY_MS = 3_600_000;
const PREPARE_SLICE = 50;
const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

export class Uplink {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private closed = false;
  private kicked = false;
  /** Rows per batch right now: halved on a refused batch (bisecting) or a 413, restored by successes up to `rowCap`. */
  private limit: number;
  /**
   * Most rows per batch: HUB_SYNC_BATCH_ROWS, lowered when the cloud (or a proxy) answers 413 Payload Too Large, and
   * raised back ROW_CAP_RETRY_MS after the last 413 (a proxy restarting with a small default limit is not forever).
   */
  private rowCap: number;
  private rowCapAt = 0;
  readonly status: UplinkStatus = {
    state: "idle",
    last_success_at: null,
    last_attempt_at: null,
    last_error: null,
    next_attempt_at: null,
    consecutive_failures: 0,
    batches_sent: 0,
    rows_sent: 0,
    acked_seq: 0,
  };
  private inFlight: AbortController | null = null;
  /**
   * A one-row batch refused without a named row while the endpoint took a known-good row just after: it is sent once
   * more alone and dead-lettered only if refused again, so a blanket refusal that ends between the row and the probe
   * (a proxy coming back) never dead-letters a good row.
   */
  private suspect: number | null = null;
  private prefetch: { limit: number; batch: Promise<Batch | null> } | null = null;

  constructor(
    private readonly outbox: Outbox,
    private readonly credential: () => UplinkCredential | null,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: UplinkOptions,
    private readonly hooks: { onBatch?: (outcome: string, rows: number) => void; onDeadLetter?: (n: number) => void; onRenumber?: (check: SequenceCheck) => void } = {},
  ) {
    this.limit = opts.maxRows;
    this.rowCap = opts.maxRows;
  }

  start(): void {
    this.schedule(0);
  }

  /** New rows are waiting: send soon if idle (backoff and Retry-After still hold). */
  kick(): void {
    if (this.status.state === "idle" && !this.running) this.schedule(0);
    else this.kicked = true;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.inFlight?.abort();
  }

  private schedule(delayMs: number) {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.status.next_attempt_at = this.clock.now() + delayMs;
    this.timer = setTimeout(() => void this.cycle(), delayMs);
    this.timer.unref();
  }

  /** One step: send one batch (or nothing) and decide when the next step runs. Tests call it directly. */
  async cycle(): Promise<void> {
    if (this.running || this.closed) return;
    this.running = true;
    this.kicked = false;
    let next = this.opts.intervalMs;
    try {
      next = await this.sendOne();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "uplink step failed");
      next = this.fail(`uplink error: ${(err as Error).message}`, "backoff");
    } finally {
      this.running = false;
    }
    if (this.kicked && this.status.state === "idle") next = 0;
    this.schedule(next);
  }

  private fail(message: string, state: UplinkState, waitMs?: number): number {
    this.status.consecutive_failures++;
    this.status.last_error = message;
    this.status.state = state;
    return waitMs ?? fullJitter(this.status.consecutive_failures, this.opts.backoffBaseMs, this.opts.backoffMaxMs);
  }

  /**
   * Up to `limit` rows after `afterSeq` as a gzip body, cut at the byte budget. Rows whose content is gone (a
   * rollup purged by retention) are skipped and acked with the batch. Materializes in slices, yielding between
   * them, so a 5,000-row batch never holds the event loop for long.
   */
  private async prepare(afterSeq: number, limit: number): Promise<Batch | null> {
    const epoch = this.outbox.renumberings;
    const wire: WireRow[] = [];
    const parts: Buffer[] = [];
    const used: OutboxRow[] = [];
    let bytes = 12;
    let after = afterSeq;
    let full = false;
    while (!full && used.length < limit) {
      if (used.length > 0) await yieldToLoop();
      const rows = this.outbox.headWire(after, Math.min(HEAD_CHUNK, limit - used.length));
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.row.seq;
      for (let i = 0; i < rows.length && !full; i += PREPARE_SLICE) {
        if (i > 0) await yieldToLoop();
        const texts: string[] = [];
        for (const { row: r, json } of rows.slice(i, i + PREPARE_SLICE)) {
          const text = json ?? "";
          if (used.length > 0 && bytes + text.length + 1 > this.opts.maxBytes) {
            full = true;
            break;
          }
          used.push(r);
          if (json !== null) {
            wire.push({ seq: r.seq, json });
            texts.push(text);
            bytes += text.length + 1;
          }
        }
        if (texts.length) parts.push(Buffer.from((parts.length ? "," : "") + texts.join(",")));
      }
    }
    if (used.length === 0) return null;
    const body = wire.length ? await gzipAsync(Buffer.concat([Buffer.from('{"rows":['), ...parts, Buffer.from("]}")])) : Buffer.alloc(0);
    return { epoch, used, wire, body, lastSeq: used[used.length - 1]!.seq };
  }

  /** Sends the next batch; returns how long to wait before the next step. */
  private async sendOne(): Promise<number> {
    const cred = this.credential();
    if (!cred) {
      this.status.state = "disabled";
      return this.opts.intervalMs;
    }
    if (this.outbox.uncheckedAfter !== null) {
      const wait = await this.checkSequence(cred);
      if (wait !== null) return wait;
    }
    const tPrep = performance.now();
    // The batch prepared while the previous one was in flight, if it still fits; else a fresh one.
    const prefetched = this.prefetch && this.prefetch.limit === this.limit ? await this.prefetch.batch : null;
    this.prefetch = null;
    // Valid only if it starts exactly at the queue's head (the previous batch was acked to its end) and no renumbering
    // happened since it was read.
    const head = prefetched ? this.outbox.head(0, 1)[0] : undefined;
    const batch = prefetched && prefetched.epoch === this.outbox.renumberings && head?.seq === prefetched.used[0]!.seq ? prefetched : await this.prepare(0, this.limit);
    if (!batch || batch.epoch !== this.outbox.renumberings) {
      if (batch) return 0; // renumbered while it was read: read it again
      this.status.state = "idle";
      this.limit = this.rowCap;
      return this.opts.intervalMs;
    }
    const { used, wire, body, lastSeq } = batch;
    if (wire.length === 0) {
      await this.outbox.ack(lastSeq);
      return 0;
    }
    this.status.state = "sending";
    this.status.last_attempt_at = this.clock.now();
    const tSend = performance.now();
    const ac = new AbortController();
    this.inFlight = ac;
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${this.opts.requestTimeoutMs} ms`)), this.opts.requestTimeoutMs);
    let res: Response;
    let text: string;
    try {
      const request = fetch(`${cred.url}/hub/sync`, {
        method: "POST",
        headers: { authorization: cred.authorization, "content-type": "application/json", "content-encoding": "gzip" },
        body,
        signal: ac.signal,
      });
      // Catch-up: prepare the next batch while this one is on its way (it is used only if this one is acked).
      if (used.length >= this.limit) this.prefetch = { limit: this.limit, batch: this.prepare(lastSeq, this.limit).catch(() => null) };
      res = await request;
      text = await res.text();
    } catch (err) {
      const reason = ac.signal.aborted ? String((ac.signal.reason as Error | undefined)?.message ?? "aborted") : (err as Error).message;
      this.hooks.onBatch?.("network_error", wire.length);
      this.suspect = null;
      if (this.closed) return this.opts.intervalMs;
      this.log.warn({ err: reason, rows: wire.length }, "sync batch failed; backing off");
      return this.fail(`cloud unreachable: ${reason}`, "backoff");
    } finally {
      clearTimeout(timer);
      this.inFlight = null;
    }

    if (res.ok) {
      const tAck = performance.now();
      const ack = SyncAck.safeParse(safeJson(text));
      if (!ack.success) {
        // A 2xx that is not the cloud's acknowledgement (a captive portal, a proxy's HTML page): nothing is known stored.
        this.hooks.onBatch?.("bad_ack", wire.length);
        this.log.warn({ status: res.status, body: text.slice(0, 200) }, "cloud endpoint answered 2xx without a sync acknowledgement; sync paused");
        return this.fail(`the cloud endpoint answered ${res.status} without a sync acknowledgement (check HUB_CLOUD_URL)`, "endpoint_refused");
      }
      const upTo = Math.min(lastSeq, ack.data.acked_seq);
      await this.outbox.ack(upTo);
      this.suspect = null;
      this.log.debug({ rows: wire.length, gzipBytes: body.length, prepareMs: Math.round(tSend - tPrep), requestMs: Math.round(tAck - tSend), ackMs: Math.round(performance.now() - tAck) }, "sync batch acked");
      this.hooks.onBatch?.("acked", wire.length);
      this.status.state = "idle";
      this.status.last_success_at = this.clock.now();
      this.status.last_error = null;
      this.status.consecutive_failures = 0;
      this.status.batches_sent++;
      this.status.rows_sent += wire.length;
      this.status.acked_seq = Math.max(this.status.acked_seq, upTo);
      if (this.rowCap < this.opts.maxRows && this.clock.now() - this.rowCapAt >= ROW_CAP_RETRY_MS) {
        this.rowCap = this.opts.maxRows;
        this.log.info({ rows: this.rowCap }, "an hour without 413: growing batches back to their full size");
      }
      this.limit = Math.min(this.rowCap, this.limit * 2);
      // Catch-up: more rows waiting → straight on.
      return this.outbox.head(upTo, 1).length > 0 ? 0 : this.opts.intervalMs;
    }
    // Not acked: a batch prepared behind this one starts at the wrong row.
    this.prefetch = null;
    this.hooks.onBatch?.(`http_${res.status}`, wire.length);
    const wait = this.notNow(res);
    if (wait === null) return this.refused(res.status, text, batch, cred);
    this.suspect = null; // evidence against a row holds only for the send right after the probe
    return wait;
  }

  /** How long to wait after an answer that says "not now" (429, 401/403, 408, 5xx), or null for any other answer. */
  private notNow(res: Response): number | null {
    if (res.status === 429) {
      const wait = retryAfterMs(res.headers.get("retry-after"), this.clock.now()) ?? 60_000;
      this.log.warn({ waitMs: wait }, "cloud asked the hub to slow down (429)");
      return this.fail("rate limited by the cloud (429)", "rate_limited", wait);
    }
    if (res.status === 401 || res.status === 403) {
      this.log.error({ status: res.status }, "hub credential rejected by the cloud; sync paused");
      return this.fail("hub credential rejected", "credential_rejected", this.opts.backoffMaxMs);
    }
    if (res.status >= 500 || res.status === 408) {
      const retryAfter = retryAfterMs(res.headers.get("retry-after"), this.clock.now());
      const wait = this.fail(`cloud answered ${res.status}`, "backoff");
      return retryAfter !== null ? Math.max(wait, retryAfter) : wait;
    }
    return null;
  }

  /**
   * Before anything numbered since the last check goes out (once a process, see Outbox.markUnchecked): asks the cloud
   * for its synced_seq (`{ rows: [], query: "synced_seq" }`, which stores nothing) and lets the outbox renumber what
   * the cloud would skip (Outbox.checkSequence). Returns null once checked (send now), else how long to wait; until
   * then nothing is sent. A crash anywhere in between leaves the check to the next start.
   */
  private async checkSequence(cred: UplinkCredential): Promise<number | null> {
    const after = this.outbox.uncheckedAfter;
    if (after === null) return null;
    this.status.state = "sending";
    this.status.last_attempt_at = this.clock.now();
    const ac = new AbortController();
    this.inFlight = ac;
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${this.opts.requestTimeoutMs} ms`)), this.opts.requestTimeoutMs);
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${cred.url}/hub/sync`, {
        method: "POST",
        headers: { authorization: cred.authorization, "content-type": "application/json", "content-encoding": "gzip" },
        body: await gzipAsync(Buffer.from(JSON.stringify({ rows: [], query: "synced_seq" }))),
        signal: ac.signal,
      });
      text = await res.text();
    } catch (err) {
      const reason = ac.signal.aborted ? String((ac.signal.reason as Error | undefined)?.message ?? "aborted") : (err as Error).message;
      this.hooks.onBatch?.("sequence_check_network_error", 0);
      if (this.closed) return this.opts.intervalMs;
      this.log.warn({ err: reason }, "sequence check failed; backing off");
      return this.fail(`cloud unreachable: ${reason}`, "backoff");
    } finally {
      clearTimeout(timer);
      this.inFlight = null;
    }
    if (!res.ok) {
      this.hooks.onBatch?.(`sequence_check_http_${res.status}`, 0);
      const wait = this.notNow(res);
      if (wait !== null) return wait;
      this.log.error({ status: res.status, body: text.slice(0, 200) }, "the cloud does not answer the hub's sequence check; nothing sent, sync paused");
      return this.fail(`the cloud endpoint refused the sequence check (HTTP ${res.status}); nothing sent — check HUB_CLOUD_URL, and that the cloud is not older than the hub`, "endpoint_refused");
    }
    const ack = SyncAck.safeParse(safeJson(text));
    if (!ack.success || ack.data.synced_seq === undefined) {
      this.hooks.onBatch?.("sequence_check_bad_answer", 0);
      this.log.warn({ status: res.status, body: text.slice(0, 200) }, "the cloud answered the sequence check without its synced_seq; nothing sent, sync paused");
      return this.fail(`the cloud endpoint answered ${res.status} without a synced_seq (check HUB_CLOUD_URL, and that the cloud is not older than the hub)`, "endpoint_refused");
    }
    const check = await this.outbox.checkSequence(after, ack.data.synced_seq);
    this.hooks.onBatch?.("sequence_checked", 0);
    if (check.shift > 0) {
      // Nothing read before the renumbering may go out.
      this.prefetch = null;
      this.log.warn(
        { ...check },
        `the cloud has stored up to sequence ${check.cloudSeq}, past this hub's ${check.after} (restored from a backup?): ${check.rows} rows queued since renumbered from ${check.after + 1} to ${check.cloudSeq + 1}, so that the cloud stores them`,
      );
      this.hooks.onRenumber?.(check);
    } else {
      this.log.debug({ ...check }, "outbox numbering checked against the cloud");
    }
    this.status.state = "idle";
    this.status.consecutive_failures = 0;
    this.status.last_error = null;
    return null;
  }

  /**
   * A 4xx other than 401/403/408/429. Rows are dead-lettered only on proof (RELIABILITY F7): the cloud named them
   * in `rejected[]`, or a one-row batch was refused, the endpoint then took a known-good row, and the row sent alone
   * once more was refused again. Everything else
   * pauses the uplink with a visible status and backs off: a wrong URL or a proxy must never empty the outbox.
   */
  private async refused(status: number, text: string, batch: Batch, cred: UplinkCredential): Promise<number> {
    const { used, wire } = batch;
    const problem = safeJson(text) as { detail?: unknown } | null;
    const detail = typeof problem?.detail === "string" && problem.detail ? problem.detail : `HTTP ${status}`;
    if (status === 400 || status === 422) {
      const named = rejectedRows(problem, wire);
      if (named.size > 0) {
        // The cloud stored nothing of this batch; the rows it did not name go again in the next one.
        await this.deadLetter(batch, named);
        this.status.state = "idle";
        return 0;
      }
      if (wire.length > 1) {
        this.limit = Math.max(1, Math.ceil(Math.min(this.limit, used.length) / 2));
        this.log.warn({ status, rows: wire.length, nextRows: this.limit }, "cloud refused a batch without naming rows; bisecting to find the row it refuses");
        this.status.state = "idle";
        return 0;
      }
      const seq = wire[0]!.seq;
      if (this.suspect === seq) {
        // Refused again, alone, right after the endpoint took a known-good row: this row is what is wrong.
        this.suspect = null;
        await this.deadLetter(batch, new Map([[seq, detail]]));
        this.status.state = "idle";
        return 0;
      }
      const probe = await this.probe(cred, seq, batch.used.find((r) => r.seq === seq)?.ref ?? null);
      if (probe === "accepted") {
        this.suspect = seq;
        this.log.warn({ status, seq }, "cloud refused a one-row batch but took a known-good row; sending the row once more before dead-lettering it");
        this.status.state = "idle";
        return 0;
      }
      this.suspect = null;
      this.log.error({ status, seq, probe }, "cloud refused a one-row batch without naming the row, and does not take a known-good row either; nothing dead-lettered, sync paused");
      return this.fail(`the cloud endpoint refuses every batch (HTTP ${status}: ${detail.slice(0, 200)}); nothing dead-lettered — check HUB_CLOUD_URL and any proxy`, "endpoint_refused");
    }
    if (status === 413 && used.length > 1) {
      this.rowCap = Math.max(1, Math.ceil(used.length / 2));
      this.rowCapAt = this.clock.now();
      this.limit = Math.min(this.limit, this.rowCap);
      this.log.warn({ rows: wire.length, gzipBytes: batch.body.length, nextRows: this.rowCap }, "cloud refused the batch as too large (413); sending smaller batches");
      this.status.state = "idle";
      return 0;
    }
    this.log.error({ status, detail: detail.slice(0, 200) }, "cloud endpoint refused the sync request; nothing dead-lettered, sync paused");
    return this.fail(`the cloud endpoint refused the sync request (HTTP ${status}); nothing dead-lettered — check HUB_CLOUD_URL and any proxy`, "endpoint_refused");
  }

  private async deadLetter(batch: Batch, named: Map<number, string>): Promise<void> {
    const rows = batch.used.filter((r) => named.has(r.seq));
    const wireBySeq = new Map(batch.wire.map((w) => [w.seq, w.json]));
    await this.outbox.deadLetter(rows.map((row) => ({ row, wire: safeJson(wireBySeq.get(row.seq) ?? "null"), reason: named.get(row.seq)! })));
    this.hooks.onDeadLetter?.(rows.length);
    // Content-less rows of the batch (rollups purged by retention) stay; the next ack takes them.
  }

  /**
   * Sends one row the cloud must take — the current record of one of this hub's devices, numbered just below the
   * refused row, so it can neither skip nor reorder a waiting row (the cloud skips sequences it has passed, and
   * applies a device record by version). If the endpoint takes it, the refused row is what is wrong.
   */
  private async probe(cred: UplinkCredential, beforeSeq: number, avoid: string | null): Promise<"accepted" | "refused" | "unavailable"> {
    const row = beforeSeq > 1 ? this.outbox.probeRow(beforeSeq - 1, avoid) : null;
    if (!row) return "unavailable";
    try {
      const res = await fetch(`${cred.url}/hub/sync`, {
        method: "POST",
        headers: { authorization: cred.authorization, "content-type": "application/json", "content-encoding": "gzip" },
        body: await gzipAsync(Buffer.from(JSON.stringify({ rows: [row] }))),
        signal: AbortSignal.timeout(this.opts.requestTimeoutMs),
      });
      const ok = res.ok && SyncAck.safeParse(safeJson(await res.text())).success;
      this.hooks.onBatch?.(ok ? "probe_accepted" : "probe_refused", 1);
      return ok ? "accepted" : "refused";
    } catch {
      this.hooks.onBatch?.("probe_failed", 1);
      return "refused";
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
