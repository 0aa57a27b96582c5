// Figure: ingest capacity. 1,000 plugs publish QoS 1 telemetry at a fixed aggregate rate; the rate climbs a
// ladder until a step is not sustained. A step is sustained when, over its window:
//   - the generator offered the rate (else the step is harness-limited and the search stops there),
//   - every message was acknowledged (PUBACK) and ≥ 95 % of those sent up to the window's end less the server's
//     designed ack delay within the window (the server keeps pace; the hub acks after its group commit, which
//     waits up to HUB_COMMIT_INTERVAL_MS, 1 s by default; brokers ack at once),
//   - nothing was lost on the way out: the consumer (hub: WebSocket client; aedes/Mosquitto: a `#`
//     subscriber) received every message, and for the hub every reading was committed,
//   - event-loop delay p99 < 50 ms (hub: /metrics; bare aedes: the same monitor; n/a for Mosquitto).
// A failed step is retried once (two cores shared with the load generator make single steps noisy).
import type { FleetRun, LoadFleet, Target } from "./targets.js";
import { settle } from "./targets.js";
import { metricSum } from "./stats.js";
import { readCpuSeconds, readMem, sleep } from "./procs.js";
import { loadHubConfig } from "../../hub/config.js";

/** How long the hub may hold a PUBACK by design: its default group-commit window. */
export const HUB_ACK_DELAY_MS = loadHubConfig({}).ingest.commitIntervalMs;

export const PLUGS = 1000;
export const LADDER = [1000, 2000, 3000, 4000, 5000, 6500, 8000, 10_000, 12_500, 15_000, 20_000, 25_000];
export const STEP_MS = 5000;
export const DRAIN_MS = 3000;
export const LAG_LIMIT_MS = 50;

export interface Step {
  rate: number;
  attempt: number;
  offered: number;
  sent: number;
  acked: number;
  ackedInWindow: number;
  delivered: number;
  stored: number | null;
  blocked: number;
  closed: number;
  lagP99Ms: number | null;
  lagMaxMs: number | null;
  ackP50Ms: number;
  ackP99Ms: number;
  deliveryP99Ms: number;
  serverCores: number;
  generatorCores: number;
  rssMB: number;
  pass: boolean;
  harnessLimited: boolean;
  why: string[];
}

export interface CapacityResult {
  target: string;
  capacity: number;
  /** true when the last step failed because the generator could not offer the rate. */
  harnessLimited: boolean;
  crashed: boolean;
  steps: Step[];
}

async function stored(t: Target): Promise<number | null> {
  return t.metrics ? metricSum(await t.metrics(), "hub_readings_stored_total") : null;
}

export async function runStep(t: Target, fleet: LoadFleet, rate: number, attempt: number): Promise<Step> {
  t.sink.reset();
  await t.lag(); // resets the event-loop histogram: the next read covers this step only
  const stored0 = await stored(t);
  const cpu0 = readCpuSeconds(t.pid);
  const r: FleetRun = await fleet.run(rate, STEP_MS, DRAIN_MS);
  const serverCores = (readCpuSeconds(t.pid) - cpu0) / ((r.elapsedMs + DRAIN_MS) / 1000);
  const delivered = await settle(() => t.sink.count, r.sent, 3000);
  const alive = t.child.alive;
  const lag = alive ? await t.lag().catch(() => null) : null;
  const stored1 = alive ? await stored(t).catch(() => null) : null;
  const storedDelta = stored0 !== null && stored1 !== null ? stored1 - stored0 : null;
  const offered = r.sent / (r.elapsedMs / 1000);
  const why: string[] = [];
  const harnessLimited = offered < 0.97 * rate && r.blocked === 0;
  if (!alive) why.push(`${t.name} process died (exit ${String(t.child.exitCode)})`);
  if (harnessLimited) why.push(`generator offered only ${Math.round(offered)}/s`);
  if (r.blocked > 0) why.push(`${r.blocked} sends blocked by TCP back-pressure`);
  if (r.closed > 0 || r.notConnected > 0) why.push(`${r.closed} connections closed`);
  if (r.acked < r.sent) why.push(`${r.sent - r.acked} not acked within ${DRAIN_MS} ms`);
  // Messages sent in the last ack-delay of the window may still wait for their commit when it closes.
  const ackDelayMs = t.name === "hub" ? HUB_ACK_DELAY_MS : 0;
  const dueInWindow = r.sent * Math.max(0, 1 - ackDelayMs / r.elapsedMs);
  if (r.ackedInWindow < 0.95 * dueInWindow) why.push(`only ${((100 * r.ackedInWindow) / Math.max(1, r.sent)).toFixed(1)} % acked within the window`);
  if (delivered < r.sent) why.push(`${r.sent - delivered} not delivered to the consumer`);
  if (storedDelta !== null && storedDelta < r.sent) why.push(`${r.sent - storedDelta} not stored`);
  if (lag && lag.p99Ms >= LAG_LIMIT_MS) why.push(`event-loop p99 ${lag.p99Ms.toFixed(0)} ms`);
  const ack = r.ackLatency.summary();
  return {
    rate,
    attempt,
    offered: Math.round(offered),
    sent: r.sent,
    acked: r.acked,
    ackedInWindow: r.ackedInWindow,
    delivered,
    stored: storedDelta,
    blocked: r.blocked,
    closed: r.closed,
    lagP99Ms: lag ? round(lag.p99Ms) : null,
    lagMaxMs: lag ? round(lag.maxMs) : null,
    ackP50Ms: round(ack.p50),
    ackP99Ms: round(ack.p99),
    deliveryP99Ms: round(t.sink.latency.percentile(99)),
    serverCores: round(serverCores),
    generatorCores: round(r.cpuCores),
    rssMB: round((readMem(t.pid)?.rss ?? NaN) / 2 ** 20),
    pass: why.length === 0,
    harnessLimited,
    why,
  };
}

const round = (x: number) => Math.round(x * 100) / 100;

export async function findCapacity(t: Target, fleet: LoadFleet, log: (s: string) => void, ladder = LADDER): Promise<CapacityResult> {
  const steps: Step[] = [];
  let capacity = 0;
  let harnessLimited = false;
  for (const rate of ladder) {
    let step = await runStep(t, fleet, rate, 1);
    steps.push(step);
    log(describe(t.name, step));
    if (!step.pass && !step.harnessLimited && t.child.alive) {
      await sleep(1500);
      step = await runStep(t, fleet, rate, 2);
      steps.push(step);
      log(describe(t.name, step));
    }
    if (!step.pass) {
      harnessLimited = step.harnessLimited;
      break;
    }
    capacity = rate;
    await sleep(1000);
  }
  return { target: t.name, capacity, harnessLimited, crashed: !t.child.alive, steps };
}

export function describe(name: string, s: Step): string {
  const lag = s.lagP99Ms === null ? "" : ` lag p99 ${s.lagP99Ms} ms`;
  return `    ${name} ${String(s.rate).padStart(6)}/s #${s.attempt}: ${s.pass ? "ok  " : "FAIL"} sent ${s.sent} acked ${s.acked} delivered ${s.delivered}${s.stored === null ? "" : ` stored ${s.stored}`}; ack p99 ${s.ackP99Ms} ms;${lag}; cpu server ${s.serverCores} gen ${s.generatorCores}${s.why.length ? ` — ${s.why.join("; ")}` : ""}`;
}
