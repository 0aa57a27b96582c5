// A small client for InfluxDB's v1 HTTP API (`/ping`, `/write` line protocol, `/query` InfluxQL): the one API
// InfluxDB 1.x, 2.x (v1 compatibility endpoints) and 3.x all serve (ARCHITECTURE §3). Writes are retried on
// 5xx, 429, network errors and timeouts with full-jitter backoff; when InfluxDB stays unreachable callers get
// StorageUnavailableError, which the API answers as problem+json 503.
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../../shared/logger.js";
import { StorageUnavailableError } from "../../shared/problem.js";

export interface InfluxOptions {
  url: string;
  user: string | null;
  password: string | null;
  /** InfluxDB 2.x/3.x token, sent as `Authorization: Token …`. */
  token: string | null;
  timeoutMs: number;
  /** Attempts per write (1 = no retry). */
  writeAttempts?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export interface InfluxSeries {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

export interface InfluxStats {
  onWrite?(outcome: "ok" | "retried" | "failed", lines: number): void;
  onRetry?(): void;
}

/** An InfluxDB answer we cannot use (bad query, bad line protocol): a bug or bad data, not an outage. */
export class InfluxRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_LINES_PER_WRITE = 5000; // InfluxData's recommended batch size

export class InfluxV1 {
  private readonly headers: Record<string, string> = {};
  lastError: string | null = null;

  constructor(
    private readonly o: InfluxOptions,
    private readonly log: Logger,
    private readonly stats: InfluxStats = {},
  ) {
    if (o.token) this.headers.authorization = `Token ${o.token}`;
    else if (o.user !== null && o.password !== null) this.headers.authorization = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString("base64")}`;
  }

  private async request(path: string, init: { method: "GET" | "POST"; body?: string; contentType?: string }): Promise<{ status: number; text: string }> {
    let res: Response;
    try {
      res = await fetch(this.o.url + path, {
        method: init.method,
        headers: { ...this.headers, ...(init.contentType ? { "content-type": init.contentType } : {}) },
        body: init.body,
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      throw new TransientError(e.name === "TimeoutError" ? `timed out after ${this.o.timeoutMs} ms` : (e.cause?.code ?? e.message));
    }
    const text = await res.text().catch(() => "");
    if (res.status >= 500 || res.status === 429) throw new TransientError(`HTTP ${res.status} ${text.slice(0, 200)}`);
    return { status: res.status, text };
  }

  private unavailable(why: string): StorageUnavailableError {
    this.lastError = why;
    this.log.warn({ err: why }, "InfluxDB unavailable");
    return new StorageUnavailableError("the time-series store (InfluxDB) is unavailable; try again later");
  }

  async ping(): Promise<void> {
    try {
      const r = await this.request("/ping", { method: "GET" });
      if (r.status !== 204 && r.status !== 200) throw new TransientError(`ping answered ${r.status}`);
      this.lastError = null;
    } catch (err) {
      if (err instanceof TransientError) throw this.unavailable(err.message);
      throw err;
    }
  }

  /** Runs InfluxQL; `SELECT`/`SHOW` as GET, anything else as POST (as the v1 API requires). Times in ms. */
  async query(db: string | null, q: string): Promise<InfluxSeries[][]> {
    const params = new URLSearchParams({ q, epoch: "ms" });
    if (db) params.set("db", db);
    const readOnly = /^\s*(select|show)\b/i.test(q);
    let r: { status: number; text: string };
    try {
      r = readOnly
        ? await this.request(`/query?${params}`, { method: "GET" })
        : await this.request("/query", { method: "POST", body: params.toString(), contentType: "application/x-www-form-urlencoded" });
    } catch (err) {
      if (err instanceof TransientError) throw this.unavailable(err.message);
      throw err;
    }
    let body: { results?: { series?: InfluxSeries[]; error?: string }[]; error?: string };
    try {
      body = JSON.parse(r.text) as typeof body;
    } catch {
      throw new InfluxRequestError(r.status, `InfluxDB answered ${r.status} with a non-JSON body`);
    }
    if (r.status >= 400 || body.error) throw new InfluxRequestError(r.status, body.error ?? `HTTP ${r.status}`);
    const out: InfluxSeries[][] = [];
    for (const res of body.results ?? []) {
      if (res.error) throw new InfluxRequestError(r.status, res.error);
      out.push(res.series ?? []);
    }
    this.lastError = null;
    return out;
  }

  /**
   * Writes line protocol in batches of ≤ 5000 lines, each retried until it lands or attempts run out.
   * Resolves with the number of points InfluxDB dropped as outside their retention policy (not an error:
   * a hub back from a long outage may send minutes older than the 1m level keeps).
   */
  async write(db: string, lines: string[]): Promise<{ droppedOld: number }> {
    let droppedOld = 0;
    for (let i = 0; i < lines.length; i += MAX_LINES_PER_WRITE) {
      const chunk = lines.slice(i, i + MAX_LINES_PER_WRITE);
      droppedOld += await this.writeChunk(db, chunk.join("\n"), chunk.length);
    }
    return { droppedOld };
  }

  private async writeChunk(db: string, body: string, n: number): Promise<number> {
    const attempts = this.o.writeAttempts ?? 4;
    const base = this.o.retryBaseMs ?? 100;
    const cap = this.o.retryMaxMs ?? 2000;
    const path = `/write?${new URLSearchParams({ db, precision: "ms" })}`;
    let lastErr = "";
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const r = await this.request(path, { method: "POST", body, contentType: "text/plain; charset=utf-8" });
        if (r.status === 204 || r.status === 200) {
          this.lastError = null;
          this.stats.onWrite?.(attempt === 1 ? "ok" : "retried", n);
          return 0;
        }
        const m = /points beyond retention policy dropped=(\d+)/.exec(r.text);
        if (m && !/unable to parse|field type conflict/.test(r.text)) {
          this.stats.onWrite?.("ok", n);
          return Number(m[1]);
        }
        this.stats.onWrite?.("failed", n);
        throw new InfluxRequestError(r.status, `InfluxDB refused the write: ${r.text.slice(0, 300)}`);
      } catch (err) {
        if (!(err instanceof TransientError)) throw err;
        lastErr = err.message;
        if (attempt === attempts) break;
        this.stats.onRetry?.();
        // Full jitter (AWS architecture blog): spreads retries of many writers.
        await sleep(Math.random() * Math.min(cap, base * 2 ** (attempt - 1)));
      }
    }
    this.stats.onWrite?.("failed", n);
    throw this.unavailable(lastErr);
  }
}

class TransientError extends Error {}
