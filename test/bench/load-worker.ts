// A load-generator process: many plugs, driven over IPC by the orchestrator (test/bench/run.ts).
//   client "raw":    hand-framed MQTT (mqtt-wire.ts), one TCP connection per plug; open-loop QoS 1
//                    telemetry at a fixed aggregate rate, PUBACK latency recorded. For capacity,
//                    overload and disk: cheap enough per message not to starve the broker of CPU.
//   client "mqttjs": the same schedule through mqtt.js clients (cross-check of the raw generator).
//   client "sim":    the project's plug simulator (test/sim/native-plug.ts): 1 Hz telemetry, obeys and
//                    echoes commands. For latency, command round trip and memory.
// Every loop here ends by itself: a run stops after its duration, and the worker exits when the
// orchestrator goes away.
import { connect as netConnect, type Socket } from "node:net";
import mqtt, { type MqttClient } from "mqtt";
import { buildTelemetry, createRng, sampleVoltage } from "../sim/native-payloads.js";
import { startNativePlug, type NativePlug } from "../sim/native-plug.js";
import { DISCONNECT, PACKET, PINGREQ, PacketReader, encodeConnect, encodePublishQos1 } from "./mqtt-wire.js";
import { LogHistogram } from "./stats.js";
import { clientSocketsNoDelay } from "./no-delay.js";

clientSocketsNoDelay();

export interface PlugSpec {
  id: string;
  code: string;
}

export type ClientKind = "raw" | "mqttjs" | "sim";

export interface ConnectRequest {
  type: "connect";
  port: number;
  plugs: PlugSpec[];
  client: ClientKind;
  concurrency?: number;
}

export interface RunRequest {
  type: "run";
  /** Messages per second for this worker (spread round-robin over its plugs). */
  rate: number;
  durationMs: number;
  /** After the last send, wait up to this long for outstanding PUBACKs. */
  drainMs: number;
  /** Skip a send while this many bytes are queued on the plug's socket (raw): TCP back-pressure. */
  maxQueuedBytes?: number;
  /**
   * Raw only: PUBLISH packets a plug writes per socket write (default 1, as a plug does). Overload runs
   * use more, so the generator's syscalls do not cap the offered load below what the hub must shed.
   */
  batch?: number;
}

export interface RunResult {
  sent: number;
  acked: number;
  ackedInWindow: number;
  blocked: number;
  notConnected: number;
  elapsedMs: number;
  cpuSec: number;
  ackLatency: ReturnType<LogHistogram["toJSON"]>;
  closed: number;
}

const KEEPALIVE_S = 120;
const PING_EVERY_MS = 30_000;

interface Plug {
  id: string;
  topic: Buffer;
  topicStr: string;
  rng: () => number;
  powerW: number;
  energyWh: number;
  lastTs: number;
  socket?: Socket;
  client?: MqttClient;
  connected: boolean;
}

let plugs: Plug[] = [];
let sims: NativePlug[] = [];
let closedCount = 0;
let acked = 0;
const ackLatency = { hist: new LogHistogram() };
const sentAt = new Float64Array(65536);
let nextId = 0;
let pingTimer: NodeJS.Timeout | undefined;

function makePlug(p: PlugSpec): Plug {
  const rng = createRng(p.id);
  const topicStr = `smartplug/${p.id}/telemetry`;
  return { id: p.id, topic: Buffer.from(topicStr), topicStr, rng, powerW: 5 + Math.round(rng() * 2000), energyWh: rng() * 5000, lastTs: 0, connected: false };
}

/** The plug's next reading, as the simulator builds it (PROTOCOLS.md §1); timestamps strictly increase per plug. */
function nextPayload(p: Plug): string {
  const ts = Math.max(Date.now(), p.lastTs + 1);
  const dt = p.lastTs ? ts - p.lastTs : 0;
  p.lastTs = ts;
  const power = p.powerW * (0.97 + p.rng() * 0.06);
  p.energyWh += (power * dt) / 3_600_000;
  return JSON.stringify(buildTelemetry({ power, voltage: sampleVoltage(p.rng), relayOn: true, energyWh: p.energyWh }, ts));
}

function onAck(packetId: number) {
  acked++;
  const t = sentAt[packetId]!;
  if (t > 0) ackLatency.hist.record(performance.now() - t);
}

function connectRaw(p: Plug, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host: "127.0.0.1", noDelay: true });
    const reader = new PacketReader();
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      s.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error(`${p.id}: no CONNACK in 10 s`)), 10_000);
    s.once("connect", () =>
      s.write(
        encodeConnect({
          clientId: p.id,
          username: p.id,
          password: codes.get(p.id),
          keepaliveSec: KEEPALIVE_S,
          will: { topic: `smartplug/${p.id}/status`, payload: '{"status":"offline"}', qos: 1, retain: true },
        }),
      ),
    );
    s.on("data", (chunk: Buffer) =>
      reader.push(chunk, (type, _flags, buf, start) => {
        if (type === PACKET.PUBACK) onAck(buf.readUInt16BE(start));
        else if (type === PACKET.CONNACK && !settled) {
          clearTimeout(timer);
          const rc = buf[start + 1]!;
          if (rc !== 0) return fail(new Error(`${p.id}: CONNACK ${rc}`));
          settled = true;
          p.socket = s;
          p.connected = true;
          resolve();
        }
      }),
    );
    s.on("error", (e) => fail(e));
    s.on("close", () => {
      clearTimeout(timer);
      if (p.connected) closedCount++;
      p.connected = false;
      fail(new Error(`${p.id}: closed before CONNACK`));
    });
  });
}

function connectMqttjs(p: Plug, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: p.id,
      username: p.id,
      password: codes.get(p.id),
      protocolVersion: 4,
      keepalive: KEEPALIVE_S,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      will: { topic: `smartplug/${p.id}/status`, payload: Buffer.from('{"status":"offline"}'), qos: 1, retain: true },
    });
    c.once("connect", () => {
      p.client = c;
      p.connected = true;
      resolve();
    });
    c.once("error", (e) => {
      c.end(true);
      reject(e);
    });
    c.on("close", () => {
      if (p.connected) closedCount++;
      p.connected = false;
      reject(new Error(`${p.id}: closed before CONNACK`));
    });
  });
}

const codes = new Map<string, string>();

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<number> {
  let i = 0;
  let failed = 0;
  const lane = async () => {
    while (i < items.length) {
      const x = items[i++]!;
      try {
        await fn(x);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: n }, lane));
  return failed;
}

let kind: ClientKind = "raw";

async function handleConnect(m: ConnectRequest) {
  kind = m.client;
  for (const p of m.plugs) codes.set(p.id, p.code);
  const conc = m.concurrency ?? 20;
  if (kind === "sim") {
    let failed = 0;
    await pool(m.plugs, conc, async (spec) => {
      const plug = startNativePlug({ url: `mqtt://127.0.0.1:${m.port}`, deviceId: spec.id, password: spec.code, reconnect: false, intervalMs: 1000 });
      try {
        await plug.connected();
        sims.push(plug);
      } catch (e) {
        failed++;
        plug.kill();
        throw e;
      }
    });
    return { connected: sims.length, failed };
  }
  plugs = m.plugs.map(makePlug);
  const failed = await pool(plugs, conc, (p) => (kind === "raw" ? connectRaw(p, m.port) : connectMqttjs(p, m.port)));
  if (kind === "raw") {
    pingTimer = setInterval(() => {
      for (const p of plugs) if (p.connected && p.socket && p.socket.writableLength === 0) p.socket.write(PINGREQ);
    }, PING_EVERY_MS);
  }
  return { connected: plugs.filter((p) => p.connected).length, failed };
}

function send(p: Plug, maxQueued: number, batch: number): "sent" | "blocked" | "down" {
  if (!p.connected) return "down";
  if (kind === "raw") {
    const s = p.socket!;
    if (s.writableLength > maxQueued) return "blocked";
    const now = performance.now();
    if (batch === 1) {
      nextId = (nextId % 65535) + 1;
      sentAt[nextId] = now;
      s.write(encodePublishQos1(p.topic, nextId, nextPayload(p)));
      return "sent";
    }
    const packets: Buffer[] = [];
    for (let k = 0; k < batch; k++) {
      nextId = (nextId % 65535) + 1;
      sentAt[nextId] = now;
      packets.push(encodePublishQos1(p.topic, nextId, nextPayload(p)));
    }
    s.write(Buffer.concat(packets));
    return "sent";
  }
  const t0 = performance.now();
  p.client!.publish(p.topicStr, nextPayload(p), { qos: 1 }, (err) => {
    if (err) return;
    acked++;
    ackLatency.hist.record(performance.now() - t0);
  });
  return "sent";
}

async function handleRun(m: RunRequest): Promise<RunResult> {
  const maxQueued = m.maxQueuedBytes ?? 256 * 1024;
  const batch = kind === "raw" ? Math.max(1, m.batch ?? 1) : 1;
  ackLatency.hist = new LogHistogram();
  const ack0 = acked;
  const closed0 = closedCount;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let scheduled = 0;
  let sent = 0;
  let blocked = 0;
  let down = 0;
  let rr = 0;
  const n = plugs.length;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - start;
      const until = Math.min(elapsed, m.durationMs);
      // Open loop: what should have been sent by now, capped so a stalled worker does not burst 100 ms of load at once.
      let due = Math.floor((until * m.rate) / 1000) - scheduled;
      due = Math.min(due, Math.max(batch, Math.ceil(m.rate / 10)));
      for (let k = 0; k + batch <= due && n > 0; k += batch) {
        const r = send(plugs[rr++ % n]!, maxQueued, batch);
        scheduled += batch;
        if (r === "sent") sent += batch;
        else if (r === "blocked") blocked += batch;
        else down += batch;
      }
      if (elapsed >= m.durationMs) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, 2);
  });
  const elapsedMs = performance.now() - start;
  const ackedInWindow = acked - ack0;
  const drainEnd = performance.now() + m.drainMs;
  while (acked - ack0 < sent && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 20));
  const cpu = process.cpuUsage(cpu0);
  return {
    sent,
    acked: acked - ack0,
    ackedInWindow,
    blocked,
    notConnected: down,
    elapsedMs,
    cpuSec: (cpu.user + cpu.system) / 1e6,
    ackLatency: ackLatency.hist.toJSON(),
    closed: closedCount - closed0,
  };
}

async function handleStop() {
  if (pingTimer) clearInterval(pingTimer);
  await Promise.all(sims.map((s) => s.close().catch(() => undefined)));
  for (const p of plugs) {
    if (p.socket) {
      p.connected = false;
      p.socket.end(DISCONNECT);
    }
    if (p.client) {
      p.connected = false;
      p.client.end(false);
    }
  }
  sims = [];
  setTimeout(() => process.exit(0), 300);
}

process.on("message", (m: { type: string; rid?: number }) => {
  const reply = (body: object) => process.send?.({ rid: m.rid, ...body });
  const fail = (e: unknown) => process.send?.({ rid: m.rid, error: e instanceof Error ? e.message : String(e) });
  if (m.type === "connect") handleConnect(m as unknown as ConnectRequest).then(reply, fail);
  else if (m.type === "run") handleRun(m as unknown as RunRequest).then(reply, fail);
  else if (m.type === "stats") reply({ sent: sims.reduce((a, s) => a + s.sent, 0), acked: sims.reduce((a, s) => a + s.acked, 0) + acked, closed: closedCount, connected: sims.filter((s) => s.isConnected).length + plugs.filter((p) => p.connected).length });
  else if (m.type === "stop") handleStop().then(() => reply({}), fail);
});
process.on("disconnect", () => process.exit(0));
process.send?.({ type: "ready" });
