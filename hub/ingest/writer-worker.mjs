// The hub's writer thread (plain JavaScript so it loads the same under tsx, vitest and the bundle).
// It owns the connection that commits readings: an fsync under synchronous=FULL takes 2 ms typically and
// 50 ms at p99 on a busy machine, and better-sqlite3 is synchronous, so on the main thread every commit
// would stall MQTT keepalives, commands and WebSockets (RELIABILITY fact 6).
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

const db = new Database(workerData.path);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
if (db.pragma("synchronous", { simple: true }) !== 2) throw new Error("SQLite refused synchronous=FULL in the writer");
db.pragma("busy_timeout = 5000");
db.pragma("journal_size_limit = 4194304");
if (workerData.maxPageCount) db.pragma(`max_page_count = ${workerData.maxPageCount}`);

const statements = new Map();
const prepared = (sql) => {
  let s = statements.get(sql);
  if (!s) statements.set(sql, (s = db.prepare(sql)));
  return s;
};

const runBatch = db.transaction((ops) => ops.map((op) => prepared(op.sql).run(...op.params).changes));

parentPort.on("message", (msg) => {
  if (msg.type === "close") {
    db.close();
    parentPort.postMessage({ type: "closed" });
    return;
  }
  try {
    const changes = runBatch(msg.ops);
    parentPort.postMessage({ type: "done", id: msg.id, changes });
  } catch (err) {
    parentPort.postMessage({ type: "done", id: msg.id, error: { message: err.message, code: err.code } });
  }
});
