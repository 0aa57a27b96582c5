// Reference line for the disk figure: the schema a first version typically has — a rowid table keyed by
// an autoincrement id, the device's text id, an ISO text timestamp, REAL columns, and an index on
// (device_id, timestamp) for per-device queries — written with the hub's durability (WAL,
// synchronous=FULL) and the hub's commit cadence (the same number of readings per transaction, as
// measured on the hub). Runs in its own process so /proc/self/io counts only these writes.
import Database from "better-sqlite3";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildTelemetry, createRng, sampleVoltage } from "../sim/native-payloads.js";

const dir = process.env.BENCH_DATA_DIR!;
const readings = Number(process.env.BENCH_READINGS);
const batch = Math.max(1, Math.round(Number(process.env.BENCH_BATCH)));
const devices = Number(process.env.BENCH_DEVICES ?? 1000);

function io() {
  const out: Record<string, number> = {};
  for (const line of readFileSync("/proc/self/io", "utf8").split("\n")) {
    const [k, v] = line.split(":");
    if (k && v) out[k.trim()] = Number(v.trim());
  }
  return out;
}

const db = new Database(join(dir, "naive.sqlite"));
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec(`CREATE TABLE readings (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  voltage REAL, current REAL, power REAL, relay_state INTEGER, energy_wh REAL
);
CREATE INDEX readings_device_time ON readings (device_id, timestamp);`);
const insert = db.prepare("INSERT INTO readings (device_id, timestamp, voltage, current, power, relay_state, energy_wh) VALUES (?, ?, ?, ?, ?, ?, ?)");
const ids = Array.from({ length: devices }, (_, i) => `plug-${String(i).padStart(4, "0")}`);
const rngs = ids.map((id) => createRng(id));
const powers = rngs.map((r) => 5 + Math.round(r() * 2000));
const energy = rngs.map((r) => r() * 5000);
const t0 = Date.now() - readings; // 1,000 plugs at 1 Hz: one reading per millisecond overall
const io0 = io();
const started = performance.now();
const tx = db.transaction((from: number, to: number) => {
  for (let i = from; i < to; i++) {
    const d = i % devices;
    energy[d]! += powers[d]! / 3600;
    const p = buildTelemetry({ power: powers[d]! * (0.97 + rngs[d]!() * 0.06), voltage: sampleVoltage(rngs[d]!), relayOn: true, energyWh: energy[d]! }, t0 + i);
    insert.run(ids[d], p.timestamp, p.voltage, p.current, p.power, p.relay_state ? 1 : 0, p.energy_wh);
  }
});
for (let i = 0; i < readings; i += batch) tx(i, Math.min(readings, i + batch));
const io1 = io();
const elapsedMs = performance.now() - started;
const pages = db.prepare("SELECT name, SUM(pgsize) AS bytes FROM dbstat WHERE name IN ('readings', 'readings_device_time') GROUP BY name").all() as { name: string; bytes: number }[];
db.close();
process.send?.({
  type: "result",
  readings,
  batch,
  elapsedMs,
  writeBytes: io1.write_bytes! - io0.write_bytes!,
  wchar: io1.wchar! - io0.wchar!,
  tableBytes: pages.find((p) => p.name === "readings")?.bytes ?? 0,
  indexBytes: pages.find((p) => p.name === "readings_device_time")?.bytes ?? 0,
});
setTimeout(() => process.exit(0), 100);
