import Database from "better-sqlite3";
import { drizzle, type BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../../shared/logger.js";
import * as schema from "./schema.js";

export type HubDrizzle = BetterSQLite3Database<typeof schema>;

export interface HubDb {
  sqlite: Database.Database;
  orm: HubDrizzle;
  path: string;
  /** The result of `PRAGMA integrity_check` when the previous run ended uncleanly, else null. */
  integrityAfterCrash: string | null;
  close(): void;
}

const MIGRATIONS = fileURLToPath(new URL("./migrations", import.meta.url));

/**
 * Opens (creating) the hub database: WAL, synchronous=FULL asserted (RELIABILITY fact 2: better-sqlite3
 * reopens WAL databases at NORMAL, under which a committed transaction can roll back on power loss),
 * migrations applied, and an integrity check when the previous run did not close cleanly.
 */
export function openHubDb(dataDir: string, log: Logger, opts: { maxPageCount?: number } = {}): HubDb {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, "hub.sqlite");
  const sqlite = new Database(path);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = FULL");
  const sync = sqlite.pragma("synchronous", { simple: true });
  if (sync !== 2) {
    sqlite.close();
    throw new Error(`SQLite refused synchronous=FULL (got ${String(sync)}); refusing to run without durable commits`);
  }
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("busy_timeout = 5000");
  // Keep the WAL small on an SD card: truncate it back to 4 MiB after each checkpoint.
  sqlite.pragma("journal_size_limit = 4194304");
  if (opts.maxPageCount) sqlite.pragma(`max_page_count = ${opts.maxPageCount}`);

  const orm = drizzle(sqlite, { schema });
  migrate(orm, { migrationsFolder: MIGRATIONS });

  const cleanRow = sqlite.prepare("SELECT value FROM meta WHERE key = 'clean_shutdown'").get() as { value: string } | undefined;
  let integrityAfterCrash: string | null = null;
  if (cleanRow && cleanRow.value === "0") {
    const rows = sqlite.pragma("integrity_check") as { integrity_check: string }[];
    integrityAfterCrash = rows.map((r) => r.integrity_check).join("; ");
    if (integrityAfterCrash === "ok") log.warn({ integrity: integrityAfterCrash }, "previous run ended uncleanly; database integrity ok");
    else log.error({ integrity: integrityAfterCrash }, "previous run ended uncleanly; database integrity check FAILED (database kept as is)");
  }
  const setClean = sqlite.prepare("INSERT INTO meta(key, value) VALUES ('clean_shutdown', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  setClean.run("0");

  let closed = false;
  return {
    sqlite,
    orm,
    path,
    integrityAfterCrash,
    close() {
      if (closed) return;
      closed = true;
      try {
        sqlite.pragma("wal_checkpoint(TRUNCATE)");
        setClean.run("1");
      } catch (err) {
        log.error({ err }, "could not mark clean shutdown");
      }
      sqlite.close();
    },
  };
}

export function getMeta(db: HubDb, key: string): string | undefined {
  const row = db.sqlite.prepare("SELECT value FROM meta WHERE key = ?").get(key) as { value: string } | undefined;
  return row?.value;
}

export function setMeta(db: HubDb, key: string, value: string): void {
  db.sqlite.prepare("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(key, value);
}
