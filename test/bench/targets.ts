// The three systems the bench measures, behind one shape: the hub (end to end to a WebSocket client),
// bare aedes and Mosquitto (each forwarding to one MQTT subscriber to `#`). Plus the load fleet
// (forked load-worker processes) and the sinks that count what comes out the other end.
import WebSocket from "ws";
import mqtt, { type MqttClient } from "mqtt";
import { Child, forkBundle, forkTs, freePort, spawnHubBundle, startMosquitto, tempDir, sleep } from "./procs.js";
import { LogHistogram, metricSum, parsePrometheus, type PromSample } from "./stats.js";
import type { ClientKind, PlugSpec, RunResult } from "./load-worker.js";

export type TargetName = "hub" | "aedes" | "mosquitto";

/** Counts readings arriving at the consumer end and their age (receive time − the plug's timestamp). */
export interface Sink {
  count: number;
  latency: LogHistogram;
  reset(): void;
  close(): Promise<void>;
}

export interface Target {
  name: TargetName;
  pid: number;
  mqttPort: number;
  plugs: PlugSpec[];
  sink: Sink;
  /** Event-loop delay since the previous call (the call resets it), ms; null where not applicable. */
  lag(): Promise<{ p99Ms: number; maxMs: number } | null>;
  /** Hub only: its /metrics. */
  metrics?(): Promise<PromSample[]>;
  /** Hub only: REST with the owner's token. */
  api?(path: string, init?: { method?: string; body?: unknown }): Promise<Response>;
  /** Hub only: its data directory. */
  dataDir?: string;
  child: Child;
  stop(): Promise<void>;
}

const ageMs = (iso: unknown, now: number) => (typeof iso === "string" ? now - Date.parse(iso) : NaN);

class WsSink implements Sink {
  count = 0;
  latency = new LogHistogram();
  other = 0;
  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const now = Date.now();
      const m = JSON.parse(data.toString()) as { type?: string; timestamp?: string };
      if (m.type !== "reading") {
        this.other++;
        return;
      }
      this.count++;
      this.latency.record(ageMs(m.timestamp, now));
    });
  }
  static async open(httpPort: number, token: string): Promise<WsSink> {
    const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/ws`, { headers: { authorization: `Bearer ${token}` } });
    const sink = new WsSink(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("error", reject);
      ws.on("message", function first(data) {
        const m = JSON.parse(data.toString()) as { type?: string };
        if (m.type === "subscribed") {
          ws.off("message", first);
          resolve();
        }
      });
      ws.once("open", () => ws.send(JSON.stringify({ type: "subscribe", device_ids: "*" })));
    });
    ws.on("close", (code, reason) => {
      if (code !== 1000 && code !== 1001 && code !== 1005) console.error(`  ! hub closed the WebSocket sink: ${code} ${reason.toString()}`);
    });
    return sink;
  }
  reset() {
    this.count = 0;
    this.latency = new LogHistogram();
  }
  close() {
    this.ws.close();
    return Promise.resolve();
  }
}

class MqttSink implements Sink {
  count = 0;
  latency = new LogHistogram();
  private constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload) => {
      if (!topic.endsWith("/telemetry")) return;
      const now = Date.now();
      this.count++;
      this.latency.record(ageMs((JSON.parse(payload.toString()) as { timestamp?: string }).timestamp, now));
    });
  }
  /** QoS 0 subscription: the hub's WebSocket is at-most-once too (a slow client is dropped, not buffered). */
  static async open(port: number): Promise<MqttSink> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `bench-sink-${process.pid}`, protocolVersion: 4, reconnectPeriod: 0, keepalive: 120 });
    await client.subscribeAsync("#", { qos: 0 });
    return new MqttSink(client);
  }
  reset() {
    this.count = 0;
    this.latency = new LogHistogram();
  }
  close() {
    return this.client.endAsync(true);
  }
}

export function plugSpecs(n: number, prefix = "plug"): PlugSpec[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${String(i).padStart(4, "0")}`, code: `pair-${prefix}-${i}-code` }));
}

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

export const BENCH_OWNER = { email: "bench@example.com", password: "bench owner password" };

/**
 * Starts the hub on fresh data, registers an owner, pairs `plugs` native plugs through the REST API and
 * opens the WebSocket sink subscribed to every device. With production hashing (`fastHash: false`) it is
 * the shipped artifact itself, dist/hub/main.mjs under plain node as systemd runs it, on ports chosen
 * here and ready when /health answers. With `fastHash: true` (1,000-plug runs, where pairing at the
 * production scrypt cost would take minutes of CPU) it is dist/bench/hub-child.mjs: the same wiring and
 * bundle options with the test scrypt cost.
 */
export async function startHubTarget(o: { plugs: number; env?: Record<string, string>; fastHash: boolean; dataDir?: string }): Promise<Target> {
  const dataDir = o.dataDir ?? tempDir("bench-hub-");
  const env = {
    HUB_DATA_DIR: dataDir,
    HUB_HTTP_HOST: "127.0.0.1",
    HUB_MQTT_HOST: "127.0.0.1",
    HUB_PUBLIC_HOST: "127.0.0.1",
    HUB_LOG_LEVEL: "warn",
    HUB_ACCESS_TOKEN_TTL_S: "3600",
    ...o.env,
  };
  let child: Child;
  let httpPort: number;
  let mqttPort: number;
  if (o.fastHash) {
    child = forkBundle("hub", "hub-child.mjs", { ...env, HUB_HTTP_PORT: "0", HUB_MQTT_PORT: "0", BENCH_FAST_HASH: "1" });
    const ready = await child.waitFor("ready", 60_000);
    httpPort = Number(ready.httpPort);
    mqttPort = Number(ready.mqttPort);
  } else {
    httpPort = await freePort();
    mqttPort = await freePort();
    child = spawnHubBundle({ ...env, HUB_HTTP_PORT: String(httpPort), HUB_MQTT_PORT: String(mqttPort) });
    await waitForHealth(child, httpPort, 60_000);
  }
  const base = `http://127.0.0.1:${httpPort}`;
  let token = "";
  const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(base + path, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: { ...(init.body === undefined ? {} : { "content-type": "application/json" }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
  const reg = await api("/auth/register", { body: BENCH_OWNER });
  if (reg.status !== 201) throw new Error(`register: ${reg.status} ${await reg.text()}`);
  const login = await api("/auth/login", { body: BENCH_OWNER });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`);
  token = ((await login.json()) as { access_token: string }).access_token;
  const plugs = plugSpecs(o.plugs);
  await pool(plugs, 8, async (p) => {
    const res = await api("/devices", { body: { device_id: p.id, name: `Bench ${p.id}`, pairing_code: p.code } });
    if (res.status !== 201) throw new Error(`pair ${p.id}: ${res.status} ${await res.text()}`);
  });
  const sink = await WsSink.open(httpPort, token);
  const metrics = async () => parsePrometheus(await (await fetch(`${base}/metrics`)).text());
  return {
    name: "hub",
    pid: child.pid,
    mqttPort,
    plugs,
    sink,
    child,
    dataDir,
    api,
    metrics,
    async lag() {
      const m = await metrics();
      return { p99Ms: metricSum(m, "hub_nodejs_eventloop_lag_p99_seconds") * 1000, maxMs: metricSum(m, "hub_nodejs_eventloop_lag_max_seconds") * 1000 };
    },
    async stop() {
      await sink.close();
      await child.stop();
    },
  };
}

/** Polls GET /health until the hub answers (any status: it is listening and wired). */
async function waitForHealth(child: Child, httpPort: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.alive) throw new Error(`hub exited before answering /health:\n${child.tail.text()}`);
    try {
      await fetch(`http://127.0.0.1:${httpPort}/health`, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`hub did not answer /health on ${httpPort} within ${timeoutMs} ms:\n${child.tail.text()}`);
}

export async function startAedesTarget(o: { plugs: number }): Promise<Target> {
  const child = forkBundle("aedes", "aedes-child.mjs", { BENCH_PORT: "0" });
  const ready = await child.waitFor("ready", 60_000);
  const mqttPort = Number(ready.port);
  const sink = await MqttSink.open(mqttPort);
  return {
    name: "aedes",
    pid: child.pid,
    mqttPort,
    plugs: plugSpecs(o.plugs),
    sink,
    child,
    async lag() {
      if (!child.alive) return null;
      const r = await child.request<{ p99Ms: number; maxMs: number }>({ type: "lag" }, 10_000);
      return { p99Ms: r.p99Ms, maxMs: r.maxMs };
    },
    async stop() {
      await sink.close().catch(() => undefined);
      await child.stop(3000);
    },
  };
}

/** null when the Mosquitto binary is absent (the caller prints why the reference line is skipped). */
export async function startMosquittoTarget(o: { plugs: number }): Promise<Target | null> {
  const port = await freePort();
  const child = await startMosquitto(port);
  if (!child) return null;
  const sink = await MqttSink.open(port);
  return {
    name: "mosquitto",
    pid: child.pid,
    mqttPort: port,
    plugs: plugSpecs(o.plugs),
    sink,
    child,
    lag: () => Promise.resolve(null),
    async stop() {
      await sink.close().catch(() => undefined);
      await child.stop(3000);
    },
  };
}

export async function startTarget(name: TargetName, o: { plugs: number; fastHash: boolean; env?: Record<string, string> }): Promise<Target | null> {
  if (name === "hub") return startHubTarget(o);
  if (name === "aedes") return startAedesTarget(o);
  return startMosquittoTarget(o);
}

export interface FleetRun {
  sent: number;
  acked: number;
  ackedInWindow: number;
  blocked: number;
  notConnected: number;
  closed: number;
  elapsedMs: number;
  /** Generator CPU, in cores (sum over workers of CPU seconds / elapsed seconds). */
  cpuCores: number;
  ackLatency: LogHistogram;
}

/** Load-worker processes sharing the plugs between them. */
export class LoadFleet {
  private constructor(readonly workers: Child[]) {}

  static async start(o: { workers: number; port: number; plugs: PlugSpec[]; client: ClientKind; concurrency?: number }): Promise<{ fleet: LoadFleet; connected: number; failed: number }> {
    const workers = Array.from({ length: o.workers }, (_, i) => forkTs(`load-${i}`, "load-worker.ts"));
    await Promise.all(workers.map((w) => w.waitFor("ready", 60_000)));
    const shares = workers.map((_, i) => o.plugs.filter((_p, k) => k % o.workers === i));
    const res = await Promise.all(
      workers.map((w, i) => w.request<{ connected: number; failed: number }>({ type: "connect", port: o.port, plugs: shares[i], client: o.client, concurrency: o.concurrency ?? 20 }, 300_000)),
    );
    return { fleet: new LoadFleet(workers), connected: res.reduce((a, r) => a + r.connected, 0), failed: res.reduce((a, r) => a + r.failed, 0) };
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Runs `totalRate` msg/s for `durationMs` across the workers, then waits up to `drainMs` for PUBACKs. */
  async run(totalRate: number, durationMs: number, drainMs: number, o: { maxQueuedBytes?: number; batch?: number } = {}): Promise<FleetRun> {
    const rs = await Promise.all(
      this.workers.map((w) => w.request<RunResult>({ type: "run", rate: totalRate / this.workers.length, durationMs, drainMs, ...o }, durationMs + drainMs + 60_000)),
    );
    const hist = new LogHistogram();
    for (const r of rs) hist.merge(r.ackLatency);
    const sum = (k: keyof RunResult) => rs.reduce((a, r) => a + (r[k] as number), 0);
    const elapsedMs = Math.max(...rs.map((r) => r.elapsedMs));
    return {
      sent: sum("sent"),
      acked: sum("acked"),
      ackedInWindow: sum("ackedInWindow"),
      blocked: sum("blocked"),
      notConnected: sum("notConnected"),
      closed: sum("closed"),
      elapsedMs,
      cpuCores: sum("cpuSec") / (elapsedMs / 1000),
      ackLatency: hist,
    };
  }

  async stats(): Promise<{ sent: number; acked: number; closed: number; connected: number }> {
    const rs = await Promise.all(this.workers.map((w) => w.request<{ sent: number; acked: number; closed: number; connected: number }>({ type: "stats" })));
    return rs.reduce((a, r) => ({ sent: a.sent + r.sent, acked: a.acked + r.acked, closed: a.closed + r.closed, connected: a.connected + r.connected }), { sent: 0, acked: 0, closed: 0, connected: 0 });
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request({ type: "stop" }, 15_000).catch(() => undefined)));
    await Promise.all(this.workers.map((w) => w.stop(3000)));
  }
}

/** Waits until `fn()` reaches `target` or stops changing for `quietMs`, at most `maxMs`. */
export async function settle(fn: () => number, target: number, maxMs: number, quietMs = 1000): Promise<number> {
  const end = Date.now() + maxMs;
  let last = fn();
  let lastChange = Date.now();
  while (Date.now() < end) {
    const v = fn();
    if (v >= target) return v;
    if (v !== last) {
      last = v;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > quietMs) return v;
    await sleep(25);
  }
  return fn();
}
