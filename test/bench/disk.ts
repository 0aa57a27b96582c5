// Figure: disk. 1,000 plugs × 1 Hz for DISK_MS into a fresh hub. Bytes written per stored reading come
// from /proc/<hub pid>/io over the window (write_bytes: what the hub caused to be sent to storage,
// counted when pages are dirtied — WAL frames, checkpoints, the periodic device-state flush; wchar as the
// fallback where the kernel does not count block I/O). Bytes on disk per reading come from SQLite's dbstat
// over the readings table after the hub has stopped (checkpointed). The reference line is the naive
// schema in disk-baseline-child.ts, fed the same number of readings with the same readings per commit.
import Database from "better-sqlite3";
import { statSync } from "node:fs";
import { join } from "node:path";
import { LoadFleet, startHubTarget } from "./targets.js";
import { forkTs, readIo, sleep, tempDir } from "./procs.js";
import { metricSum } from "./stats.js";
import { buildTelemetry } from "../sim/native-payloads.js";

export const DISK_PLUGS = 1000;
export const DISK_HZ = 1;
export const DISK_MS = 45_000;

export interface DiskResult {
  stored: number;
  commits: number;
  readingsPerCommit: number;
  writeBytes: number;
  wchar: number;
  writtenPerReading: number;
  writtenSource: "write_bytes" | "wchar";
  wcharPerReading: number;
  rowsInTable: number;
  tableBytes: number;
  onDiskPerReading: number;
  fileBytes: number;
  payloadBytesPerReading: number;
  baseline: { writtenPerReading: number; wcharPerReading: number; onDiskPerReading: number; tableBytes: number; indexBytes: number; readings: number; batch: number };
}

export async function measureDisk(env: Record<string, string>, log: (s: string) => void): Promise<DiskResult> {
  const t = await startHubTarget({ plugs: DISK_PLUGS, fastHash: true, env });
  const { fleet, connected } = await LoadFleet.start({ workers: 2, port: t.mqttPort, plugs: t.plugs, client: "raw" });
  log(`    hub pid ${t.pid}: ${connected} plugs connected; ${DISK_PLUGS} × ${DISK_HZ} Hz for ${DISK_MS / 1000} s`);
  await sleep(2000);
  const m0 = await t.metrics!();
  const io0 = readIo(t.pid)!;
  const r = await fleet.run(DISK_PLUGS * DISK_HZ, DISK_MS, 2000);
  await sleep(200);
  const io1 = readIo(t.pid)!;
  const m1 = await t.metrics!();
  const stored = metricSum(m1, "hub_readings_stored_total") - metricSum(m0, "hub_readings_stored_total");
  const commits = metricSum(m1, "hub_ingest_commit_batch_size_count") - metricSum(m0, "hub_ingest_commit_batch_size_count");
  const writeBytes = io1.write_bytes - io0.write_bytes;
  const wchar = io1.wchar - io0.wchar;
  log(`    sent ${r.sent} acked ${r.acked} stored ${stored} in ${commits} commits; write_bytes ${writeBytes} wchar ${wchar}`);
  await fleet.stop();
  await t.stop();

  const dbPath = join(t.dataDir!, "hub.sqlite");
  const db = new Database(dbPath, { readonly: true });
  const rowsInTable = (db.prepare("SELECT COUNT(*) AS n FROM readings").get() as { n: number }).n;
  const tableBytes = (db.prepare("SELECT SUM(pgsize) AS b FROM dbstat WHERE name = 'readings'").get() as { b: number }).b;
  db.close();
  const fileBytes = statSync(dbPath).size;

  const readingsPerCommit = stored / Math.max(1, commits);
  const child = forkTs("disk-baseline", "disk-baseline-child.ts", {
    BENCH_DATA_DIR: tempDir("bench-naive-"),
    BENCH_READINGS: String(stored),
    BENCH_BATCH: String(readingsPerCommit),
    BENCH_DEVICES: String(DISK_PLUGS),
  });
  const b = (await child.waitFor("result", 180_000)) as unknown as { readings: number; batch: number; writeBytes: number; wchar: number; tableBytes: number; indexBytes: number };
  await child.stop(2000);
  const useWchar = writeBytes === 0;
  // One message's payload as plugs send it: what keeping the raw JSON would take, before any overhead.
  const payloadBytesPerReading = Buffer.byteLength(JSON.stringify(buildTelemetry({ power: 1234.5, voltage: 230.4, relayOn: true, energyWh: 4321.123 }, Date.now())));
  return {
    stored,
    commits,
    readingsPerCommit,
    writeBytes,
    wchar,
    writtenPerReading: (useWchar ? wchar : writeBytes) / stored,
    writtenSource: useWchar ? "wchar" : "write_bytes",
    wcharPerReading: wchar / stored,
    rowsInTable,
    tableBytes,
    onDiskPerReading: tableBytes / rowsInTable,
    fileBytes,
    payloadBytesPerReading,
    baseline: {
      writtenPerReading: (useWchar ? b.wchar : b.writeBytes) / b.readings,
      wcharPerReading: b.wchar / b.readings,
      onDiskPerReading: (b.tableBytes + b.indexBytes) / b.readings,
      tableBytes: b.tableBytes,
      indexBytes: b.indexBytes,
      readings: b.readings,
      batch: b.batch,
    },
  };
}
