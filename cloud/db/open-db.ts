// Opens the cloud's metadata database: embedded PGlite in the data dir by default, a real PostgreSQL when
// CLOUD_DATABASE_URL is set (ARCHITECTURE §3). The same drizzle schema and migrations serve both.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import pg from "pg";
import type { Logger } from "../../shared/logger.js";
import * as schema from "./schema.js";

export type CloudOrm = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface CloudDb {
  orm: CloudOrm;
  backend: "pglite" | "postgres";
  /** Round trip to the database; throws when it is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations", import.meta.url));
/** Serializes migrations when several cloud processes start against one PostgreSQL at once. */
const MIGRATION_LOCK = 0x534d504c; // "SMPL"

export async function openCloudDb(opts: { dataDir: string; databaseUrl: string | null }, log: Logger): Promise<CloudDb> {
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl, log);
  return openPglite(join(opts.dataDir, "pglite"), log);
}

async function openPglite(dir: string, log: Logger): Promise<CloudDb> {
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const client = new PGlite(dir);
  await client.waitReady;
  const orm = drizzlePglite(client, { schema });
  await migratePglite(orm, { migrationsFolder: MIGRATIONS_DIR });
  log.info({ dir, ms: Date.now() - started }, "embedded database (PGlite) ready");
  let closed = false;
  return {
    orm: orm as unknown as CloudOrm,
    backend: "pglite",
    async ping() {
      await client.query("SELECT 1");
    },
    async close() {
      if (closed) return;
      closed = true;
      await client.close();
    },
  };
}

async function openPostgres(url: string, log: Logger): Promise<CloudDb> {
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on("error", (err) => log.warn({ err: err.message }, "idle database connection failed"));
  const orm = drizzlePg(pool, { schema });
  const lock = await pool.connect();
  try {
    await lock.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await migratePg(orm, { migrationsFolder: MIGRATIONS_DIR });
  } finally {
    await lock.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
    lock.release();
  }
  log.info({ host: new URL(url).host }, "PostgreSQL ready");
  let closed = false;
  return {
    orm: orm as unknown as CloudOrm,
    backend: "postgres",
    async ping() {
      await orm.execute(sql`SELECT 1`);
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
