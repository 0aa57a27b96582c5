// Bounded storage (issue 4 §7, RELIABILITY F9): the database plus its WAL stay within a budget, and the
// disk keeps a reserve. When either is exhausted, readings are refused before they are acknowledged (the
// plug keeps them and resends), reads keep working, /health and an alert say so, and ingest resumes by
// itself once retention (or the user) frees space.
//
// "Disk full" is SQLite failing a commit with SQLITE_FULL (the file system is full, or the database is at
// max_page_count). Ingest stays refused while that error is the committer's last word, and once there is
// room again (free disk above the reserve and free pages, RESUME_ROOM_BYTES at least) it is let through.
// Before, with ingest refused, only some other write that happened to succeed (a device-state flush when a
// plug reconnected) cleared the error; and a reserve crossed on the way hid "disk full" from /health.
import { statSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import type { HubDb } from "./open-db.js";
import type { Logger } from "../../shared/logger.js";
import type { AlertService } from "../alerts/alert-service.js";
import type { GroupCommitter } from "../ingest/group-committer.js";

/** Room the database must have again (free pages, bytes) before ingest resumes after SQLITE_FULL. */
const RESUME_ROOM_BYTES = 1024 * 1024;

export interface StorageOptions {
  budgetBytes: number;
  /** Free space the disk must keep, bytes. */
  reserveBytes: number;
  intervalMs: number;
}

export class StorageGuard {
  full = false;
  usedBytes = 0;
  freeBytes = 0;
  /** Bytes the database can still grow by: the smaller of free disk and free pages under max_page_count. */
  roomBytes = 0;
  reason: string | null = null;
  /** The SQLITE_FULL error ingest was resumed after: only a newer one means "full" again. */
  private handledError: Error | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: HubDb,
    private readonly committer: GroupCommitter,
    private readonly alerts: AlertService,
    private readonly log: Logger,
    private readonly opts: StorageOptions,
  ) {}

  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), this.opts.intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Pages in use (not the file size: deleted rows free pages for reuse) plus the WAL. */
  check(): void {
    this.measure();
    // Over budget: a WAL that has grown since its last checkpoint may be most of it; truncate it first.
    if (this.usedBytes > 0.95 * this.opts.budgetBytes) {
      try {
        this.db.sqlite.pragma("wal_checkpoint(TRUNCATE)");
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "checkpoint failed");
      }
      this.measure();
    }
    this.decide();
  }

  private measure(): void {
    const pageSize = this.db.sqlite.pragma("page_size", { simple: true }) as number;
    const pages = this.db.sqlite.pragma("page_count", { simple: true }) as number;
    const free = this.db.sqlite.pragma("freelist_count", { simple: true }) as number;
    let wal = 0;
    try {
      wal = statSync(`${this.db.path}-wal`).size;
    } catch {
      /* no WAL yet */
    }
    this.usedBytes = (pages - free) * pageSize + wal;
    try {
      const fs = statfsSync(dirname(this.db.path));
      this.freeBytes = fs.bavail * fs.bsize;
    } catch {
      this.freeBytes = Number.POSITIVE_INFINITY;
    }
    const maxPages = this.db.sqlite.pragma("max_page_count", { simple: true }) as number;
    this.roomBytes = Math.min(this.freeBytes, (maxPages - pages + free) * pageSize);
  }

  private decide(): void {
    const err = this.committer.lastError;
    let commitFull = (err as { code?: string } | null)?.code === "SQLITE_FULL" && err !== this.handledError;
    // Hysteresis: resume below 95 % of the budget, so ingest does not flap at the edge.
    const overBudget = this.usedBytes > (this.full ? 0.95 : 1) * this.opts.budgetBytes;
    const diskLow = this.freeBytes < this.opts.reserveBytes;
    if (commitFull && this.full && !overBudget && !diskLow && this.roomBytes >= RESUME_ROOM_BYTES) {
      // Room again: let ingest try. Should it fail anew, that is a new error and "full" again.
      this.handledError = err;
      commitFull = false;
    }
    // A commit that failed is the hard fact; the budget and the reserve are how we keep it from happening.
    const reason = commitFull ? "disk full" : overBudget ? "database budget exceeded" : diskLow ? "disk almost full" : null;
    if (reason && !this.full) {
      this.full = true;
      this.reason = reason;
      this.committer.refuseIngest = reason;
      this.log.error({ usedBytes: this.usedBytes, budgetBytes: this.opts.budgetBytes, freeBytes: this.freeBytes, roomBytes: this.roomBytes, reason }, "storage full; refusing readings");
      this.alerts.raise({ deviceId: null, kind: "storage", message: `storage full: ${reason}; readings are refused until space is freed`, details: { used_bytes: this.usedBytes, budget_bytes: this.opts.budgetBytes, free_bytes: this.freeBytes } });
    } else if (reason && reason !== this.reason) {
      this.reason = reason; // still full, for another reason now (the reserve was crossed, then a commit failed)
      this.committer.refuseIngest = reason;
    } else if (!reason && this.full) {
      this.full = false;
      this.reason = null;
      this.committer.refuseIngest = null;
      this.log.info({ usedBytes: this.usedBytes, roomBytes: this.roomBytes }, "storage available again; accepting readings");
      this.alerts.resolve(null, "storage");
    }
  }
}
