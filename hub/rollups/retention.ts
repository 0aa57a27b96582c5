// Retention per level (issue 4 §4; defaults ARCHITECTURE.md §4), purged in small time slices so ingest
// never waits behind a long delete. Raw readings and 1-minute rows are only deleted once rolled up.
import type { HubDb } from "../db/open-db.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { RollupService } from "./rollup-service.js";
import type { GroupCommitter } from "../ingest/group-committer.js";

export interface RetentionOptions {
  rawMs: number;
  minuteMs: number;
  hourMs: number;
  dayMs: number;
  intervalMs: number;
  /** Most rows one delete removes (keeps each transaction short). */
  sliceRows: number;
}

export const DAY = 86_400_000;

export class RetentionService {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  deleted = { raw: 0, "1m": 0, "1h": 0, "1d": 0 };

  constructor(
    private readonly db: HubDb,
    private readonly committer: GroupCommitter,
    private readonly rollups: RollupService,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: RetentionOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.run(), this.opts.intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const now = this.clock.now();
      this.deleted.raw += await this.purgeByTime("readings", "ts", Math.min(now - this.opts.rawMs, this.rollups.until1m));
      this.deleted["1m"] += await this.purgeByTime("rollup_1m", "bucket", Math.min(now - this.opts.minuteMs, this.rollups.until1h, this.rollups.until1d));
      // Hourly and daily tables are keyed by device first; they are small, one statement each.
      const [h, d] = await this.committer.write([
        { sql: "DELETE FROM rollup_1h WHERE bucket < ?", params: [now - this.opts.hourMs] },
        { sql: "DELETE FROM rollup_1d WHERE bucket < ?", params: [now - this.opts.dayMs] },
      ]);
      this.deleted["1h"] += h!;
      this.deleted["1d"] += d!;
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "retention purge failed; will retry");
    } finally {
      this.running = false;
    }
  }

  /** Deletes rows older than `cutoff` oldest-first, at most `sliceRows` per transaction (the key is time-first). */
  private async purgeByTime(table: string, col: string, cutoff: number): Promise<number> {
    const nth = this.db.sqlite.prepare(`SELECT ${col} AS t FROM ${table} WHERE ${col} < ? ORDER BY ${col} LIMIT 1 OFFSET ?`);
    const any = this.db.sqlite.prepare(`SELECT 1 FROM ${table} WHERE ${col} < ? LIMIT 1`);
    let total = 0;
    while (any.get(cutoff)) {
      const bound = (nth.get(cutoff, this.opts.sliceRows) as { t: number } | undefined)?.t ?? cutoff;
      const [n] = await this.committer.write({ sql: `DELETE FROM ${table} WHERE ${col} < ?`, params: [bound] }, { now: true });
      total += n!;
      if (n === 0 && bound === cutoff) break;
      if (n === 0) {
        // More than sliceRows rows share the oldest timestamp: take that timestamp whole.
        const [m] = await this.committer.write({ sql: `DELETE FROM ${table} WHERE ${col} <= ?`, params: [bound] }, { now: true });
        total += m!;
      }
    }
    return total;
  }
}
