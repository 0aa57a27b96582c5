// Machinery every family simulator shares: the load curve and energy meter, and one MQTT "firmware"
// runner (boot, sessions, reconnect, periodic jobs, reboot, power cut, clean shutdown). A family supplies
// only its topics and payloads (see tasmota-plug.ts, shelly-gen1-plug.ts, shelly-gen2-plug.ts).
import { connect, type MqttClient } from "mqtt";
import { powerAt, type Trace } from "./traces.js";
import type { SimFamily, SimPlug } from "./sim-plug.js";

/** Load drawn when a plug has neither a trace nor a fixed load (the native simulator's value). */
export const DEFAULT_LOAD_W = 60;
const RECONNECT_PERIOD_MS = 1000;
const CLOSE_TIMEOUT_MS = 3000;

export function secondsSinceLocalMidnight(ms: number): number {
  const d = new Date(ms);
  return d.getHours() * 3600 + d.getMinutes() * 60 + d.getSeconds() + d.getMilliseconds() / 1000;
}

export interface LoadOptions {
  /** Power shape (tracebase appliance); ignored when `loadW` is set. */
  trace?: Trace;
  /** A constant load, W (tests use it for exact figures). Default: the trace, else DEFAULT_LOAD_W. */
  loadW?: number;
  /** Where in the trace day to start, s; default: now's seconds since local midnight. */
  timeOffsetSec?: number;
}

/** The appliance behind the plug: watts it would draw at a given time with the relay on. */
export function loadCurve(opts: LoadOptions, startMs: number): (ms: number) => number {
  if (opts.loadW !== undefined) {
    const w = opts.loadW;
    return () => w;
  }
  const trace = opts.trace;
  if (!trace) return () => DEFAULT_LOAD_W;
  const offset = opts.timeOffsetSec ?? secondsSinceLocalMidnight(startMs);
  return (ms) => powerAt(trace, offset + (ms - startMs) / 1000);
}

/**
 * The plug's metering chip: integrates load power (trapezoid) into an energy counter, Wh. Relay changes
 * observe before and after switching so a switch never smears power across the edge (as native-plug.ts).
 */
export class Meter {
  private lastMs: number;
  private lastPower: number;

  constructor(
    private readonly load: (ms: number) => number,
    startMs: number,
    public relayOn: boolean,
    /** Counter, Wh. Families decide whether it survives a reboot. */
    public energyWh: number,
  ) {
    this.lastMs = startMs;
    this.lastPower = this.powerAt(startMs);
  }

  powerAt(ms: number): number {
    return this.relayOn ? Math.max(0, this.load(ms)) : 0;
  }

  /** Integrates up to `ms` and returns the power now. A clock stepping back never drains the counter. */
  advance(ms: number): number {
    const p = this.powerAt(ms);
    const dtMs = Math.max(0, ms - this.lastMs);
    this.energyWh += ((this.lastPower + p) / 2) * (dtMs / 3_600_000);
    this.lastMs = Math.max(this.lastMs, ms);
    this.lastPower = p;
    return p;
  }

  setRelay(on: boolean, ms: number): void {
    this.advance(ms);
    this.relayOn = on;
    this.lastPower = this.powerAt(this.lastMs);
  }

  /** Power came back after a cut: nothing was metered while the plug was dark. */
  resume(ms: number): void {
    this.lastMs = ms;
    this.lastPower = this.powerAt(ms);
  }
}

/** What a family's firmware can do on the wire. */
export interface Link {
  readonly connected: boolean;
  now(): number;
  publish(topic: string, payload: string, opts?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  /** Restarts the periodic jobs with their current periods (e.g. after a TelePeriod change). */
  reschedule(): void;
}

export interface PeriodicJob {
  /** Period, ms; 0 or less disables the job. Read again after every run. */
  periodMs(): number;
  /** Delay of the first run after boot, ms; default one period. */
  firstDelayMs?(): number;
  run(link: Link): Promise<void>;
}

/** A family's firmware, driven by runFirmware. */
export interface Firmware {
  readonly family: SimFamily;
  readonly deviceId: string;
  readonly meter: Meter;
  /** The MQTT session: client id = username = device id (the hub's rule), password = pairing code. */
  readonly will: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
  /** Filters subscribed on every CONNACK, all at once, before anything is announced. */
  readonly subscriptions: string[];
  /** Filters subscribed one by one whose refusal the firmware ignores (Tasmota's group and fallback topics). */
  readonly optionalSubscriptions?: string[];
  readonly subscribeQos: 0 | 1;
  /** What a clean shutdown publishes before DISCONNECT (which discards the will). */
  readonly goodbye: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
  readonly jobs: PeriodicJob[];
  /** Power-on: volatile state starts over (uptime, RAM counters). Called before each boot's first session. */
  boot(ms: number): void;
  /** Right after CONNACK, before subscribing (Tasmota announces itself first). */
  beforeSubscribe?(link: Link): Promise<void>;
  /** After CONNACK and SUBACK; `afterBoot` is true for the first session since power-on. */
  announce(link: Link, afterBoot: boolean): Promise<void>;
  onMessage(link: Link, topic: string, payload: Buffer): void;
  /** Publishes one reading now (tests and the CLI use it). */
  publishReading(link: Link): Promise<void>;
}

export interface RunOptions {
  url: string;
  password: string;
  keepaliveSec?: number;
  reconnect?: boolean;
  now?: () => number;
}

/**
 * Runs a family's firmware as a real MQTT client: one session per boot, automatic reconnects (when
 * enabled), periodic jobs that keep metering while the link is down but never queue messages for later.
 */
export function runFirmware<F extends Firmware>(fw: F, opts: RunOptions): SimPlug & { readonly firmware: F } {
  const now = opts.now ?? Date.now;
  const reconnect = opts.reconnect ?? true;
  let sent = 0;
  let acked = 0;
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  let generation = 0; // bumps on every (re)schedule so stale timer chains stop

  let client!: MqttClient;

  const publishOn = (c: MqttClient, topic: string, payload: string, o: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> =>
    new Promise((resolve, reject) => {
      const qos = o.qos ?? 0;
      sent++;
      c.publish(topic, payload, { qos, retain: o.retain ?? false }, (err) => {
        if (err) return reject(err);
        if (qos === 1) acked++;
        resolve();
      });
    });

  const link: Link = {
    get connected() {
      return client.connected;
    },
    now,
    publish: (topic, payload, o) => publishOn(client, topic, payload, o),
    reschedule: () => schedule(),
  };

  const clearTimers = () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };

  function schedule(first = false): void {
    clearTimers();
    if (stopped) return;
    const gen = ++generation;
    for (const job of fw.jobs) {
      const arm = (delay: number) => {
        if (!(delay > 0)) return;
        const t = setTimeout(() => {
          timers.delete(t);
          if (gen !== generation || stopped) return;
          const done = () => {
            if (gen === generation && !stopped) arm(job.periodMs());
          };
          if (!client.connected) {
            fw.meter.advance(now()); // a real plug keeps metering while offline
            done();
            return;
          }
          job.run(link).then(done, done); // a message lost to a dropped link is what real plugs do
        }, delay);
        // unref: a forgotten plug must not keep a test runner alive; the CLI keeps its own ref'd timer.
        t.unref();
        timers.add(t);
      };
      arm(first && job.firstDelayMs ? job.firstDelayMs() : job.periodMs());
    }
  }

  /** One MQTT session; a reboot creates a new one, as real firmware would. Resolves when it is first up. */
  const open = (): { client: MqttClient; ready: Promise<void> } => {
    const c = connect(opts.url, {
      clientId: fw.deviceId,
      username: fw.deviceId,
      password: opts.password,
      protocolVersion: 4,
      clean: true,
      keepalive: opts.keepaliveSec ?? 30,
      reconnectPeriod: reconnect ? RECONNECT_PERIOD_MS : 0,
      resubscribe: false, // setUp subscribes on every CONNACK
      will: { topic: fw.will.topic, payload: Buffer.from(fw.will.payload), qos: fw.will.qos, retain: fw.will.retain },
    });
    let afterBoot = true;
    const setUp = async (): Promise<void> => {
      // Announce (mostly) after SUBACK, so a hub reacting to the announcement with a command cannot race
      // the subscription.
      if (fw.beforeSubscribe) await fw.beforeSubscribe(link);
      await c.subscribeAsync(fw.subscriptions, { qos: fw.subscribeQos });
      for (const f of fw.optionalSubscriptions ?? []) await c.subscribeAsync(f, { qos: fw.subscribeQos }).catch(() => undefined);
      const boot = afterBoot;
      afterBoot = false;
      await fw.announce(link, boot);
    };
    const ready = new Promise<void>((resolve, reject) => {
      let first = true;
      c.on("connect", () => {
        setUp().then(
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
          reject(new Error("connection closed before the session was set up"));
        }
      });
    });
    ready.catch(() => undefined); // callers who never await connected() must not see an unhandled rejection
    c.on("message", (topic, payload) => fw.onMessage(link, topic, payload));
    return { client: c, ready };
  };

  const powerOn = (): Promise<void> => {
    stopped = false;
    fw.boot(now());
    const s = open();
    client = s.client;
    return s.ready.then(() => schedule(true));
  };

  const destroy = (c: MqttClient): Promise<void> =>
    new Promise((resolve) => {
      c.end(true, () => resolve()); // force: the socket is destroyed without DISCONNECT, so the will fires
    });

  const firstReady = powerOn();

  return {
    family: fw.family,
    deviceId: fw.deviceId,
    firmware: fw,
    get relayOn() {
      return fw.meter.relayOn;
    },
    get energyWh() {
      return fw.meter.energyWh;
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
    publishReading: () => fw.publishReading(link),
    async reboot() {
      stopped = true;
      clearTimers();
      fw.meter.advance(now());
      await destroy(client);
      await powerOn();
    },
    kill() {
      stopped = true;
      clearTimers();
      fw.meter.advance(now());
      void destroy(client);
    },
    async close() {
      stopped = true;
      clearTimers();
      const c = client;
      if (!c.connected) {
        await destroy(c);
        return;
      }
      // A clean DISCONNECT discards the will, so say goodbye ourselves, as Tasmota and Shelly do on shutdown.
      const g = fw.goodbye;
      const graceful = publishOn(c, g.topic, g.payload, { qos: g.qos, retain: g.retain })
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

/** Adds read-only live properties (getters) to a plug object, typed. */
export function withGetters<T extends object, X extends object>(obj: T, getters: { [K in keyof X]: () => X[K] }): T & Readonly<X> {
  for (const [k, get] of Object.entries(getters) as [string, () => unknown][]) Object.defineProperty(obj, k, { get, enumerable: true });
  return obj as T & Readonly<X>;
}
