// `npm run hub -- backup FILE`: a consistent online copy through SQLite's backup API, safe while the hub
// runs (WAL readers do not block the writer). The copy is checked with integrity_check before it is kept.
import Database from "better-sqlite3";
import { existsSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";

export async function backupHubDb(dataDir: string, target: string): Promise<{ bytes: number; readings: number }> {
  const source = join(dataDir, "hub.sqlite");
  if (!existsSync(source)) throw new Error(`no hub database at ${source} (is HUB_DATA_DIR right?)`);
  if (existsSync(target)) throw new Error(`${target} exists; refusing to overwrite a backup`);
  const db = new Database(source, { readonly: true, fileMustExist: true });
  const partial = `${target}.partial`;
  try {
    const { totalPages } = await db.backup(partial);
    const copy = new Database(partial, { readonly: true });
    const integrity = (copy.pragma("integrity_check", { simple: true }) as string) ?? "";
    const readings = (copy.prepare("SELECT count(*) AS n FROM readings").get() as { n: number }).n;
    const pageSize = copy.pragma("page_size", { simple: true }) as number;
    copy.close();
    if (integrity !== "ok") throw new Error(`backup failed its integrity check: ${integrity}`);
    renameSync(partial, target);
    return { bytes: totalPages * pageSize, readings };
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  } finally {
    db.close();
  }
}
