// Issue 3 figures: per plug family at 100 plugs delivering ~1 reading per plug per 2 s, the hub's CPU per
// stored reading against the native family in the same run (goal ≤ 1.5×), and the command round-trip p99
// per family (goal ≤ 25 ms).
//
//   npx tsx test/bench/families.ts [--quick]   → bench-results/families.md + families.json
//
// The hub runs as it ships (`npm run build`, `node dist/hub/main.mjs`, production scrypt costs) with
// HUB_POLL_INTERVAL_MS=2000: it polls Tasmota with `Status 10` and Shelly Gen2 with `Switch.GetStatus`.
// Native plugs report every 2 s on their own, Gen1 plugs get a 2 s state period; Tasmota keeps its
// default TelePeriod (300 s) and Gen2 checks for NotifyStatus deltas only every 60 s, so the polls are
// what delivers their readings. Plugs run in a separate process (families-plugs.ts). The families are
// measured one after another against one hub process — native first and again last, so a change in the
// machine's load during the run shows — each window's CPU from /proc/<hub pid>/stat (utime+stime) ÷
// the readings the hub stored in it (hub_readings_stored_total). Command round trips are measured after
// each CPU window, so they do not count in it.
import { mkdirSync, writeFileSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CpuAudit, ROOT, forkTs, killChildren, readCpuSeconds, sleep, type Child, type CpuShare } from "./procs.js";
import { summarize } from "./stats.js";
import { fmtMs, machineInfo, markdownReport, type Row } from "./report.js";
import { buildHub, pairAll, startDistHub, type DistHub } from "./families-hub.js";
import { FAMILY_ORDER, cpuPerReadingUs, familyRows, pool, ratioOf, readingsPerPlugPerPeriod, type BenchFamily, type FamilyFigures, type FamilyWindow } from "./families-math.js";
import { simDeviceId } from "../sim/sim-plug.js";
import { pairingCodeFor } from "../sim/cli.js";
import { clientSocketsNoDelay } from "./no-delay.js";

clientSocketsNoDelay();

const CADENCE_MS = 2000;

interface Plan {
  plugs: number;
  windowMs: number;
  warmupMs: number;
  commands: number;
  warmupCommands: number;
}

const FULL: Plan = { plugs: 100, windowMs: 40_000, warmupMs: 4000, commands: 300, warmupCommands: 20 };
const QUICK: Plan = { plugs: 100, windowMs: 10_000, warmupMs: 2500, commands: 60, warmupCommands: 10 };

function plugsOf(family: BenchFamily, n: number) {
  return Array.from({ length: n }, (_, i) => {
    const deviceId = simDeviceId(family, "bench-", i);
    return { deviceId, family, code: pairingCodeFor(deviceId) };
  });
}

async function commandRtts(hub: DistHub, ids: string[], n: number, warmup: number) {
  const samples: number[] = [];
  let failed = 0;
  const why = new Map<string, number>();
  for (let i = 0; i < n + warmup; i++) {
    const id = ids[i % ids.length]!;
    // Alternate per pass over the plugs, so every command really switches the relay.
    const command = Math.floor(i / ids.length) % 2 === 0 ? "relay_off" : "relay_on";
    const t0 = performance.now();
    const res = await hub.api(`/devices/${encodeURIComponent(id)}/command`, { body: { command } });
    const body = (await res.json()) as { status?: string };
    const ms = performance.now() - t0;
    if (res.status !== 200 || body.status !== "confirmed") {
      failed++;
      const k = `${res.status} ${body.status ?? "?"}`;
      why.set(k, (why.get(k) ?? 0) + 1);
    } else if (i >= warmup) samples.push(ms);
  }
  return { rtt: summarize(samples), ok: samples.length, failed, why: Object.fromEntries(why) };
}

export async function runFamiliesBench(opts: { quick?: boolean } = {}): Promise<{ markdown: string; json: unknown }> {
  const plan = opts.quick ? QUICK : FULL;
  const log = (s: string) => console.log(s);
  const started = performance.now();
  const machine = machineInfo("not used");
  log(`families bench${opts.quick ? " (quick)" : ""} — ${machine.date}, nproc ${machine.nproc}, load average ${machine.loadavgAtStart}`);
  buildHub(log);

  const hub = await startDistHub({ env: { HUB_POLL_INTERVAL_MS: String(CADENCE_MS), HUB_MQTT_MAX_CONNECTIONS: "1100" } });
  const plugsChild: Child = forkTs("plugs", "families-plugs.ts");
  const windows: FamilyWindow[] = [];
  const rtts = new Map<BenchFamily, Awaited<ReturnType<typeof commandRtts>>>();
  const cadence = new Map<BenchFamily, number[]>();
  const cpuShares: Record<string, CpuShare> = {};
  const problems: string[] = [];
  let idleCoresHub = NaN;
  try {
    await plugsChild.waitFor("ready", 60_000);
    const all = FAMILY_ORDER.flatMap((f) => plugsOf(f, plan.plugs));
    const t0 = performance.now();
    const failures = await pairAll(hub, all);
    if (failures.length) throw new Error(`pairing failed for ${failures.length} plugs: ${failures.slice(0, 3).join("; ")}`);
    log(`    hub pid ${hub.pid}: paired ${all.length} plugs through POST /devices in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // The hub with nothing connected, for the notes (timers, rollups, retention).
    {
      await sleep(1000);
      const c0 = readCpuSeconds(hub.pid);
      await sleep(5000);
      idleCoresHub = (readCpuSeconds(hub.pid) - c0) / 5;
    }

    const order: BenchFamily[] = [...FAMILY_ORDER, "native"];
    for (const [k, family] of order.entries()) {
      const audit = new CpuAudit();
      const plugs = plugsOf(family, plan.plugs);
      const conn = await plugsChild.request<{ connected: number; failed: string[] }>(
        {
          type: "start",
          family,
          url: `mqtt://127.0.0.1:${hub.mqttPort}`,
          plugs: plugs.map((p) => ({ deviceId: p.deviceId, password: p.code })),
          intervalMs: family === "native" || family === "shelly-gen1" ? CADENCE_MS : family === "shelly-gen2" ? 60_000 : undefined,
          staggerMs: 15,
        },
        180_000,
      );
      if (conn.failed.length) problems.push(`${family}: ${conn.failed.length} plugs did not connect (${conn.failed.slice(0, 2).join("; ")})`);
      await sleep(plan.warmupMs);
      const s0 = await hub.metric("hub_readings_stored_total");
      const c0 = readCpuSeconds(hub.pid);
      const w0 = performance.now();
      await sleep(plan.windowMs);
      const c1 = readCpuSeconds(hub.pid);
      const s1 = await hub.metric("hub_readings_stored_total");
      const w: FamilyWindow = { family, plugs: conn.connected, windowMs: performance.now() - w0, cpuSec: c1 - c0, stored: s1 - s0 };
      windows.push(w);
      const cad = readingsPerPlugPerPeriod(w, CADENCE_MS);
      cadence.set(family, [...(cadence.get(family) ?? []), cad]);
      let rttNote = "";
      if (!rtts.has(family)) {
        const r = await commandRtts(
          hub,
          plugs.map((p) => p.deviceId),
          plan.commands,
          plan.warmupCommands,
        );
        rtts.set(family, r);
        rttNote = `; commands p50 ${fmtMs(r.rtt.p50)} p99 ${fmtMs(r.rtt.p99)} max ${fmtMs(r.rtt.max)} (${r.ok} ok, ${r.failed} failed${r.failed ? ` ${JSON.stringify(r.why)}` : ""})`;
      }
      await plugsChild.request({ type: "close" }, 60_000);
      await sleep(1500); // the hub marks them offline; the poller stops asking
      cpuShares[`${k + 1}. ${family}`] = audit.stop();
      log(
        `    ${family}: ${conn.connected} plugs, ${w.stored} readings in ${(w.windowMs / 1000).toFixed(1)} s (${cad.toFixed(2)} per plug per 2 s), hub CPU ${w.cpuSec.toFixed(2)} s → ${cpuPerReadingUs(w).toFixed(0)} µs/reading${rttNote}`,
      );
    }
  } finally {
    await plugsChild.stop(10_000).catch(() => undefined);
    await hub.stop().catch(() => undefined);
    rmSync(hub.dataDir, { recursive: true, force: true });
  }

  const nativeWindows = windows.filter((w) => w.family === "native");
  const pooled = new Map<BenchFamily, FamilyWindow>();
  for (const f of FAMILY_ORDER) {
    const p = pool(windows.filter((w) => w.family === f));
    if (p) pooled.set(f, p);
  }
  const nativeUs = cpuPerReadingUs(pooled.get("native")!);
  const figs: FamilyFigures[] = FAMILY_ORDER.filter((f) => pooled.has(f)).map((f) => {
    const w = pooled.get(f)!;
    const us = cpuPerReadingUs(w);
    const r = rtts.get(f)!;
    return {
      family: f,
      window: w,
      cpuUs: us,
      cpuRatio: f === "native" ? 1 : ratioOf(us, nativeUs),
      cadence: readingsPerPlugPerPeriod(w, CADENCE_MS),
      rtt: r.rtt,
      commandsOk: r.ok,
      commandsFailed: r.failed,
    };
  });
  const rows: Row[] = familyRows(figs, nativeWindows, fmtMs);
  const durationSec = (performance.now() - started) / 1000;
  const setup = [
    `Command: \`npx tsx test/bench/families.ts${opts.quick ? " --quick" : ""}\` (${opts.quick ? "quick mode: shorter windows and fewer commands" : "full run"}).`,
    `Hub: \`node dist/hub/main.mjs\` built by \`npm run build\`, HUB_POLL_INTERVAL_MS=${CADENCE_MS}, production scrypt costs, log level warn, SNTP off; every other HUB_* variable at its default.`,
    `Plugs: ${plan.plugs} per family from test/sim (startSimPlug, ids from simDeviceId, pairing codes from pairingCodeFor), paired through POST /devices, in one separate process; constant 60 W load. Native: telemetry every ${CADENCE_MS / 1000} s; Gen1: state period ${CADENCE_MS / 1000} s; Tasmota: default TelePeriod 300 s, polled with Status 10; Gen2: NotifyStatus check every 60 s, polled with Switch.GetStatus.`,
    `Order: ${[...FAMILY_ORDER, "native"].join(" → ")}, one family connected at a time; ${plan.warmupMs / 1000} s after the last plug connected, a ${plan.windowMs / 1000} s CPU window, then ${plan.commands} sequential commands (after ${plan.warmupCommands} warm-up) cycling over the family's plugs, then the plugs disconnect. Native's figure pools both native windows.`,
    `Hub CPU with no plug connected: ${(idleCoresHub * 1000).toFixed(1)} ms/s (included in every window; not subtracted).`,
    `Machine CPU per phase (cores): ${Object.entries(cpuShares)
      .map(([k, v]) => `${k}: machine ${v.machineBusyCores}, bench ${v.benchCores}, other ${v.otherCores}`)
      .join("; ")}. "Other" is load on the shared machine that is not this bench.`,
  ];
  if (problems.length) setup.push(`Problems: ${problems.join("; ")}`);
  const markdown = markdownReport({ rows, machine, durationSec, config: setup, notes: [], skipped: [] })
    .replace("# Hub core benchmark", "# Plug families benchmark (issue 3)")
    .replace("Produced by `npm run bench` (test/bench/run.ts)", `Produced by \`npx tsx test/bench/families.ts${opts.quick ? " --quick" : ""}\``)
    .replace(/\n- Mosquitto: .*\n/, "\n");
  const json = { machine, quick: !!opts.quick, durationSec: Math.round(durationSec), plan, cadenceMs: CADENCE_MS, rows, windows, figures: figs, idleHubCores: idleCoresHub, cpu: cpuShares, problems };
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
      console.error("families bench: hard limit reached; stopping its child processes");
      killChildren();
      process.exit(2);
    },
    (quick ? 4 : 12) * 60_000,
  );
  watchdog.unref();
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.on(sig, () => {
      killChildren();
      process.exit(130);
    });
  const { markdown, json } = await runFamiliesBench({ quick });
  const out = join(ROOT, "bench-results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "families.json"), JSON.stringify(json, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n");
  writeFileSync(join(out, "families.md"), markdown);
  console.log("\n" + markdown.split("## Notes per figure")[0]);
  console.log("wrote bench-results/families.md and bench-results/families.json");
  clearTimeout(watchdog);
  process.exit(0);
}
