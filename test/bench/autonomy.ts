// Issue 4 figures, each against a reference measured in the same run:
//   (a) bytes written to disk per stored raw reading at 1,000 plugs × 1 Hz with rollups and retention
//       purges running (/proc/<hub pid>/io write_bytes ÷ readings stored; goal ≤ 120 B), against the
//       same readings written one transaction each into the hub's schema (goal ≥ 20× fewer);
//   (b) database size per plug-day of raw readings at 1 Hz (goal ≤ 3 MB) and per plug-year of rollups,
//       from dbstat bytes per row × rows per day/year;
//   (c) GET /devices/{id}/telemetry p99 for 1 day at 1 m, 30 days at 1 h, 1 year at 1 d, with 50 plugs of
//       history (goal ≤ 30 ms each), against the same SQL run straight on the database;
//   (d) schedule accuracy: scheduled instant → the plug's confirmed state, p99 ≤ 1.5 s.
//
//   npx tsx test/bench/autonomy.ts [--quick]   → bench-results/autonomy.md + autonomy.json
//
// The hub runs as it ships: `npm run build`, `node dist/hub/main.mjs`, HUB_* variables only. Its data
// directory is prepared before it starts through the hub's own schema (autonomy-history.ts).
import Database from "better-sqlite3";
import WebSocket from "ws";
import { mkdirSync, writeFileSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CpuAudit, ROOT, forkTs, killChildren, readIo, sleep, tempDir, type CpuShare } from "./procs.js";
import { summarize, type Summary } from "./stats.js";
import { fmtInt, fmtMs, machineInfo, markdownReport, type Row } from "./report.js";
import { LoadFleet } from "./targets.js";
import { buildHub, dbFileBytes, startDistHub } from "./families-hub.js";
import { DAY, dayBuckets, hourBuckets, insertDevices, insertRaw, insertRollups, minuteBuckets, openForPreload, setWatermarks, tableSizes } from "./autonomy-history.js";
import { MB_DEC, ROWS, minuteInstants, nearAny, onceAt, retainedFootprint, scheduleDelays, type Expected, type RelayEvent } from "./autonomy-math.js";
import { pairingCodeFor } from "../sim/cli.js";
import { SCRYPT_PLUG } from "../../hub/devices/secrets.js";
import { startOfLocalDay } from "../../shared/time-zone.js";
import { clientSocketsNoDelay } from "./no-delay.js";

clientSocketsNoDelay();

const TZ = "UTC";
const MINUTE = 60_000;
const HOUR = 3_600_000;
/** scrypt cost stored for the 1,000 disk-figure plugs: connecting them at the production cost would take ~1 min of CPU and is not what is measured. */
const CHEAP_HASH = { N: 2 ** 10, r: 8, p: 1 };
/** 1,000 plugs from 127.0.0.1 at once (as the hub-core capacity and disk figures). */
const DISK_ENV = { HUB_MQTT_MAX_CONNECTIONS: "1100", HUB_MQTT_CONNECT_RATE: "1000", HUB_MQTT_MSG_RATE: "100", HUB_MQTT_GLOBAL_MSG_RATE: "1000000" };
const OFF_MINUTE_PLUGS = 10;
const RETENTION_FIRST_RUN_MS = 60_000; // hub.ts: RetentionService intervalMs

interface Plan {
  diskPlugs: number;
  diskWindowMs: number;
  baselineRows: number;
  historyPlugs: number;
  scheduleMinutes: number;
  queriesPerShape: number;
  warmupQueries: number;
}
const FULL: Plan = { diskPlugs: 1000, diskWindowMs: 75_000, baselineRows: 3000, historyPlugs: 50, scheduleMinutes: 3, queriesPerShape: 300, warmupQueries: 10 };
const QUICK: Plan = { diskPlugs: 1000, diskWindowMs: 20_000, baselineRows: 1000, historyPlugs: 50, scheduleMinutes: 1, queriesPerShape: 60, warmupQueries: 5 };

const COLS = "bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms";

type Shape = "day@1m" | "30d@1h" | "1y@1d";
const SHAPES: { name: Shape; spanMs: number; interval: string; sql: string; args: (dev: number, s: number, e: number) => number[] }[] = [
  { name: "day@1m", spanMs: DAY, interval: "1m", sql: `SELECT ${COLS} FROM rollup_1m WHERE bucket >= ? AND bucket < ? AND device = ? ORDER BY bucket`, args: (d, s, e) => [s, e, d] },
  { name: "30d@1h", spanMs: 30 * DAY, interval: "1h", sql: `SELECT ${COLS} FROM rollup_1h WHERE device = ? AND bucket >= ? AND bucket < ? ORDER BY bucket`, args: (d, s, e) => [d, s, e] },
  { name: "1y@1d", spanMs: 365 * DAY, interval: "1d", sql: `SELECT ${COLS} FROM rollup_1d WHERE device = ? AND bucket >= ? AND bucket < ? ORDER BY bucket`, args: (d, s, e) => [d, s, e] },
];

interface HistoryResult {
  preload: { seconds: number; rows: Record<string, number>; dbBytes: number };
  telemetry: Record<Shape, { api: Summary; sql: Summary; points: Summary; failed: number }>;
  schedule: { expected: number; delays: Summary; missed: number; missedSample: Expected[]; hubDelays: Summary; offMinute: { at: string; expected: number; delays: Summary; missed: number } };
  rollupSizes: Record<string, { bytes: number; rows: number; perRow: number }>;
}

async function historyPhase(plan: Plan, log: (s: string) => void): Promise<HistoryResult> {
  // ---- preload: 50 paired plugs, 30 days of 1 m, a year of 1 h and 1 d rollups ----
  const t0 = performance.now();
  const dataDir = tempDir("bench-autonomy-history-");
  const pre = openForPreload(dataDir);
  const ids = Array.from({ length: plan.historyPlugs }, (_, i) => `hist-${String(i + 1).padStart(3, "0")}`);
  // Ten more plugs, without history, get one-shots at half past a minute (the API takes seconds).
  const offIds = Array.from({ length: OFF_MINUTE_PLUGS }, (_, i) => `half-${String(i + 1).padStart(3, "0")}`);
  const idx = await insertDevices(pre.sqlite, [...ids, ...offIds], (id) => pairingCodeFor(id), SCRYPT_PLUG);
  const devs = ids.map((id) => idx.get(id)!);
  const now = Date.now();
  const m0 = Math.floor(now / MINUTE) * MINUTE;
  const h0 = Math.floor(now / HOUR) * HOUR;
  const d0 = startOfLocalDay(now, TZ);
  const rows: Record<string, number> = {};
  rows.rollup_1m = insertRollups(pre.sqlite, "rollup_1m", devs, minuteBuckets(now - 30 * DAY + HOUR, m0), () => MINUTE);
  rows.rollup_1h = insertRollups(pre.sqlite, "rollup_1h", devs, hourBuckets(now - 365 * DAY + DAY, h0), () => HOUR);
  rows.rollup_1d = insertRollups(pre.sqlite, "rollup_1d", devs, dayBuckets(now - 366 * DAY, now, TZ), () => DAY);
  setWatermarks(pre.sqlite, { m: m0, h: h0, d: d0 });
  const rollupSizes = tableSizes(pre.sqlite, ["rollup_1m", "rollup_1h", "rollup_1d"]);
  pre.close();
  const preload = { seconds: (performance.now() - t0) / 1000, rows, dbBytes: dbFileBytes(dataDir) };
  log(`    preloaded ${Object.entries(rows).map(([k, v]) => `${fmtInt(v)} ${k}`).join(", ")} for ${plan.historyPlugs} plugs in ${preload.seconds.toFixed(1)} s (${(preload.dbBytes / 1e6).toFixed(0)} MB)`);

  // ---- the hub, its plugs (native, 1 Hz, separate process), a WebSocket watching relay changes ----
  const hub = await startDistHub({ dataDir, env: { HUB_TIMEZONE: TZ } });
  const plugs = forkTs("plugs", "families-plugs.ts");
  const events: RelayEvent[] = [];
  const hubEvents: RelayEvent[] = [];
  let ws: WebSocket | null = null;
  const ro = new Database(join(dataDir, "hub.sqlite"), { readonly: true });
  try {
    await plugs.waitFor("ready", 60_000);
    const conn = await plugs.request<{ connected: number; failed: string[] }>(
      { type: "start", family: "native", url: `mqtt://127.0.0.1:${hub.mqttPort}`, plugs: [...ids, ...offIds].map((id) => ({ deviceId: id, password: pairingCodeFor(id) })), intervalMs: 1000, staggerMs: 10 },
      120_000,
    );
    log(`    hub pid ${hub.pid}: ${conn.connected} plugs connected${conn.failed.length ? `, ${conn.failed.length} failed: ${conn.failed.slice(0, 2).join("; ")}` : ""}`);
    ws = new WebSocket(`ws://127.0.0.1:${hub.httpPort}/ws`, { headers: { authorization: `Bearer ${hub.token}` } });
    await new Promise<void>((resolve, reject) => {
      ws!.once("error", reject);
      ws!.once("open", () => ws!.send(JSON.stringify({ type: "subscribe", device_ids: "*" })));
      ws!.on("message", (data) => {
        const recvAt = Date.now();
        const m = JSON.parse(data.toString()) as { type?: string; device_id?: string; relay_state?: boolean; timestamp?: string };
        if (m.type === "subscribed") resolve();
        if (m.type === "relay" && m.device_id && typeof m.relay_state === "boolean") {
          events.push({ deviceId: m.device_id, relayOn: m.relay_state, recvAt });
          if (m.timestamp) hubEvents.push({ deviceId: m.device_id, relayOn: m.relay_state, recvAt: Date.parse(m.timestamp) });
        }
      });
    });
    await sleep(2000);

    // ---- off the minute first: one-shot "off" at the next HH:MM:30 at least 8 s away (the API takes seconds) ----
    const half = Math.ceil((Date.now() + 8000 - 30_000) / MINUTE) * MINUTE + 30_000;
    const expectedHalf: Expected[] = [];
    for (const id of offIds) {
      const r = await hub.api(`/devices/${id}/schedules`, { body: { type: "once", at: onceAt(half, TZ), action: "off", time_zone: TZ } });
      if (r.status !== 201) throw new Error(`schedule for ${id}: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
      expectedHalf.push({ deviceId: id, at: half, relayOn: false });
    }
    // ---- one-shot schedules at the next minute boundaries: off, on, off, … (the plugs start on) ----
    const instants = minuteInstants(Date.now(), plan.scheduleMinutes, 15_000);
    const expected: Expected[] = [];
    for (const id of ids) {
      for (const [j, at] of instants.entries()) {
        const action = j % 2 === 0 ? "off" : "on";
        const r = await hub.api(`/devices/${id}/schedules`, { body: { type: "once", at: onceAt(at, TZ), action, time_zone: TZ } });
        if (r.status !== 201) throw new Error(`schedule for ${id}: ${r.status} ${await r.text()}`);
        await r.arrayBuffer();
        expected.push({ deviceId: id, at, relayOn: action === "on" });
      }
    }
    log(`    ${expected.length} one-shot schedules at ${instants.map((t) => new Date(t).toISOString().slice(11, 19)).join(", ")} UTC`);

    // ---- telemetry queries until the last schedule edge has passed (paused around each edge) ----
    const samples = Object.fromEntries(SHAPES.map((s) => [s.name, { api: [] as number[], sql: [] as number[], points: [] as number[], failed: 0, n: 0 }])) as Record<Shape, { api: number[]; sql: number[]; points: number[]; failed: number; n: number }>;
    const stmts = SHAPES.map((s) => ro.prepare(s.sql));
    const halfTick = half + 30_000; // the minute tick after it
    const pauses = [...instants, halfTick];
    const endAt = Math.max(instants[instants.length - 1]!, halfTick) + 6000;
    let k = 0;
    while (Date.now() < endAt || SHAPES.some((s) => samples[s.name].n < plan.queriesPerShape + plan.warmupQueries)) {
      if (nearAny(Date.now(), pauses, 2000, 4000)) {
        await sleep(100);
        continue;
      }
      const si = k % SHAPES.length;
      const shape = SHAPES[si]!;
      const dev = Math.floor(k / SHAPES.length) % ids.length;
      k++;
      const end = Date.now();
      const start = end - shape.spanMs;
      const s = samples[shape.name];
      const q0 = performance.now();
      const res = await hub.api(`/devices/${ids[dev]}/telemetry?start=${new Date(start).toISOString()}&end=${new Date(end).toISOString()}&interval=${shape.interval}`);
      const body = (await res.json()) as { total_points?: number };
      const apiMs = performance.now() - q0;
      const q1 = performance.now();
      const direct = stmts[si]!.all(...shape.args(devs[dev]!, start, end));
      const sqlMs = performance.now() - q1;
      s.n++;
      if (res.status !== 200) s.failed++;
      else if (s.n > plan.warmupQueries) {
        s.api.push(apiMs);
        s.sql.push(sqlMs);
        s.points.push(body.total_points ?? 0);
      }
      void direct;
      await sleep(20);
    }
    const telemetry = Object.fromEntries(SHAPES.map((s) => [s.name, { api: summarize(samples[s.name].api), sql: summarize(samples[s.name].sql), points: summarize(samples[s.name].points), failed: samples[s.name].failed }])) as HistoryResult["telemetry"];
    for (const s of SHAPES) {
      const t = telemetry[s.name];
      log(`    GET telemetry ${s.name}: p50 ${fmtMs(t.api.p50)} p99 ${fmtMs(t.api.p99)} (${t.api.n} queries, ~${t.points.p50} points, ${t.failed} failed); same SQL on the database p99 ${fmtMs(t.sql.p99)}`);
    }
    await sleep(1000);
    const { delays, missed } = scheduleDelays(expected, events, 1000);
    const hubSide = scheduleDelays(expected, hubEvents, 1000);
    const halfR = scheduleDelays(expectedHalf, events, 1000);
    const schedule = {
      expected: expected.length,
      delays: summarize(delays),
      missed: missed.length,
      missedSample: missed.slice(0, 5),
      hubDelays: summarize(hubSide.delays),
      offMinute: { at: onceAt(half, TZ), expected: expectedHalf.length, delays: summarize(halfR.delays), missed: halfR.missed.length },
    };
    log(`    schedules: ${delays.length}/${expected.length} confirmed; delay p50 ${fmtMs(schedule.delays.p50)} p99 ${fmtMs(schedule.delays.p99)} max ${fmtMs(schedule.delays.max)}; ${missed.length} missed`);
    log(`    one-shots at ${schedule.offMinute.at} (seconds): ${halfR.delays.length}/${expectedHalf.length} confirmed; delay p50 ${fmtMs(schedule.offMinute.delays.p50)} max ${fmtMs(schedule.offMinute.delays.max)}; ${halfR.missed.length} missed`);
    return { preload, telemetry, schedule, rollupSizes };
  } finally {
    ws?.close();
    ro.close();
    await plugs.stop(10_000).catch(() => undefined);
    await hub.stop().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

interface DiskResult {
  stored: number;
  windowMs: number;
  writeBytes: number;
  wchar: number;
  perReading: number;
  source: "write_bytes" | "wchar";
  retentionInWindow: boolean;
  purgedRaw: number;
  purgeableRaw: number;
  purgedMinute: number;
  purgeableMinute: number;
  minuteRowsWritten: number;
  sizes: Record<string, { bytes: number; rows: number; perRow: number }>;
  fleet: { sent: number; acked: number };
  baseline: { readings: number; elapsedMs: number; writeBytes: number; wchar: number; perReading: number; rowsPerSec: number };
}

export async function diskPhase(plan: Plan, log: (s: string) => void): Promise<DiskResult> {
  const dataDir = tempDir("bench-autonomy-disk-");
  const pre = openForPreload(dataDir);
  const ids = Array.from({ length: plan.diskPlugs }, (_, i) => `disk-${String(i).padStart(4, "0")}`);
  const idx = await insertDevices(pre.sqlite, ids, (id) => pairingCodeFor(id), CHEAP_HASH);
  const devs = ids.map((id) => idx.get(id)!);
  const now = Date.now();
  // Steady state of retention: one purge run's worth of raw readings just past 7 days (60 s × 1,000 plugs)
  // and one minute of 1 m rollups just past 30 days, for the hub's first purge in the window to delete.
  const purgeableRaw = insertRaw(pre.sqlite, devs, now - 7 * DAY - 70_000, now - 7 * DAY - 10_000);
  const oldMinute = Math.floor((now - 30 * DAY - 3 * MINUTE) / MINUTE) * MINUTE;
  const purgeableMinute = insertRollups(pre.sqlite, "rollup_1m", devs, [oldMinute], () => MINUTE);
  setWatermarks(pre.sqlite, { m: Math.floor(now / MINUTE) * MINUTE, h: Math.floor(now / HOUR) * HOUR, d: startOfLocalDay(now, TZ) });
  pre.close();

  // BENCH_EXTRA_ENV (JSON): more hub environment, for test/bench/autonomy-disk.ts; unset in `npm run bench`.
  const hub = await startDistHub({ dataDir, env: { ...DISK_ENV, HUB_TIMEZONE: TZ, ...(JSON.parse(process.env.BENCH_EXTRA_ENV ?? "{}") as Record<string, string>) } });
  const hubStarted = Date.now();
  let r: DiskResult | null = null;
  try {
    const specs = ids.map((id) => ({ id, code: pairingCodeFor(id) }));
    const { fleet, connected, failed } = await LoadFleet.start({ workers: 2, port: hub.mqttPort, plugs: specs, client: "raw" });
    log(`    hub pid ${hub.pid}: ${connected} plugs connected (${failed} failed) in ${((Date.now() - hubStarted) / 1000).toFixed(1)} s; ${plan.diskPlugs} × 1 Hz for ${plan.diskWindowMs / 1000} s`);
    await sleep(2000);
    const s0 = await hub.metric("hub_readings_stored_total");
    const io0 = readIo(hub.pid)!;
    const w0 = Date.now();
    const run = await fleet.run(plan.diskPlugs, plan.diskWindowMs, 2000);
    await sleep(300);
    const io1 = readIo(hub.pid)!;
    const s1 = await hub.metric("hub_readings_stored_total");
    const w1 = Date.now();
    await fleet.stop();
    const stored = s1 - s0;
    const writeBytes = io1.write_bytes - io0.write_bytes;
    const wchar = io1.wchar - io0.wchar;
    const useWchar = writeBytes === 0;
    r = {
      stored,
      windowMs: w1 - w0,
      writeBytes,
      wchar,
      perReading: (useWchar ? wchar : writeBytes) / stored,
      source: useWchar ? "wchar" : "write_bytes",
      retentionInWindow: w0 <= hubStarted + RETENTION_FIRST_RUN_MS && w1 >= hubStarted + RETENTION_FIRST_RUN_MS + 2000,
      purgedRaw: 0,
      purgeableRaw,
      purgedMinute: 0,
      purgeableMinute,
      minuteRowsWritten: 0,
      sizes: {},
      fleet: { sent: run.sent, acked: run.acked },
      baseline: { readings: 0, elapsedMs: 0, writeBytes: 0, wchar: 0, perReading: NaN, rowsPerSec: NaN },
    };
    log(`    stored ${fmtInt(stored)} (sent ${fmtInt(run.sent)}, acked ${fmtInt(run.acked)}); write_bytes ${fmtInt(writeBytes)}, wchar ${fmtInt(wchar)} → ${r.perReading.toFixed(1)} B/reading`);
  } finally {
    await hub.stop().catch(() => undefined);
  }
  const db = new Database(join(dataDir, "hub.sqlite"), { readonly: true });
  r.purgedRaw = purgeableRaw - (db.prepare("SELECT COUNT(*) AS n FROM readings WHERE ts < ?").get(now - 7 * DAY) as { n: number }).n;
  r.purgedMinute = purgeableMinute - (db.prepare("SELECT COUNT(*) AS n FROM rollup_1m WHERE bucket = ?").get(oldMinute) as { n: number }).n;
  r.minuteRowsWritten = (db.prepare("SELECT COUNT(*) AS n FROM rollup_1m WHERE bucket >= ?").get(now - DAY) as { n: number }).n;
  r.sizes = tableSizes(db, ["readings", "rollup_1m"]);
  db.close();
  rmSync(dataDir, { recursive: true, force: true });
  log(`    retention purged ${fmtInt(r.purgedRaw)}/${fmtInt(purgeableRaw)} old raw rows and ${fmtInt(r.purgedMinute)}/${fmtInt(purgeableMinute)} old 1 m rows; the hub wrote ${fmtInt(r.minuteRowsWritten)} 1 m rollup rows`);

  // Reference: the same readings, one transaction each, into the hub's schema (own process, /proc/self/io).
  const naiveDir = tempDir("bench-autonomy-naive-");
  const child = forkTs("autonomy-baseline", "autonomy-baseline-child.ts", { BENCH_DATA_DIR: naiveDir, BENCH_READINGS: String(plan.baselineRows), BENCH_DEVICES: String(plan.diskPlugs) });
  const b = (await child.waitFor("result", 300_000)) as unknown as { readings: number; elapsedMs: number; writeBytes: number; wchar: number };
  await child.stop(2000);
  rmSync(naiveDir, { recursive: true, force: true });
  r.baseline = { ...b, perReading: (r.source === "wchar" ? b.wchar : b.writeBytes) / b.readings, rowsPerSec: b.readings / (b.elapsedMs / 1000) };
  log(`    one transaction per reading: ${r.baseline.perReading.toFixed(0)} B/reading over ${fmtInt(b.readings)} readings (${r.baseline.rowsPerSec.toFixed(0)} commits/s)`);
  return r;
}

export async function runAutonomyBench(opts: { quick?: boolean } = {}): Promise<{ markdown: string; json: unknown }> {
  const plan = opts.quick ? QUICK : FULL;
  const log = (s: string) => console.log(s);
  const started = performance.now();
  const machine = machineInfo("not used");
  log(`autonomy bench${opts.quick ? " (quick)" : ""} — ${machine.date}, nproc ${machine.nproc}, load average ${machine.loadavgAtStart}`);
  buildHub(log);
  const cpu: Record<string, CpuShare> = {};

  log("\n(c, d) telemetry queries and schedule accuracy, 50 plugs of history");
  let audit = new CpuAudit();
  const h = await historyPhase(plan, log);
  cpu.history = audit.stop();
  log(`\n(a, b) disk: ${plan.diskPlugs} plugs × 1 Hz`);
  audit = new CpuAudit();
  const d = await diskPhase(plan, log);
  cpu.disk = audit.stop();

  // ---- rows ----
  const rows: Row[] = [];
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : null);
  const fewer = ratio(d.baseline.perReading, d.perReading);
  rows.push({
    figure: `bytes written per stored raw reading, ${plan.diskPlugs} plugs × 1 Hz, rollups and retention running`,
    measured: `${d.perReading.toFixed(1)} B`,
    baseline: `one transaction per reading: ${d.baseline.perReading.toFixed(0)} B`,
    ratio: ratio(d.perReading, d.baseline.perReading),
    ratioNote: `vs per-row commits (${fewer ? fewer.toFixed(1) : "–"}× fewer)`,
    goal: "≤ 120 B and ≥ 20× fewer",
    pass: d.perReading <= 120 && fewer !== null && fewer >= 20,
    notes:
      `/proc/<hub pid>/io ${d.source} over ${(d.windowMs / 1000).toFixed(0)} s ÷ ${fmtInt(d.stored)} readings stored (wchar: ${(d.wchar / d.stored).toFixed(1)} B). ` +
      `Retention ${d.retentionInWindow ? "ran inside the window" : "did NOT run inside the window (its first run is 60 s after start; quick mode's window is shorter)"}: it purged ${fmtInt(d.purgedRaw)} of ${fmtInt(d.purgeableRaw)} raw rows older than 7 days and ${fmtInt(d.purgedMinute)} of ${fmtInt(d.purgeableMinute)} 1 m rows older than 30 days (one purge run's worth, preloaded); ` +
      `the hub wrote ${fmtInt(d.minuteRowsWritten)} 1 m rollup rows. ` +
      `Baseline: ${fmtInt(d.baseline.readings)} readings into the hub's schema (WAL, synchronous=FULL), autocommit per row, in its own process, ${d.baseline.rowsPerSec.toFixed(0)} commits/s${d.baseline.rowsPerSec < plan.diskPlugs ? " — too slow to keep up with 1,000 plugs × 1 Hz at all" : ""}.`,
  });
  const raw = d.sizes.readings!;
  const perPlugDay = raw.perRow * ROWS.rawPerDay(1);
  rows.push({
    figure: "database size per plug-day of raw readings at 1 Hz",
    measured: `${(perPlugDay / MB_DEC).toFixed(2)} MB`,
    baseline: `${raw.perRow.toFixed(1)} B/row × 86,400 rows`,
    ratio: null,
    goal: "≤ 3 MB",
    pass: perPlugDay <= 3 * MB_DEC,
    notes: `dbstat over the readings table (and any index) after the disk run: ${fmtInt(raw.bytes)} B for ${fmtInt(raw.rows)} rows written by the hub. MB = 10^6 B.`,
  });
  const rs = h.rollupSizes;
  const per = { raw: raw.perRow, m1: rs.rollup_1m!.perRow, h1: rs.rollup_1h!.perRow, d1: rs.rollup_1d!.perRow };
  const year = { m1: per.m1 * ROWS.m1PerYear, h1: per.h1 * ROWS.h1PerYear, d1: per.d1 * ROWS.d1PerYear };
  const kept = retainedFootprint(per, { raw: 7, m1: 30, h1: 365, d1: 1825 }, 1);
  rows.push({
    figure: "database size per plug-year of rollups",
    measured: `1 h + 1 d: ${((year.h1 + year.d1) / MB_DEC).toFixed(2)} MB; 1 m: ${(year.m1 / MB_DEC).toFixed(1)} MB`,
    baseline: `B/row: 1 m ${per.m1.toFixed(1)}, 1 h ${per.h1.toFixed(1)}, 1 d ${per.d1.toFixed(1)}`,
    ratio: null,
    goal: "(reported; no goal)",
    pass: null,
    notes:
      `dbstat bytes per row × rows per year (1 m 525,600; 1 h 8,760; 1 d 365). Rollup tables preloaded in the order the hub writes them (${fmtInt(rs.rollup_1m!.rows)} 1 m, ${fmtInt(rs.rollup_1h!.rows)} 1 h, ${fmtInt(rs.rollup_1d!.rows)} 1 d rows for ${plan.historyPlugs} plugs); ` +
      `1 m rows the hub itself wrote in the disk run: ${d.sizes.rollup_1m ? d.sizes.rollup_1m.perRow.toFixed(1) : "–"} B/row (incl. the preloaded purge rows). ` +
      `Per plug at the default retention (raw 7 d, 1 m 30 d, 1 h 1 y, 1 d 5 y) and 1 Hz: ${(kept.total / MB_DEC).toFixed(1)} MB (raw ${(kept.raw / MB_DEC).toFixed(1)}, 1 m ${(kept.m1 / MB_DEC).toFixed(1)}, 1 h ${(kept.h1 / MB_DEC).toFixed(2)}, 1 d ${(kept.d1 / MB_DEC).toFixed(2)}) — ` +
      `the default 256 MiB disk budget holds about ${Math.floor((256 * 1024 * 1024) / kept.total)} plugs reporting at 1 Hz.`,
  });
  for (const s of SHAPES) {
    const t = h.telemetry[s.name];
    rows.push({
      figure: `GET /devices/{id}/telemetry ${s.name === "day@1m" ? "1 day at 1 m" : s.name === "30d@1h" ? "30 days at 1 h" : "1 year at 1 d"}, p99`,
      measured: `${fmtMs(t.api.p99)} (p50 ${fmtMs(t.api.p50)})`,
      baseline: `same SQL on the database ${fmtMs(t.sql.p99)} (p50 ${fmtMs(t.sql.p50)})`,
      ratio: ratio(t.api.p99, t.sql.p99),
      ratioNote: "vs SQL",
      goal: "p99 ≤ 30 ms",
      pass: t.failed === 0 && t.api.n > 0 && t.api.p99 <= 30,
      notes: `${t.api.n} sequential queries (after ${plan.warmupQueries} warm-up) cycling over ${plan.historyPlugs} plugs, ~${t.points.p50} points each, ${t.failed} failed; max ${fmtMs(t.api.max)}. The 50 plugs report at 1 Hz meanwhile. SQL baseline: the level's SELECT with a read-only better-sqlite3 connection in the bench process (no HTTP, no unrolled tail, no JSON).`,
    });
  }
  const sd = h.schedule;
  rows.push({
    figure: "schedule accuracy: scheduled instant → plug's confirmed state, p99",
    measured: `${fmtMs(sd.delays.p99)} (p50 ${fmtMs(sd.delays.p50)}, max ${fmtMs(sd.delays.max)})`,
    baseline: `hub's own relay timestamp p99 ${fmtMs(sd.hubDelays.p99)}`,
    ratio: null,
    goal: "p99 ≤ 1.5 s, none missed",
    pass: sd.missed === 0 && sd.delays.n > 0 && sd.delays.p99 <= 1500,
    notes:
      `${sd.expected} one-shot schedules (POST /devices/{id}/schedules, type once, minute-aligned) on ${plan.historyPlugs} plugs over ${plan.scheduleMinutes} minute boundar${plan.scheduleMinutes === 1 ? "y" : "ies"}, alternating off/on; ` +
      `delay = when the bench received the hub's WebSocket \`relay\` frame (sent once the plug reported its new state) − the scheduled instant; ${sd.missed} missed${sd.missed ? ` (e.g. ${JSON.stringify(sd.missedSample[0])})` : ""}.`,
  });

  const om = sd.offMinute;
  rows.push({
    figure: "schedule accuracy, one-shots at half past a minute (`at` with seconds), p99",
    measured: `${fmtMs(om.delays.p99)} (p50 ${fmtMs(om.delays.p50)})`,
    baseline: `minute-aligned one-shots ${fmtMs(sd.delays.p99)}`,
    ratio: ratio(om.delays.p99, sd.delays.p99),
    ratioNote: "vs minute-aligned",
    goal: "p99 ≤ 1.5 s, none missed",
    pass: om.missed === 0 && om.delays.n > 0 && om.delays.p99 <= 1500,
    notes: `${om.expected} one-shot "off" schedules at ${om.at} (${TZ}) on ${OFF_MINUTE_PLUGS} more plugs; the API accepts YYYY-MM-DDTHH:MM:SS. The hub's schedule timer wakes at each minute boundary of the hub clock and at each device's next edge, so an instant between minute boundaries is enforced when it comes, not at the next minute.`,
  });

  const durationSec = (performance.now() - started) / 1000;
  const setup = [
    `Command: \`npx tsx test/bench/autonomy.ts${opts.quick ? " --quick" : ""}\`${opts.quick ? " (quick mode: shorter disk window — retention may not run in it —, fewer queries, one schedule minute)" : ""}.`,
    `Hub: \`node dist/hub/main.mjs\` from \`npm run build\`, HUB_TIMEZONE=${TZ}, HUB_SNTP_PORT=off, log level warn; disk run also ${Object.entries(DISK_ENV).map(([k, v]) => `${k}=${v}`).join(", ")} (1,000 plugs from one address); every other variable at its default (rollups every 10 s, retention every 60 s, 5,000-row purge slices).`,
    `Data prepared before each hub start through the hub's schema (hub/db/open-db.ts migrations; test/bench/autonomy-history.ts): devices as POST /devices stores them (50 history plugs with the production plug scrypt cost; the 1,000 disk plugs with a cheap cost so connecting them takes seconds, not a minute), rollup watermarks at the start of the current minute/hour/day.`,
    `Disk load: test/bench/load-worker.ts "raw" clients (2 processes), native telemetry QoS 1, 1,000 msg/s spread over 1,000 plugs. History: ${plan.historyPlugs} native simulators (test/sim) at 1 Hz in their own process; telemetry queries paused from 2 s before to 4 s after each schedule instant.`,
    `Machine CPU per phase (cores): ${Object.entries(cpu)
      .map(([k, v]) => `${k}: machine ${v.machineBusyCores}, bench ${v.benchCores}, other ${v.otherCores}`)
      .join("; ")}. "Other" is load on the shared machine that is not this bench.`,
  ];
  const markdown = markdownReport({ rows, machine, durationSec, config: setup, notes: [], skipped: [] })
    .replace("# Hub core benchmark", "# Hub autonomy benchmark (issue 4)")
    .replace("Produced by `npm run bench` (test/bench/run.ts)", `Produced by \`npx tsx test/bench/autonomy.ts${opts.quick ? " --quick" : ""}\``)
    .replace(/\n- Mosquitto: .*\n/, "\n");
  const json = { machine, quick: !!opts.quick, durationSec: Math.round(durationSec), plan, rows, disk: d, history: h, footprint: { perRow: per, perPlugDayRaw: perPlugDay, perPlugYear: year, retained: kept }, cpu };
  return { markdown, json };
}

function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const quick = process.argv.includes("--quick");
  const watchdog = setTimeout(
    () => {
      console.error("autonomy bench: hard limit reached; stopping its child processes");
      killChildren();
      process.exit(2);
    },
    (quick ? 5 : 12) * 60_000,
  );
  watchdog.unref();
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.on(sig, () => {
      killChildren();
      process.exit(130);
    });
  const { markdown, json } = await runAutonomyBench({ quick });
  const out = join(ROOT, "bench-results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "autonomy.json"), JSON.stringify(json, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n");
  writeFileSync(join(out, "autonomy.md"), markdown);
  console.log("\n" + markdown.split("## Notes per figure")[0]);
  console.log("wrote bench-results/autonomy.md and bench-results/autonomy.json");
  clearTimeout(watchdog);
  process.exit(0);
}
