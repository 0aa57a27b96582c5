// Figure: overload (RELIABILITY fact 7). The hub at its shipped global budget (HUB_MQTT_GLOBAL_MSG_RATE
// default) is offered 5× and 20× its measured capacity by 1,000 plugs. It must stay up, keep RSS ≤ 300 MB,
// and account for every message: each one written by a plug is either acknowledged (and then stored) or
// counted in hub_mqtt_shed_total / hub_messages_dropped_total. Bare aedes gets the same offered load as
// the reference line (it is known to die near 20k msg/s QoS 1).
import type { LoadFleet, Target } from "./targets.js";
import { settle } from "./targets.js";
import { metricByLabel, metricSum, type PromSample } from "./stats.js";
import { RssSampler, sleep } from "./procs.js";

export const OVERLOAD_MS = 10_000;
export const RSS_LIMIT = 300 * 2 ** 20;
/** PUBLISH packets per socket write: plugs at 50–200 Hz would coalesce in TCP anyway; keeps generator syscalls affordable. */
export const OVERLOAD_BATCH = 10;
/** Upper bound on waiting for the server's backlog after the plugs stop. */
export const SETTLE_MAX_MS = 30_000;

export interface OverloadStep {
  target: string;
  multiple: number;
  rate: number;
  offered: number;
  sent: number;
  /** PUBACKs received for this step's messages, including those that arrived while the backlog drained. */
  acked: number;
  /** …of which during the run and its 1 s drain. */
  ackedInRun: number;
  blocked: number;
  closed: number;
  stored: number | null;
  shed: Record<string, number> | null;
  dropped: Record<string, number> | null;
  /** sent − stored − shed − dropped: messages that vanished without being counted (hub only). */
  unaccounted: number | null;
  /** acked − stored: acknowledged but not on disk (hub only; must be 0). */
  ackedNotStored: number | null;
  /** How long the server took, after the plugs stopped, to work off what they had written. */
  backlogDrainMs: number;
  rssMaxMB: number;
  lagP99Ms: number | null;
  lagMaxMs: number | null;
  alive: boolean;
  healthStatus: number | null;
  ackedPerSec: number;
  generatorCores: number;
  pass: boolean | null;
  why: string[];
}

const sum = (r: Record<string, number> | null) => (r ? Object.values(r).reduce((a, b) => a + b, 0) : 0);
const diff = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k]! - (b[k] ?? 0)]).filter(([, v]) => (v as number) > 0));

export async function overloadStep(t: Target, fleet: LoadFleet, multiple: number, capacity: number): Promise<OverloadStep> {
  const rate = multiple * capacity;
  const snap = async (): Promise<PromSample[] | null> => (t.metrics && t.child.alive ? t.metrics().catch(() => null) : null);
  const m0 = await snap();
  await t.lag().catch(() => null); // each read resets the event-loop histogram: the next one covers the run
  const acked0 = (await fleet.stats()).acked;
  const rss = new RssSampler(t.pid, 100);
  const r = await fleet.run(rate, OVERLOAD_MS, 1000, { batch: OVERLOAD_BATCH, maxQueuedBytes: 64 * 1024 });
  const lag = t.child.alive ? await t.lag().catch(() => null) : null;
  // The server still has a backlog in its socket buffers and queues: wait until it has read, shed or
  // stored everything (two quiet polls in a row), so each message written is in exactly one count.
  let settledMs = 0;
  const settleStart = Date.now();
  if (t.metrics) {
    let last = -1;
    let quiet = 0;
    while (t.child.alive && Date.now() - settleStart < SETTLE_MAX_MS && quiet < 2) {
      await sleep(300);
      const m = await snap();
      if (!m) break;
      const seen = metricSum(m, "hub_mqtt_shed_total") + metricSum(m, "hub_readings_stored_total") + metricSum(m, "hub_messages_dropped_total");
      quiet = seen === last ? quiet + 1 : 0;
      last = seen;
    }
  } else {
    await settle(() => t.sink.count, r.sent, 5000);
  }
  settledMs = Date.now() - settleStart;
  const ackedTotal = (await fleet.stats().catch(() => ({ acked: acked0 + r.acked }))).acked - acked0;
  rss.stop();
  const alive = t.child.alive;
  const m1 = await snap();
  let healthStatus: number | null = null;
  if (t.api && alive) healthStatus = await t.api("/health").then((res) => res.status, () => null);
  const hub = t.name === "hub" && m0 && m1;
  const shed = hub ? diff(metricByLabel(m1, "hub_mqtt_shed_total", "reason"), metricByLabel(m0, "hub_mqtt_shed_total", "reason")) : null;
  const dropped = hub ? diff(metricByLabel(m1, "hub_messages_dropped_total", "reason"), metricByLabel(m0, "hub_messages_dropped_total", "reason")) : null;
  const stored = hub ? metricSum(m1, "hub_readings_stored_total") - metricSum(m0, "hub_readings_stored_total") : null;
  // Every valid reading admitted past the guard is stored (and acked); everything else must be counted.
  const unaccounted = hub && stored !== null ? r.sent - stored - sum(shed) - sum(dropped) : null;
  const ackedNotStored = hub && stored !== null ? ackedTotal - stored : null;
  const why: string[] = [];
  if (!alive) why.push(`process died (exit ${String(t.child.exitCode)})`);
  if (rss.max > RSS_LIMIT) why.push(`RSS ${(rss.max / 2 ** 20).toFixed(0)} MB > ${RSS_LIMIT / 2 ** 20} MB`);
  if (unaccounted !== null && unaccounted !== 0) why.push(`${unaccounted} messages neither stored nor counted as shed/dropped`);
  if (ackedNotStored !== null && ackedNotStored > 0) why.push(`${ackedNotStored} acked but not stored`);
  if (t.api && healthStatus !== 200) why.push(`/health answered ${String(healthStatus)}`);
  return {
    target: t.name,
    multiple,
    rate,
    offered: Math.round(r.sent / (r.elapsedMs / 1000)),
    sent: r.sent,
    acked: ackedTotal,
    ackedInRun: r.acked,
    blocked: r.blocked,
    closed: r.closed,
    stored,
    shed,
    dropped,
    unaccounted,
    ackedNotStored,
    backlogDrainMs: settledMs,
    rssMaxMB: Math.round((rss.max / 2 ** 20) * 10) / 10,
    lagP99Ms: lag ? Math.round(lag.p99Ms * 10) / 10 : null,
    lagMaxMs: lag ? Math.round(lag.maxMs * 10) / 10 : null,
    alive,
    healthStatus,
    ackedPerSec: Math.round(r.acked / ((r.elapsedMs + 1000) / 1000)),
    generatorCores: Math.round(r.cpuCores * 100) / 100,
    pass: t.name === "hub" ? why.length === 0 : null,
    why,
  };
}

export function describeOverload(s: OverloadStep): string {
  const acct = s.unaccounted === null ? "" : ` shed ${sum(s.shed)} ${JSON.stringify(s.shed)} dropped ${sum(s.dropped)} unaccounted ${s.unaccounted} acked-not-stored ${s.ackedNotStored};`;
  return `    ${s.target} ${s.multiple}× (${s.rate}/s): offered ${s.offered}/s sent ${s.sent} acked ${s.acked} (${s.ackedPerSec}/s during the run) blocked ${s.blocked};${acct} backlog drained in ${s.backlogDrainMs} ms; RSS max ${s.rssMaxMB} MB; lag p99 ${s.lagP99Ms ?? "–"} ms; ${s.alive ? "alive" : "DEAD"}${s.why.length ? ` — ${s.why.join("; ")}` : ""}`;
}
