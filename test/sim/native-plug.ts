// A native smartplug/v1 plug (PROTOCOLS.md §1) as a real MQTT client, replaying an appliance trace.
import { connect, type MqttClient } from "mqtt";
import {
  DEFAULT_FIRMWARE,
  OFFLINE_STATUS,
  applyCommand,
  buildOnlineStatus,
  buildTelemetry,
  createRng,
  nativeTopics,
  parseConfig,
  parseControl,
  sampleVoltage,
} from "./native-payloads.js";
import { powerAt, type Trace } from "./traces.js";

export interface NativePlugOptions {
  url: string; // mqtt://127.0.0.1:1883
  deviceId: string; // client id = username = deviceId
  password: string; // the pairing code
  trace?: Trace; // power shape; if absent, a constant CONSTANT_LOAD_W
  intervalMs?: number; // telemetry cadence, ms; default 1000
  qos?: 0 | 1; // telemetry QoS, default 1
  keepaliveSec?: number; // default 30: the broker drops a silent plug after 1.5×
  firmware?: string; // default "1.0.0"
  startRelay?: boolean; // default true
  timeOffsetSec?: number; // where in the trace day to start, s; default: now's seconds since local midnight
  energyWh?: number; // starting energy counter, Wh; default 0
  now?: () => number; // clock, ms since epoch; default Date.now
  reconnect?: boolean; // default true (reconnect every 1000 ms); false for tests
}

export interface NativePlug {
  readonly deviceId: string;
  readonly relayOn: boolean;
  /** Energy counter (Wh) as of the last reading or relay change. */
  readonly energyWh: number;
  readonly sent: number;
  readonly acked: number;
  /** Whether the MQTT link is up right now (for the CLI summary). */
  readonly isConnected: boolean;
  /** Resolves once the first session is up: CONNACK, subscriptions acknowledged, online status sent. Rejects on a CONNACK error. */
  connected(): Promise<void>;
  publishReading(): Promise<void>;
  reboot(): Promise<void>;
  kill(): void;
  close(): Promise<void>;
}

export const CONSTANT_LOAD_W = 60;
const RECONNECT_PERIOD_MS = 1000;
const CLOSE_TIMEOUT_MS = 3000;

function secondsSinceLocalMidnight(ms: number): number {
  const d = new Date(ms);
  return d.getHours() * 3600 + d.getMinutes() * 60 + d.getSeconds() + d.getMilliseconds() / 1000;
}

export function startNativePlug(opts: NativePlugOptions): NativePlug {
  const now = opts.now ?? Date.now;
  const qos = opts.qos ?? 1;
  const firmware = opts.firmware ?? DEFAULT_FIRMWARE;
  const reconnect = opts.reconnect ?? true;
  const topics = nativeTopics(opts.deviceId);
  const rng = createRng(opts.deviceId);
  const startMs = now();
  const timeOffsetSec = opts.timeOffsetSec ?? secondsSinceLocalMidnight(startMs);

  let relayOn = opts.startRelay ?? true;
  let energyWh = opts.energyWh ?? 0;
  let intervalMs = opts.intervalMs ?? 1000;
  let sent = 0;
  let acked = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  // Energy is the trapezoid of load power between consecutive observations; relay changes observe
  // before and after switching so a switch never smears power across the edge.
  const loadPower = (ms: number): number => {
    if (!relayOn) return 0;
    return opts.trace ? powerAt(opts.trace, timeOffsetSec + (ms - startMs) / 1000) : CONSTANT_LOAD_W;
  };
  let lastMs = startMs;
  let lastPower = loadPower(startMs);
  const advance = (ms: number): number => {
    const p = loadPower(ms);
    const dtMs = Math.max(0, ms - lastMs); // a clock stepping back must not drain the counter
    energyWh += ((lastPower + p) / 2) * (dtMs / 3_600_000);
    lastMs = ms;
    lastPower = p;
    return p;
  };

  const publish = (client: MqttClient, topic: string, body: object, pubQos: 0 | 1, retain: boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      client.publish(topic, JSON.stringify(body), { qos: pubQos, retain }, (err) => (err ? reject(err) : resolve()));
    });

  const publishReading = async (): Promise<void> => {
    const nowMs = now();
    const power = advance(nowMs);
    const payload = buildTelemetry({ power, voltage: sampleVoltage(rng), relayOn, energyWh }, nowMs);
    sent++;
    await publish(client, topics.telemetry, payload, qos, false);
    if (qos === 1) acked++;
  };

  const tick = (): void => {
    // A real plug keeps metering while offline but does not queue readings for later.
    if (!client.connected) {
      advance(now());
      return;
    }
    publishReading().catch(() => undefined); // a reading lost to a dropped link is what real plugs do
  };

  const startTimer = (): void => {
    if (timer) clearInterval(timer);
    timer = setInterval(tick, intervalMs);
    // unref: a forgotten plug must not keep a test runner alive; the CLI keeps its own ref'd timer.
    timer.unref();
  };

  const onControl = (c: MqttClient, payload: Buffer): void => {
    const msg = parseControl(payload);
    if (!msg) return;
    advance(now());
    relayOn = applyCommand(relayOn, msg.command);
    lastPower = loadPower(lastMs);
    // Retained so a hub that restarts sees the current relay state; the echoed id lets it confirm the command.
    publish(c, topics.status, buildOnlineStatus(relayOn, firmware, msg.id), 1, true).catch(() => undefined);
    publishReading().catch(() => undefined);
  };

  const onConfig = (payload: Buffer): void => {
    const { intervalMs: next } = parseConfig(payload);
    if (next === undefined || next === intervalMs) return;
    intervalMs = next;
    startTimer();
  };

  // Subscribe first and announce "online" only after SUBACK, so a hub reacting to the status with a
  // command cannot race the subscription.
  const setUpSession = async (c: MqttClient): Promise<void> => {
    await c.subscribeAsync({ [topics.control]: { qos: 1 }, [topics.config]: { qos: 1 } });
    await publish(c, topics.status, buildOnlineStatus(relayOn, firmware), 1, true);
    if (!timer && !stopped) startTimer();
  };

  /** One MQTT session; a reboot creates a new one, as real firmware would. Resolves when the first session is up. */
  const open = (): { client: MqttClient; ready: Promise<void> } => {
    const c = connect(opts.url, {
      clientId: opts.deviceId,
      username: opts.deviceId,
      password: opts.password,
      protocolVersion: 4,
      clean: true,
      keepalive: opts.keepaliveSec ?? 30,
      reconnectPeriod: reconnect ? RECONNECT_PERIOD_MS : 0,
      resubscribe: false, // setUpSession subscribes on every CONNACK
      will: { topic: topics.status, payload: Buffer.from(JSON.stringify(OFFLINE_STATUS)), qos: 1, retain: true },
    });
    const ready = new Promise<void>((resolve, reject) => {
      let first = true;
      c.on("connect", () => {
        setUpSession(c).then(
          () => {
            if (first) resolve();
            first = false;
          },
          (err: unknown) => {
            if (first) reject(err instanceof Error ? err : new Error(String(err)));
            first = false;
          },
        );
      });
      // mqtt.js sets a numeric `code` on CONNACK refusals; socket errors (string codes) are retried.
      c.on("error", (err: Error & { code?: unknown }) => {
        if (first && typeof err.code === "number") {
          first = false;
          reject(err);
        }
      });
      c.on("close", () => {
        if (first && !reconnect) {
          first = false;
          reject(new Error("connection closed before CONNACK"));
        }
      });
    });
    ready.catch(() => undefined); // callers who never await connected() must not see an unhandled rejection
    c.on("message", (topic, payload) => {
      if (topic === topics.control) onControl(c, payload);
      else if (topic === topics.config) onConfig(payload);
    });
    return { client: c, ready };
  };

  let session = open();
  let client = session.client;
  const firstReady = session.ready;

  const destroy = (c: MqttClient): Promise<void> =>
    new Promise((resolve) => {
      c.end(true, () => resolve()); // force: the socket is destroyed without DISCONNECT, so the will fires
    });

  return {
    deviceId: opts.deviceId,
    get relayOn() {
      return relayOn;
    },
    get energyWh() {
      return energyWh;
    },
    get sent() {
      return sent;
    },
    get acked() {
      return acked;
    },
    get isConnected() {
      return client.connected;
    },
    connected: () => firstReady,
    publishReading,
    async reboot() {
      await destroy(client);
      // Like real plugs (Shelly Gen1, native firmware) the counter lives in RAM and restarts at zero.
      energyWh = 0;
      lastMs = now();
      lastPower = loadPower(lastMs);
      session = open();
      client = session.client;
      await session.ready;
    },
    kill() {
      stopped = true;
      if (timer) clearInterval(timer);
      void destroy(client);
    },
    async close() {
      stopped = true;
      if (timer) clearInterval(timer);
      const c = client;
      if (!c.connected) {
        await destroy(c);
        return;
      }
      // A clean DISCONNECT discards the will, so say "offline" ourselves, as Tasmota and Shelly do on shutdown.
      const graceful = publish(c, topics.status, OFFLINE_STATUS, 1, true)
        .catch(() => undefined)
        .then(() => c.endAsync(false));
      let timeout: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timeout = setTimeout(() => {
          c.stream?.destroy(); // broker unresponsive: give up on the DISCONNECT handshake
          resolve();
        }, CLOSE_TIMEOUT_MS);
      });
      await Promise.race([graceful, late]);
      clearTimeout(timeout);
    },
  };
}
