// `npm run bench`: the hub-core figures of the issue, each against a reference line measured in the same
// run, written to bench-results/hub-core.json and bench-results/hub-core.md (quoted by the README).
//
// Every server and load generator is its own process (procs.ts), so /proc/<pid> describes the hub alone.
// Traffic stays on 127.0.0.1; every load loop has a fixed duration; the whole run takes ~8–10 minutes.
// Optional: BENCH_ONLY=latency,commands,memory,disk,capacity,overload runs a subset (for iterating);
// BENCH_CHILD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" passes node flags to the hub process;
// BENCH_BASELINES=none measures the hub alone.
import { mkdirSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { CpuAudit, MOSQUITTO_BIN, ROOT, RssSampler, buildBundles, killChildren, openFileLimit, sleep, type CpuShare } from "./procs.js";
import { LoadFleet, startTarget, type Target, type TargetName } from "./targets.js";
import { findCapacity, PLUGS, STEP_MS, type CapacityResult } from "./capacity.js";
import { overloadStep, describeOverload, OVERLOAD_MS, RSS_LIMIT, type OverloadStep } from "./overload.js";
import { measureLatency, LATENCY_PLUGS, LATENCY_WINDOW_MS, type LatencyResult } from "./latency.js";
import { measureCommands, COMMANDS, type CommandResult } from "./commands.js";
import { idleNodeRss, MEMORY_LIMIT } from "./memory.js";
import { measureDisk, DISK_MS, DISK_PLUGS, type DiskResult } from "./disk.js";
import { clientSocketsNoDelay } from "./no-delay.js";
import { MB, fmtInt, fmtMB, fmtMs, machineInfo, markdownReport, type Row } from "./report.js";

clientSocketsNoDelay();

const HARD_LIMIT_MS = 15 * 60_000; // the run is bounded even if something hangs
const started = performance.now();
const only = new Set((process.env.BENCH_ONLY ?? "").split(",").filter(Boolean));
const want = (f: string) => only.size === 0 || only.has(f);
const log = (s: string) => console.log(s);
const elapsed = () => `${Math.round((performance.now() - started) / 1000)} s`;

/** Lets 1,000 plugs connect from 127.0.0.1 at once and publish up to 32 Hz each (capacity, disk). */
const CAPACITY_ENV = {
  HUB_MQTT_MAX_CONNECTIONS: "1100",
  HUB_MQTT_CONNECT_RATE: "1000",
  HUB_MQTT_MSG_RATE: "100",
  HUB_MQTT_GLOBAL_MSG_RATE: "1000000",
};
/** Overload: the shipped global budget (HUB_MQTT_GLOBAL_MSG_RATE unset → its default) is what sheds. */
const OVERLOAD_ENV = {
  HUB_MQTT_MAX_CONNECTIONS: "1100",
  HUB_MQTT_CONNECT_RATE: "1000",
  HUB_MQTT_MSG_RATE: "100000",
};

const watchdog = setTimeout(() => {
  console.error(`bench: hard limit of ${HARD_LIMIT_MS / 60_000} min reached; stopping every child process`);
  killChildren();
  process.exit(2);
}, HARD_LIMIT_MS);
watchdog.unref();
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    killChildren();
    process.exit(130);
  });
}

function mosquittoVersion(): string {
  try {
    return execFileSync(MOSQUITTO_BIN, ["-h"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n")[0]!.trim();
  } catch (e) {
    const out = (e as { stdout?: string }).stdout; // mosquitto -h exits 3 after printing its usage
    return out ? out.split("\n")[0]!.trim() : "absent";
  }
}

const machine = machineInfo(mosquittoVersion());
const hasMosquitto = machine.mosquitto !== "absent";
const skipped: string[] = [];
if (!hasMosquitto) {
  const line = `Mosquitto reference line skipped: ${MOSQUITTO_BIN} not found (apt-get install -y mosquitto)`;
  console.log(line);
  skipped.push(line);
}
const fileLimit = openFileLimit();
if (fileLimit < 4096) console.log(`warning: open-file limit is ${fileLimit}; 1,000 plugs need ~1,100 descriptors per process (ulimit -n 4096)`);
// BENCH_BASELINES=none skips the reference lines (for iterating on the hub; the figures then have no ratios).
const baselines: TargetName[] = process.env.BENCH_BASELINES === "none" ? [] : hasMosquitto ? ["aedes", "mosquitto"] : ["aedes"];

log(`hub-core bench — ${machine.date}, nproc ${machine.nproc}, node ${machine.node}, load average ${machine.loadavgAtStart}`);
const buildMs = await buildBundles();
log(`built dist/hub/main.mjs (npm run build) and dist/bench/{hub-child,aedes-child}.mjs in ${(buildMs / 1000).toFixed(1)} s`);

const cpu: Record<string, CpuShare> = {};
async function phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
  log(`\n[${elapsed()}] ${name}`);
  const audit = new CpuAudit();
  try {
    return await fn();
  } finally {
    cpu[name] = audit.stop();
    log(`    cpu: machine ${cpu[name].machineBusyCores} cores busy, bench ${cpu[name].benchCores}, other ${cpu[name].otherCores}`);
  }
}

// ---------- 100 plugs × 1 Hz: latency, command round trip, memory ----------
interface SmallSession {
  latency: LatencyResult;
  commands: CommandResult;
  rss: { max: number; last: number };
}
const small: Partial<Record<TargetName, SmallSession>> = {};
let idleNode: number | null = null;
if (want("latency") || want("commands") || want("memory")) {
  await phase("latency, command round trip and memory at 100 plugs × 1 Hz (plug simulator, production scrypt cost)", async () => {
    for (const name of ["hub", ...baselines] as TargetName[]) {
      const t = await startTarget(name, { plugs: LATENCY_PLUGS, fastHash: false });
      if (!t) continue;
      try {
        const { fleet, connected } = await LoadFleet.start({ workers: 1, port: t.mqttPort, plugs: t.plugs, client: "sim", concurrency: 10 });
        await sleep(3000);
        const rss = new RssSampler(t.pid, 250);
        const latency = await measureLatency(t, LATENCY_WINDOW_MS);
        rss.stop();
        const commands = await measureCommands(t, COMMANDS);
        small[name] = { latency, commands, rss: { max: rss.max, last: rss.last } };
        log(
          `    ${name}: ${connected} plugs; latency p50 ${fmtMs(latency.latency.p50)} p99 ${fmtMs(latency.latency.p99)} max ${fmtMs(latency.latency.max)} (${latency.received}/${latency.expected} readings); ` +
            `command p50 ${fmtMs(commands.rtt.p50)} p99 ${fmtMs(commands.rtt.p99)} (${commands.ok} ok, ${commands.failed} failed); RSS max ${fmtMB(rss.max)}`,
        );
        await fleet.stop();
      } finally {
        await t.stop();
      }
    }
    idleNode = await idleNodeRss();
    log(`    idle plain node ${fmtMB(idleNode)}`);
  });
}

// ---------- disk ----------
let disk: DiskResult | null = null;
if (want("disk")) {
  disk = await phase(`disk: ${DISK_PLUGS} plugs × 1 Hz for ${DISK_MS / 1000} s`, () => measureDisk(CAPACITY_ENV, log));
  log(
    `    hub: ${disk.writtenPerReading.toFixed(1)} B written/reading (${disk.writtenSource}; wchar ${disk.wcharPerReading.toFixed(1)}), ${disk.onDiskPerReading.toFixed(1)} B on disk/reading, ${disk.readingsPerCommit.toFixed(0)} readings/commit; ` +
      `naive schema: ${disk.baseline.writtenPerReading.toFixed(1)} B written, ${disk.baseline.onDiskPerReading.toFixed(1)} B on disk`,
  );
}

// ---------- capacity ----------
const capacity: Partial<Record<TargetName, CapacityResult>> = {};
if (want("capacity")) {
  await phase(`ingest capacity: ${PLUGS} plugs, QoS 1, ${STEP_MS / 1000} s steps`, async () => {
    for (const name of ["hub", ...baselines] as TargetName[]) {
      const t = await startTarget(name, { plugs: PLUGS, fastHash: true, env: CAPACITY_ENV });
      if (!t) continue;
      try {
        const { fleet, connected, failed } = await LoadFleet.start({ workers: 2, port: t.mqttPort, plugs: t.plugs, client: "raw" });
        log(`    ${name} pid ${t.pid}: ${connected} plugs connected (${failed} failed)`);
        await sleep(1000);
        capacity[name] = await findCapacity(t, fleet, log);
        log(`    ${name}: capacity ${fmtInt(capacity[name].capacity)} readings/s${capacity[name].harnessLimited ? " (load generator limit reached)" : ""}`);
        await fleet.stop();
      } finally {
        await t.stop();
      }
    }
  });
}

// ---------- overload ----------
const overload: OverloadStep[] = [];
const hubCapacity = capacity.hub?.capacity || 5000;
if (want("overload")) {
  await phase(`overload: 5× and 20× the hub's capacity (${fmtInt(hubCapacity)}/s), ${OVERLOAD_MS / 1000} s each`, async () => {
    for (const name of ["hub", ...baselines.filter((b) => b === "aedes")] as TargetName[]) {
      const t: Target | null = await startTarget(name, { plugs: PLUGS, fastHash: true, env: OVERLOAD_ENV });
      if (!t) continue;
      try {
        const { fleet } = await LoadFleet.start({ workers: 2, port: t.mqttPort, plugs: t.plugs, client: "raw" });
        await sleep(1000);
        for (const multiple of [5, 20]) {
          if (!t.child.alive) break;
          const s = await overloadStep(t, fleet, multiple, hubCapacity);
          overload.push(s);
          log(describeOverload(s));
          await sleep(1000);
        }
        await fleet.stop();
      } finally {
        await t.stop();
      }
    }
  });
}

// ---------- table ----------
const rows: Row[] = [];
const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) && Number.isFinite(b) ? a / b : null);

if (capacity.hub) {
  const h = capacity.hub;
  const a = capacity.aedes;
  const m = capacity.mosquitto;
  const ge = (c: CapacityResult | undefined) => (c ? `${c.harnessLimited ? "≥ " : ""}${fmtInt(c.capacity)}/s` : "–");
  const r = ratio(h.capacity, a?.capacity);
  const lastFail = h.steps.filter((s) => !s.pass).at(-1);
  rows.push({
    figure: `ingest capacity (${PLUGS} plugs, QoS 1, end to end to a WebSocket client)`,
    measured: `${ge(h)} readings/s`,
    baseline: `bare aedes ${ge(a)}; Mosquitto ${ge(m)}`,
    ratio: r,
    ratioNote: "vs aedes",
    goal: "≥ 5,000/s and ≥ 0.5× aedes",
    pass: h.capacity >= 5000 && r !== null && r >= 0.5,
    notes:
      `Highest ladder step sustained for ${STEP_MS / 1000} s (all acked, ≥ 95 % within the window, nothing lost to the consumer or the database, event-loop p99 < 50 ms).` +
      (lastFail ? ` The hub's first failing step, ${fmtInt(lastFail.rate)}/s: ${lastFail.why.join("; ")}.` : "") +
      (a?.harnessLimited || m?.harnessLimited ? " A \"≥\" marks a line where the load generator, not the broker, was the limit." : ""),
  });
}

for (const multiple of [5, 20]) {
  const h = overload.find((s) => s.target === "hub" && s.multiple === multiple);
  if (!h) continue;
  const a = overload.find((s) => s.target === "aedes" && s.multiple === multiple);
  const shed = h.shed ? Object.values(h.shed).reduce((x, y) => x + y, 0) : 0;
  rows.push({
    figure: `overload ${multiple}× capacity (${fmtInt(h.rate)}/s offered)`,
    measured: `${h.alive ? "up" : "CRASHED"}, RSS max ${h.rssMaxMB} MB, ${fmtInt(shed)} shed (counted), ${h.unaccounted ?? "?"} unaccounted`,
    baseline: a ? `bare aedes: ${a.alive ? "up" : "CRASHED"}, RSS max ${a.rssMaxMB} MB` : "–",
    ratio: a ? ratio(h.rssMaxMB, a.rssMaxMB) : null,
    ratioNote: a ? "RSS vs aedes" : undefined,
    goal: "no crash, RSS ≤ 300 MB, every shed message counted",
    pass: h.pass,
    notes:
      `Plugs wrote ${fmtInt(h.sent)} messages (${fmtInt(h.offered)}/s; ${fmtInt(h.blocked)} more held back by TCP back-pressure); the hub stored ${fmtInt(h.stored ?? 0)} and acked ${fmtInt(h.acked)} (${fmtInt(h.ackedPerSec)}/s during the run), shed ${JSON.stringify(h.shed)}, dropped ${JSON.stringify(h.dropped)}; ` +
      `after the plugs stopped it took ${(h.backlogDrainMs / 1000).toFixed(1)} s to work off its backlog; event-loop p99 ${h.lagP99Ms ?? "–"} ms (max ${h.lagMaxMs ?? "–"} ms) over the run.` +
      (h.why.length ? ` Failed: ${h.why.join("; ")}.` : "") +
      (a ? ` aedes acked ${fmtInt(a.acked)} (${fmtInt(a.ackedPerSec)}/s)${a.alive ? "" : `, died: ${a.why.join("; ")}`}.` : ""),
  });
}

const sh = small.hub;
if (sh) {
  const sa = small.aedes;
  const sm = small.mosquitto;
  rows.push({
    figure: `latency plug → WebSocket, ${LATENCY_PLUGS} plugs × 1 Hz, p99`,
    measured: `${fmtMs(sh.latency.latency.p99)} (p50 ${fmtMs(sh.latency.latency.p50)})`,
    baseline: `aedes → subscriber ${fmtMs(sa?.latency.latency.p99 ?? NaN)}; Mosquitto ${fmtMs(sm?.latency.latency.p99 ?? NaN)}`,
    ratio: ratio(sh.latency.latency.p99, sa?.latency.latency.p99),
    ratioNote: "vs aedes",
    goal: "p99 ≤ 20 ms",
    pass: sh.latency.latency.p99 <= 20,
    notes: `${sh.latency.received} readings over ${LATENCY_WINDOW_MS / 1000} s (expected ~${sh.latency.expected}); max ${fmtMs(sh.latency.latency.max)}. 1 ms resolution (payload timestamps).`,
  });
  rows.push({
    figure: "command round trip (REST → plug → confirmed → response), p50",
    measured: fmtMs(sh.commands.rtt.p50),
    baseline: `MQTT only: aedes ${fmtMs(sa?.commands.rtt.p50 ?? NaN)}; Mosquitto ${fmtMs(sm?.commands.rtt.p50 ?? NaN)}`,
    ratio: ratio(sh.commands.rtt.p50, sa?.commands.rtt.p50),
    ratioNote: "vs aedes",
    goal: "p50 ≤ 2 ms",
    pass: sh.commands.failed === 0 && sh.commands.rtt.p50 <= 2,
    notes: `${sh.commands.ok} sequential commands after ${20} warm-up, ${sh.commands.failed} not confirmed; with the ${LATENCY_PLUGS} plugs reporting at 1 Hz.`,
  });
  rows.push({
    figure: "command round trip, p99",
    measured: fmtMs(sh.commands.rtt.p99),
    baseline: `MQTT only: aedes ${fmtMs(sa?.commands.rtt.p99 ?? NaN)}; Mosquitto ${fmtMs(sm?.commands.rtt.p99 ?? NaN)}`,
    ratio: ratio(sh.commands.rtt.p99, sa?.commands.rtt.p99),
    ratioNote: "vs aedes",
    goal: "p99 ≤ 25 ms",
    pass: sh.commands.failed === 0 && sh.commands.rtt.p99 <= 25,
  });
}

if (disk) {
  rows.push({
    figure: "bytes on disk per stored reading",
    measured: `${disk.onDiskPerReading.toFixed(1)} B`,
    baseline: `naive schema ${disk.baseline.onDiskPerReading.toFixed(1)} B (raw JSON payload ${disk.payloadBytesPerReading} B)`,
    ratio: ratio(disk.onDiskPerReading, disk.baseline.onDiskPerReading),
    ratioNote: "vs naive",
    goal: "≤ 30 B",
    pass: disk.onDiskPerReading <= 30,
    notes: `readings table pages (dbstat) / ${fmtInt(disk.rowsInTable)} rows after the hub stopped; database file ${fmtMB(disk.fileBytes)}. Naive schema: rowid table, TEXT device id and ISO timestamp, REAL values, index on (device_id, timestamp) — table + index.`,
  });
  rows.push({
    figure: `bytes written per stored reading (${DISK_PLUGS} plugs × 1 Hz)`,
    measured: `${disk.writtenPerReading.toFixed(1)} B`,
    baseline: `naive schema ${disk.baseline.writtenPerReading.toFixed(1)} B`,
    ratio: ratio(disk.writtenPerReading, disk.baseline.writtenPerReading),
    ratioNote: "vs naive",
    goal: "≤ 100 B",
    pass: disk.writtenPerReading <= 100,
    notes:
      `/proc/<hub pid>/io ${disk.writtenSource} over ${DISK_MS / 1000} s / ${fmtInt(disk.stored)} readings stored in ${fmtInt(disk.commits)} commits (${disk.readingsPerCommit.toFixed(0)} per commit); wchar gives ${disk.wcharPerReading.toFixed(1)} B. ` +
      `Baseline fed the same readings with the same readings per commit (WAL, synchronous=FULL).`,
  });
}

if (sh) {
  const sa = small.aedes;
  const sm = small.mosquitto;
  const idle = idleNode as number | null;
  rows.push({
    figure: `RSS with ${LATENCY_PLUGS} connected plugs`,
    measured: fmtMB(sh.rss.max),
    baseline: `bare aedes ${sa ? fmtMB(sa.rss.max) : "–"}; Mosquitto ${sm ? fmtMB(sm.rss.max) : "–"}`,
    ratio: ratio(sh.rss.max, sa?.rss.max),
    ratioNote: "vs aedes",
    goal: "≤ 120 MB",
    pass: sh.rss.max <= MEMORY_LIMIT,
    notes:
      `Largest 250 ms sample over the ${LATENCY_WINDOW_MS / 1000} s latency window (plugs reporting, WebSocket client attached), after pairing and connecting at the production scrypt cost. The hub is dist/hub/main.mjs under plain node as the systemd unit runs it; bare aedes is bundled and run the same way` +
      (idle !== null ? `; an idle plain node process is ${fmtMB(idle)}.` : "."),
  });
}

const durationSec = (performance.now() - started) / 1000;
const config = [
  `Hub: the production bundle, built at the start of the run (\`npm run build\`). Latency, commands and memory run dist/hub/main.mjs itself as \`MALLOC_ARENA_MAX=2 node --enable-source-maps --max-semi-space-size=2 dist/hub/main.mjs\` (systemd/smartplug-hub.service's Environment and ExecStart), ready when /health answers, stopped with SIGTERM. The 1,000-plug runs (disk, capacity, overload) run dist/bench/hub-child.mjs: test/bench/hub-child.ts bundled with the same esbuild options (hub/main.ts's wiring, loadHubConfig(env) → startHub, plus the test scrypt cost and an IPC ready message), also under plain node with the same flags. HUB_LOG_LEVEL=warn, HUB_COMMIT_INTERVAL_MS default; fresh data directory per run.`,
  `Capacity and disk runs (${PLUGS} plugs from 127.0.0.1): ${Object.entries(CAPACITY_ENV).map(([k, v]) => `${k}=${v}`).join(", ")}; scrypt at test cost (pairing and first connect only; never on the ingest path).`,
  `Overload runs: ${Object.entries(OVERLOAD_ENV).map(([k, v]) => `${k}=${v}`).join(", ")}; HUB_MQTT_GLOBAL_MSG_RATE left at its default (15,000/s), so the global budget is what sheds; the per-connection limit (RELIABILITY A9) is out of this figure. RSS sampled every 100 ms; limit ${RSS_LIMIT / MB} MB.`,
  `Latency, commands and memory (${LATENCY_PLUGS} plugs): default hub limits and production scrypt cost; plugs are test/sim/native-plug.ts.`,
  `Load generators: ${PLUGS}-plug runs use 2 forked processes with one TCP connection per plug, framing MQTT 3.1.1 by hand (test/bench/mqtt-wire.ts; mqtt.js costs several times more CPU per QoS 1 publish, which on 2 cores the broker would lose); open loop, round-robin over plugs, timestamps strictly increasing per plug; payloads built by the simulator's buildTelemetry. Overload batches ${10} PUBLISH packets per socket write.`,
  `Bare aedes: aedes 1.2 defaults + net server + TCP_NODELAY (test/bench/aedes-child.ts, bundled to dist/bench/aedes-child.mjs and run under plain node like the hub); Mosquitto: ${machine.mosquitto}, listener on 127.0.0.1, allow_anonymous, no persistence, set_tcp_nodelay. Their consumer is one MQTT client subscribed to \`#\` at QoS 0; the hub's is one WebSocket client subscribed to all devices.`,
  `Event-loop delay: hub_nodejs_eventloop_lag_p99_seconds from /metrics (prom-client, 10 ms resolution, reset at each scrape: scraped at the start and end of each step); bare aedes uses the same monitor.`,
];
const notes = [
  `CPU per phase (cores, average): ${Object.entries(cpu).map(([k, v]) => `${k.split(":")[0]}: machine ${v.machineBusyCores}, bench ${v.benchCores}, other ${v.otherCores}`).join("; ")}. "Other" is CPU the bench's processes did not use (other work on the machine, or kernel network time not charged to a process).`,
];

const results = {
  machine,
  durationSec: Math.round(durationSec),
  config: { capacityEnv: CAPACITY_ENV, overloadEnv: OVERLOAD_ENV, plugs: PLUGS, latencyPlugs: LATENCY_PLUGS, commands: COMMANDS, diskMs: DISK_MS, stepMs: STEP_MS },
  rows,
  figures: { capacity, overload, small, idleNode, disk },
  cpu,
  skipped,
};
const outDir = join(ROOT, "bench-results");
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "hub-core.json"), JSON.stringify(results, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n");
writeFileSync(join(outDir, "hub-core.md"), markdownReport({ rows, machine, durationSec, config, notes, skipped }));
log(`\n${markdownReport({ rows, machine, durationSec, config: [], notes: [], skipped }).split("## Notes per figure")[0]}`);
log(`wrote bench-results/hub-core.json and bench-results/hub-core.md (${Math.round(durationSec)} s)`);
clearTimeout(watchdog);
process.exit(0);
