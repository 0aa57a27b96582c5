// Reference line for the autonomy disk figure: the same readings into the hub's own schema (its
// migrations, WAL, synchronous=FULL — hub/db/open-db.ts) but one transaction per reading, as a hub
// without group commit would write them. In its own process so /proc/self/io counts only these writes.
// Rows go in as fast as the disk allows (a per-row commit costs the same bytes at any rate); the rate
// reached is reported too: below 1,000/s it could not even keep up with 1,000 plugs × 1 Hz.
import { readFileSync } from "node:fs";
import { openForPreload, loadW } from "./autonomy-history.js";

const dir = process.env.BENCH_DATA_DIR!;
const readings = Number(process.env.BENCH_READINGS ?? 3000);
const devices = Number(process.env.BENCH_DEVICES ?? 1000);

function io(): { write_bytes: number; wchar: number } {
  const out: Record<string, number> = {};
  for (const line of readFileSync("/proc/self/io", "utf8").split("\n")) {
    const [k, v] = line.split(":");
    if (k && v) out[k.trim()] = Number(v.trim());
  }
  return out as { write_bytes: number; wchar: number };
}

const hub = openForPreload(dir);
const db = hub.sqlite;
const ins = db.prepare("INSERT INTO readings (ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh) VALUES (?, ?, ?, ?, ?, 1, ?)");
// Warm up: the first pages of a fresh database cost more than steady state.
const t0 = Date.now() - readings - 10_000;
for (let i = 0; i < 200; i++) ins.run(t0 - 1000 + i, (i % devices) + 1, 600, 2300, 260, 1000 + i);
const io0 = io();
const started = performance.now();
for (let i = 0; i < readings; i++) {
  const d = (i % devices) + 1;
  const p = loadW(d) * 10;
  ins.run(t0 + i, d, p, 2300 + (i % 30), Math.round((p / 2300) * 1000), 1_000_000 + i); // autocommit: one transaction, one fsync
}
const elapsedMs = performance.now() - started;
const io1 = io();
hub.close();
process.send?.({ type: "result", readings, elapsedMs, writeBytes: io1.write_bytes - io0.write_bytes, wchar: io1.wchar - io0.wchar });
setTimeout(() => process.exit(0), 100);
