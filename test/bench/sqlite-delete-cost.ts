// What retention's row deletes cost in bytes written, against dropping a whole table (an experiment behind the
// README's note on figure (a) of the autonomy bench; not part of `npm run bench`):
//
//   npx tsx test/bench/sqlite-delete-cost.ts
//
// The hub's readings schema (WITHOUT ROWID, key (ts, device)), WAL, synchronous=FULL; 1,000 devices × 200 s of
// readings; the oldest 60,000 rows deleted as retention does (slices of 5,000 and 1,000 rows), in one statement,
// or — as per-day tables would allow — by dropping a table that holds them. Bytes from /proc/self/io write_bytes,
// into the WAL and then with the checkpoint that copies the pages into the database file.
import Database from "better-sqlite3";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const DDL = (t: string) =>
  `CREATE TABLE ${t} (ts integer NOT NULL, device integer NOT NULL, power_dw integer, voltage_dv integer, current_ma integer, relay integer, counter_mwh integer, PRIMARY KEY(ts, device)) WITHOUT ROWID`;
const ROWS = 60_000;
const written = () => Number(/write_bytes: (\d+)/.exec(readFileSync("/proc/self/io", "utf8"))![1]);
const dir = mkdtempSync(join(tmpdir(), "delete-cost-"));

function fill(db: Database.Database, table: string, fromS: number, seconds: number) {
  const ins = db.prepare(`INSERT INTO ${table} VALUES (?, ?, ?, 2300, 400, 1, ?)`);
  db.transaction(() => {
    for (let s = fromS; s < fromS + seconds; s++) for (let d = 1; d <= 1000; d++) ins.run(1.7e12 + s * 1000 + (d % 7), d, 1000 + d, 123_456 + s * 30);
  })();
}

function open(name: string): Database.Database {
  const db = new Database(join(dir, name));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  return db;
}

function measure(label: string, db: Database.Database, purge: () => void) {
  db.pragma("wal_checkpoint(TRUNCATE)");
  const w0 = written();
  purge();
  const w1 = written();
  db.pragma("wal_checkpoint(TRUNCATE)");
  const w2 = written();
  console.log(`${label.padEnd(32)} ${((w1 - w0) / ROWS).toFixed(1).padStart(6)} B/row into the WAL, ${((w2 - w0) / ROWS).toFixed(1).padStart(6)} B/row with the checkpoint`);
  db.close();
}

const cutoff = 1.7e12 + 60 * 1000;
for (const slice of [5000, 1000, 0]) {
  const db = open(`rows-${slice}.db`);
  db.exec(DDL("readings"));
  fill(db, "readings", 0, 200);
  const del = db.prepare("DELETE FROM readings WHERE ts < ?");
  const nth = db.prepare("SELECT ts AS t FROM readings WHERE ts < ? ORDER BY ts LIMIT 1 OFFSET ?");
  measure(slice ? `DELETE in slices of ${slice} rows` : "DELETE in one statement", db, () => {
    if (!slice) return void del.run(cutoff);
    for (;;) {
      const bound = (nth.get(cutoff, slice) as { t: number } | undefined)?.t ?? cutoff;
      if (del.run(bound).changes === 0) break;
    }
  });
}
const db = open("tables.db");
db.exec(DDL("day_1") + ";" + DDL("day_2"));
fill(db, "day_1", 0, 60);
fill(db, "day_2", 60, 140);
measure("DROP TABLE holding the rows", db, () => db.exec("DROP TABLE day_1"));
rmSync(dir, { recursive: true, force: true });
