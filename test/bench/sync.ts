// The hub ↔ cloud figures of issue 6, each against a reference measured in the same run:
//   1. catch-up: N plugs after a 7-day outage (N × 7 × 1,440 one-minute rollups plus hours and days) drained from
//      the hub's outbox into InfluxDB through the cloud, vs writing the same points straight to InfluxDB's /write
//      (line protocol built with the same library, 5,000 lines a request, one request at a time);
//   2. upload size per plug-day of rollups (gzip bodies the hub sent, counted at a loopback proxy);
//   3. remote command round trip app → cloud → hub → plug → confirmed → app, p50/p99, vs the same command
//      through the hub's local API.
// Real InfluxDB 1.x, the real cloud (`node --import tsx cloud/main.ts`, embedded PGlite) and the real hub
// (`node --import tsx hub/main.ts`) as child processes; a simulated native plug (test/sim) for the commands.
//   npx tsx test/bench/sync.ts [--quick]   → bench-results/sync.md, bench-results/sync.json
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RollupLines } from "../../cloud/timeseries/rollup-store.js";
import type { RollupPoint } from "../../shared/schemas/rollups.js";
import { startInflux, freePort, waitFor } from "../helpers/influx.js";
import { spawnHub } from "../helpers/hub-process.js";
import { CloudFaultProxy } from "../helpers/cloud-fault-proxy.js";
import { openHubDb } from "../../hub/db/open-db.js";
import { loadHubConfig } from "../../hub/config.js";
import { createLogger } from "../../shared/logger.js";
import { startNativePlug } from "../sim/native-plug.js";
import { machineInfo, markdownTable, type Row } from "./report.js";
import { readCpuSeconds } from "./procs.js";
import { execFileSync } from "node:child_process";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const quick = process.argv.includes("--quick");
const PLUGS = quick ? 10 : 50;
const DAYS = 7;
const COMMANDS = quick ? 100 : 300;
const COMMAND_PLUGS = 20;
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const log = (s: string) => console.error(`[sync-bench] ${s}`);
const q = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
const r1 = (v: number) => Math.round(v * 10) / 10;

/** A rollup row at the hub's integer scales, varied like a fridge's minutes. */
function rollupValues(i: number, d: number, n: number) {
  const w = 400 + ((i * 7 + d * 13) % 900); // deci-watts
  return [n, w * n, n, w - 30, w + 40, 2300 * n, n, Math.round(w * 0.435) * n, n, (w / 10) * (n / 3600) * 10, ((i + d) % 3) * 20_000];
}

/**
 * The outage: every bucket of each level inside [end − 7 d + 1 h, end), end a whole hour. The 1-minute rollups then
 * stay younger than HUB_OUTBOX_MAX_AGE_DAYS (7) while they drain, as after a real 7-day outage minus the hour the
 * hub itself would already have aged out.
 */
function levels(end: number) {
  const start = end - DAYS * DAY + HOUR;
  return [
    { level: "1m", step: MIN, n: 6, from: start, to: end },
    { level: "1h", step: HOUR, n: 360, from: start, to: end },
    { level: "1d", step: DAY, n: 8640, from: Math.ceil(start / DAY) * DAY, to: Math.floor(end / DAY) * DAY },
  ] as const;
}

function seedHub(dataDir: string, end: number) {
  const db = openHubDb(dataDir, createLogger({ app: "bench-seed", level: "silent" }));
  const dev = db.sqlite.prepare("INSERT INTO devices (device_id, name, family, mqtt_user, topic, channel, secret_hash, created_at, state_as_of) VALUES (?, ?, 'native', ?, ?, 0, 'scrypt$unusable', ?, ?)");
  const cols = "(bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  const put = { "1m": db.sqlite.prepare(`INSERT INTO rollup_1m ${cols}`), "1h": db.sqlite.prepare(`INSERT INTO rollup_1h ${cols}`), "1d": db.sqlite.prepare(`INSERT INTO rollup_1d ${cols}`) };
  const start = end - DAYS * DAY;
  db.sqlite.transaction(() => {
    const idx: number[] = [];
    for (let d = 0; d < PLUGS; d++) idx.push(Number(dev.run(`plug-${d}`, `Plug ${d}`, `plug-${d}`, `smartplug/plug-${d}`, start, start).lastInsertRowid));
    for (const l of levels(end)) {
      for (let ts = l.from, i = 0; ts < l.to; ts += l.step, i++) idx.forEach((device, d) => put[l.level].run(ts, device, ...rollupValues(i, d, l.n)));
    }
    // The rollup service starts from here: nothing raw to fold.
    for (const [k, v] of [["rollup_1m_until", end], ["rollup_1h_until", end], ["rollup_1d_until", end]] as const) db.sqlite.prepare("INSERT INTO meta(key, value) VALUES (?, ?)").run(k, String(v));
  })();
  db.close();
}

/** The same rollups as RollupPoints (what the cloud receives), per level, for the direct-write baseline. */
function directPoints(end: number): { db: string; points: RollupPoint[] }[] {
  const out: { db: string; points: RollupPoint[] }[] = [];
  for (const { level, step, n, from, to } of levels(end)) {
    const points: RollupPoint[] = [];
    for (let ts = from, i = 0; ts < to; ts += step, i++) {
      for (let d = 0; d < PLUGS; d++) {
        const v = rollupValues(i, d, n);
        points.push({
          device_id: `plug-${d}`,
          level,
          ts,
          samples: v[0]!,
          power_sum: v[1]! / 10,
          power_n: v[2]!,
          power_min: v[3]! / 10,
          power_max: v[4]! / 10,
          voltage_sum: v[5]! / 10,
          voltage_n: v[6]!,
          current_sum: v[7]! / 1000,
          current_n: v[8]!,
          energy_wh: v[9]!,
          on_ms: v[10]!,
        });
      }
    }
    out.push({ db: `direct_${level}`, points });
  }
  return out;
}

/** Stops every server this run started, also when it fails half-way (no influxd or cloud left behind). */
const cleanups: (() => Promise<unknown> | unknown)[] = [];
async function cleanUp() {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
}

async function main() {
  const t0 = performance.now();
  const machine = machineInfo("");
  // InfluxDB at its own default wal-fsync-delay (0 s), as it runs in production; the test suite batches fsyncs for 100 ms.
  const influx = await startInflux({ walFsyncDelay: "0s" });
  cleanups.push(() => influx.close());
  const cloudPort = await freePort();
  const cloudDir = mkdtempSync(join(tmpdir(), "bench-cloud-"));
  // BENCH_CLOUD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" passes node flags to the cloud process,
  // BENCH_HUB_NODE_ARGS to the hub.
  const cloudArgs = (process.env.BENCH_CLOUD_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const cloud = spawn(process.execPath, [...cloudArgs, "--import", "tsx", "cloud/main.ts"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CLOUD_DATA_DIR: cloudDir, CLOUD_HTTP_HOST: "127.0.0.1", CLOUD_HTTP_PORT: String(cloudPort), CLOUD_INFLUX_URL: influx.url, CLOUD_LOG_LEVEL: "warn" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  cleanups.push(() => cloud.kill("SIGTERM"));
  const cloudUrl = `http://127.0.0.1:${cloudPort}`;
  await waitFor("cloud", async () => (await fetch(`${cloudUrl}/health`).catch(() => null))?.ok ?? false, 120_000);
  const proxy = await CloudFaultProxy.start(() => cloudPort);
  cleanups.push(() => proxy.close());
  let uploadBytes = 0;
  let batches = 0;
  let firstSync = 0;
  proxy.fault = {
    kind: "hook",
    onSync: async (body) => {
      uploadBytes += body.length;
      batches++;
      firstSync ||= performance.now();
      return "forward";
    },
  };
  const end = Math.floor(Date.now() / HOUR) * HOUR;
  const dataDir = mkdtempSync(join(tmpdir(), "bench-hub-"));
  log(`seeding ${PLUGS} plugs × ${DAYS} days of rollups`);
  seedHub(dataDir, end);
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const hub = await spawnHub({ dataDir, httpPort, mqttPort, env: { HUB_CLOUD_URL: proxy.url, HUB_SYNC_INTERVAL_MS: "1000", HUB_COMMIT_INTERVAL_MS: String(loadHubConfig({}).ingest.commitIntervalMs), ...(process.env.BENCH_SYNC_DEBUG ? { HUB_LOG_LEVEL: "debug" } : {}) }, nodeArgs: (process.env.BENCH_HUB_NODE_ARGS ?? "").split(" ").filter(Boolean), timeoutMs: 60_000 });
  cleanups.push(() => hub.kill("SIGTERM"));
  const influxPid = Number(execFileSync("pgrep", ["-f", influx.dir], { encoding: "utf8" }).trim().split("\n")[0]);
  const pids = { hub: hub.pid, cloud: cloud.pid!, influxd: influxPid };
  const cpuNow = () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, readCpuSeconds(pid)])) as Record<keyof typeof pids, number>;
  const cpuSince = (a: Record<keyof typeof pids, number>) => {
    const b = cpuNow();
    return Object.fromEntries(Object.keys(pids).map((k) => [k, b[k as keyof typeof pids] - a[k as keyof typeof pids]])) as Record<keyof typeof pids, number>;
  };
  const cpuAtStart = cpuNow();
  const health = async () => (await (await fetch(`http://127.0.0.1:${httpPort}/health`)).json()) as { components: { sync?: { queue_depth: number; hub_id: string | null } } };
  await waitFor("hub", async () => (await fetch(`http://127.0.0.1:${httpPort}/health`).catch(() => null))?.ok ?? false, 60_000);
  const expected = levels(end).reduce((sum, l) => sum + PLUGS * ((l.to - l.from) / l.step), 0);
  let hubId = "";
  await waitFor(
    "outbox drained",
    async () => {
      const h = await health();
      hubId = h.components.sync?.hub_id ?? "";
      return firstSync > 0 && h.components.sync?.queue_depth === 0;
    },
    15 * 60_000,
  );
  const drainMs = performance.now() - firstSync;
  const drainCpu = cpuSince(cpuAtStart);
  const [drainBytes, drainBatches] = [uploadBytes, batches];
  if (process.env.BENCH_SYNC_DEBUG) for (const l of hub.lines.filter((x) => x.includes("sync batch acked"))) log(l);
  const count = async (db: string) => {
    const r = await fetch(`${influx.url}/query?${new URLSearchParams({ db, q: 'SELECT count("samples") FROM "rollup"' })}`);
    const b = (await r.json()) as { results: { series?: { values: [string, number][] }[] }[] };
    return b.results[0]?.series?.[0]?.values[0]?.[1] ?? 0;
  };
  const perLevel = { "1m": await count("smartplug_1m"), "1h": await count("smartplug_1h"), "1d": await count("smartplug_1d") };
  const stored = perLevel["1m"] + perLevel["1h"] + perLevel["1d"];
  log(`InfluxDB per level: ${JSON.stringify(perLevel)}; expected ${JSON.stringify(Object.fromEntries(levels(end).map((l) => [l.level, PLUGS * ((l.to - l.from) / l.step)])))}`);
  log(`drained ${expected} rollups in ${Math.round(drainMs)} ms (${drainBatches} batches, ${drainBytes} B gzip); InfluxDB holds ${stored}`);

  // Baseline: the same points straight to InfluxDB, one request of 5,000 lines at a time.
  // Timed from the points on: building the line protocol (the cloud's own RollupLines, byte-identical to the
  // library's Point) and writing 5,000 lines a request, one request at a time, as a direct client would.
  const direct = directPoints(end);
  for (const d of direct) await fetch(`${influx.url}/query?${new URLSearchParams({ q: `CREATE DATABASE ${d.db}` })}`, { method: "POST" });
  const d0 = performance.now();
  const directCpuStart = cpuNow();
  const directLines = new RollupLines(hubId);
  for (const d of direct) {
    for (let i = 0; i < d.points.length; i += 5000) {
      const body = d.points.slice(i, i + 5000).map((p) => directLines.line(p)).join("\n");
      const res = await fetch(`${influx.url}/write?${new URLSearchParams({ db: d.db, precision: "ms" })}`, { method: "POST", body });
      if (res.status !== 204) throw new Error(`direct write: ${res.status} ${await res.text()}`);
    }
  }
  const directMs = performance.now() - d0;
  const directCpu = cpuSince(directCpuStart);
  const us = (sec: number) => r1((sec * 1e6) / expected);
  const cpuLine = `CPU per rollup (µs, /proc/<pid>/stat): through the cloud hub ${us(drainCpu.hub)}, cloud ${us(drainCpu.cloud)}, influxd ${us(drainCpu.influxd)}; direct influxd ${us(directCpu.influxd)}`;
  log(cpuLine);

  // Remote commands: a real plug on the hub, the hub claimed by a cloud user.
  const api = async (base: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(base + path, { method: body === undefined ? "GET" : "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json().catch(() => null)) as Record<string, unknown> };
  };
  const hubUrl = `http://127.0.0.1:${httpPort}`;
  await api(hubUrl, "/auth/register", { email: "owner@bench.local", password: "bench owner password" });
  const hubToken = String((await api(hubUrl, "/auth/login", { email: "owner@bench.local", password: "bench owner password" })).body.access_token);
  // Commands go round-robin over COMMAND_PLUGS plugs: each command makes its plug publish twice (status and
  // reading), and one plug switched back-to-back hundreds of times would hit HUB_MQTT_MSG_RATE (20/s).
  const plugIds = Array.from({ length: COMMAND_PLUGS }, (_, k) => `bench-plug-${k}`);
  const plugs = [];
  for (const id of plugIds) {
    await api(hubUrl, "/devices", { device_id: id, name: id, pairing_code: `${id}-code` }, hubToken);
    plugs.push(startNativePlug({ url: `mqtt://127.0.0.1:${mqttPort}`, deviceId: id, password: `${id}-code`, intervalMs: 5000 }));
  }
  await Promise.all(plugs.map((p) => p.connected()));
  await api(cloudUrl, "/auth/register", { email: "owner@bench.local", password: "bench owner password" });
  const cloudToken = String((await api(cloudUrl, "/auth/login", { email: "owner@bench.local", password: "bench owner password" })).body.access_token);
  const status = (await api(hubUrl, "/cloud", undefined, hubToken)).body as { claim_code: string };
  const claimed = await api(cloudUrl, "/hubs/claim", { claim_code: status.claim_code }, cloudToken);
  if (claimed.status !== 200) throw new Error(`claim: ${claimed.status} ${JSON.stringify(claimed.body)}`);
  for (const id of plugIds) await waitFor(`${id} online in the cloud`, async () => (await api(cloudUrl, `/devices/${id}`, undefined, cloudToken)).body?.status === "online", 30_000);
  const measure = async (base: string, token: string) => {
    const times: number[] = [];
    for (let i = 0; i < COMMANDS + 20; i++) {
      const id = plugIds[i % plugIds.length]!;
      const s = performance.now();
      const r = await api(base, `/devices/${id}/command`, { command: Math.floor(i / plugIds.length) % 2 ? "relay_on" : "relay_off" }, token);
      if (r.body.status !== "confirmed") throw new Error(`command ${i} via ${base}: ${r.status} ${JSON.stringify(r.body)}\nhub log:\n${hub.lines.slice(-40).join("\n")}`);
      if (i >= 20) times.push(performance.now() - s);
    }
    return times.sort((a, b) => a - b);
  };
  const local = await measure(hubUrl, hubToken);
  const remote = await measure(cloudUrl, cloudToken);
  await Promise.all(plugs.map((p) => p.close()));

  const oneMinute = levels(end)[0];
  const plugDays = (PLUGS * (oneMinute.to - oneMinute.from)) / DAY;
  const rows: Row[] = [
    {
      figure: `catch-up: ${PLUGS} plugs after a ${DAYS}-day outage (${expected.toLocaleString("en")} rollups) drained into InfluxDB`,
      measured: `${r1(drainMs / 1000)} s (${Math.round(expected / (drainMs / 1000)).toLocaleString("en")} rollups/s)`,
      baseline: `same points straight to /write (lines built and sent 5,000 a request): ${r1(directMs / 1000)} s`,
      ratio: directMs / drainMs,
      ratioNote: "of direct speed",
      goal: "≤ 60 s and ≥ 0.5× direct",
      pass: drainMs <= 60_000 && directMs / drainMs >= 0.5 && stored === expected,
      notes: `${cpuLine}. ${drainBatches} batches; InfluxDB holds ${stored.toLocaleString("en")} of ${expected.toLocaleString("en")} points afterwards; time from the hub's first sync request to an empty outbox (GET /health polled every 200 ms).`,
    },
    {
      figure: "upload size per plug-day of rollups (1,440 × 1 m + 24 × 1 h + 1 × 1 d)",
      measured: `${r1(drainBytes / plugDays / 1024)} KB`,
      baseline: `${r1(plugDays)} plug-days, ${drainBytes.toLocaleString("en")} B of gzip bodies`,
      ratio: null,
      goal: "≤ 30 KB compressed",
      pass: drainBytes / plugDays / 1024 <= 30,
    },
    {
      figure: "remote command round trip app → cloud → hub → plug → confirmed → app",
      measured: `p50 ${r1(q(remote, 0.5))} ms, p99 ${r1(q(remote, 0.99))} ms`,
      baseline: `local API on the hub: p50 ${r1(q(local, 0.5))} ms, p99 ${r1(q(local, 0.99))} ms`,
      ratio: q(remote, 0.99) / q(local, 0.99),
      ratioNote: "p99 vs local",
      goal: "p99 ≤ 100 ms",
      pass: q(remote, 0.99) <= 100,
      notes: `${COMMANDS} sequential commands after 20 warm-up, round-robin over ${COMMAND_PLUGS} simulated native plugs, through the loopback proxy the bench counts bytes with; cloud on embedded PGlite.`,
    },
  ];
  const md = [
    "# Hub ↔ cloud sync benchmark (issue 6)",
    "",
    `Produced by \`npx tsx test/bench/sync.ts${quick ? " --quick" : ""}\` on ${machine.date}, in ${Math.round((performance.now() - t0) / 1000)} s.`,
    "",
    markdownTable(rows),
    "",
    ...rows.filter((r) => r.notes).map((r) => `- **${r.figure}**: ${r.notes}`),
    "",
    `Machine: ${machine.nproc} cores (${machine.cpuModel}), Node ${machine.node}, load average at start ${machine.loadavgAtStart}. Hub and cloud as child processes (tsx), InfluxDB ${influx.url}.`,
    "",
  ].join("\n");
  const outDir = join(ROOT, "bench-results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "sync.md"), md);
  writeFileSync(join(outDir, "sync.json"), JSON.stringify({ machine, quick, rows, drainMs, directMs, drainCpu, directCpu, drainBytes, drainBatches, local, remote }, null, 1));
  console.log(md);
  await cleanUp();
  process.exit(0);
}

main().catch(async (err: unknown) => {
  console.error(err);
  await cleanUp();
  process.exit(1);
});
