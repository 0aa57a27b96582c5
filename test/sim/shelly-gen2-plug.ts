// A Shelly Plus Plug S (Gen2, PROTOCOLS.md §4) as a real MQTT client, replaying an appliance trace.
//   will <prefix>/online "false" (retained); on connect <prefix>/online "true" (retained) and NotifyFullStatus
//   on <prefix>/events/rpc; then, every interval, a NotifyStatus carrying only the measured fields that
//   changed (apower, voltage, current, aenergy). RPC on <prefix>/rpc, answered on <request src>/rpc:
//   Switch.Set, Switch.Toggle, Switch.GetStatus, Shelly.GetStatus, Shelly.GetDeviceInfo; anything else gets
//   error -114. A switch is followed by a NotifyStatus with `output`. aenergy.total (Wh) survives reboots.
import { createRng } from "./native-payloads.js";
import { Meter, loadCurve, runFirmware, withGetters, type Firmware, type Link, type LoadOptions, type PeriodicJob } from "./sim-core.js";
import { fnv1a } from "./sim-util.js";
import type { SimPlug } from "./sim-plug.js";
import {
  DEFAULT_GEN2_INTERVAL_MS,
  buildDeviceInfo,
  buildNotification,
  buildRpcResponse,
  buildShellyStatus,
  buildSwitchStatus,
  diffSwitchStatus,
  evaluateRpc,
  gen2Topics,
  parseRpcRequest,
  rpcTs,
  type SwitchStatus,
} from "./shelly-gen2-payloads.js";

export interface ShellyGen2PlugOptions extends LoadOptions {
  url: string;
  deviceId: string; // e.g. shellyplusplugs-80646fd031f8; client id = username = deviceId
  password: string; // the pairing code
  /** Topic prefix; defaults to the device id (what the hub's pairing answer says). */
  prefix?: string;
  /** How often measurements are checked for a NotifyStatus, ms; default 1000. */
  intervalMs?: number;
  startRelay?: boolean; // default true
  /** aenergy.total at start, Wh; default 0. */
  energyWh?: number;
  keepaliveSec?: number; // default 60
  reconnect?: boolean; // default true
  now?: () => number;
  seed?: string; // default deviceId
}

export interface ShellyGen2Stats {
  /** NotifyStatus frames sent (periodic and after a switch). */
  notifyStatus: number;
  /** NotifyFullStatus frames sent (one per session). */
  notifyFullStatus: number;
  /** RPC requests answered, by method. */
  rpc: Record<string, number>;
  boots: number;
}

export type ShellyGen2Plug = SimPlug & { readonly stats: Readonly<ShellyGen2Stats>; readonly prefix: string };

class ShellyGen2Firmware implements Firmware {
  readonly family = "shelly-gen2" as const;
  readonly meter: Meter;
  readonly will;
  readonly goodbye;
  readonly subscriptions: string[];
  readonly subscribeQos = 1 as const;
  readonly jobs: PeriodicJob[];
  readonly topics;
  readonly stats: ShellyGen2Stats = { notifyStatus: 0, notifyFullStatus: 0, rpc: {}, boots: 0 };
  private readonly rng: () => number;
  private readonly powerFactor: number;
  private readonly mac: string;
  private readonly ip: string;
  private voltage: number;
  private source = "init";
  private bootMs = 0;
  private minuteStart: number;
  private minuteStartWh: number;
  private byMinute: [number, number, number] = [0, 0, 0];
  /** What the hub last heard, to send only what changed. */
  private lastNotified: SwitchStatus | null = null;

  constructor(
    readonly deviceId: string,
    readonly prefix: string,
    o: ShellyGen2PlugOptions,
    startMs: number,
  ) {
    this.rng = createRng(o.seed ?? deviceId);
    this.powerFactor = 0.9 + this.rng() * 0.09;
    this.voltage = 228 + this.rng() * 4;
    this.meter = new Meter(loadCurve(o, startMs), startMs, o.startRelay ?? true, o.energyWh ?? 0);
    this.minuteStart = Math.floor(startMs / 60_000) * 60_000;
    this.minuteStartWh = this.meter.energyWh;
    const hex = /-([0-9a-f]{12})$/.exec(deviceId)?.[1];
    this.mac = (hex ?? `80646f${(fnv1a(deviceId) & 0xffffff).toString(16).padStart(6, "0")}`).toUpperCase();
    this.ip = `192.168.1.${20 + (fnv1a(deviceId) % 200)}`;
    this.topics = gen2Topics(prefix);
    this.will = { topic: this.topics.online, payload: "false", qos: 1 as const, retain: true };
    this.goodbye = this.will;
    this.subscriptions = [this.topics.rpc, this.topics.command];
    this.jobs = [{ periodMs: () => o.intervalMs ?? DEFAULT_GEN2_INTERVAL_MS, run: (link) => this.notifyChanges(link) }];
  }

  /** The switch:0 status now: meters up to `ms`, rolls the per-minute energy, drifts the mains voltage. */
  private switchStatus(ms: number): SwitchStatus {
    const power = this.meter.advance(ms);
    const minute = Math.floor(ms / 60_000) * 60_000;
    if (minute > this.minuteStart) {
      const lastMinuteMWh = (this.meter.energyWh - this.minuteStartWh) * 1000;
      const skipped = Math.min(3, Math.round((minute - this.minuteStart) / 60_000) - 1);
      const shifted = [...Array<number>(skipped).fill(0), lastMinuteMWh, ...this.byMinute];
      this.byMinute = [shifted[0]!, shifted[1]!, shifted[2]!];
      this.minuteStart = minute;
      this.minuteStartWh = this.meter.energyWh;
    }
    this.voltage = Math.min(235, Math.max(225, this.voltage + (this.rng() - 0.5) * 0.6));
    return buildSwitchStatus({
      output: this.meter.relayOn,
      source: this.source,
      apower: power,
      voltage: this.voltage,
      freq: 49.95 + this.rng() * 0.1,
      current: power / (this.voltage * this.powerFactor),
      totalWh: this.meter.energyWh,
      byMinute: this.byMinute,
      minuteTs: Math.floor(this.minuteStart / 1000),
      tempC: 38 + power / 150,
    });
  }

  private shellyStatus(ms: number, sw = this.switchStatus(ms)): Record<string, unknown> {
    return buildShellyStatus(sw, { id: this.deviceId, mac: this.mac, ip: this.ip, uptimeSec: (ms - this.bootMs) / 1000, nowMs: ms, ssid: "home", rssi: -55 - Math.floor(this.rng() * 15) });
  }

  boot(ms: number): void {
    this.stats.boots++;
    this.bootMs = ms;
    this.source = "init";
    this.meter.resume(ms); // aenergy.total is kept across reboots
  }

  private notify(link: Link, method: "NotifyStatus" | "NotifyFullStatus", ms: number, body: Record<string, unknown>): Promise<void> {
    if (method === "NotifyStatus") this.stats.notifyStatus++;
    else this.stats.notifyFullStatus++;
    return link.publish(this.topics.events, JSON.stringify(buildNotification(this.deviceId, method, rpcTs(ms), body)), { qos: 1 });
  }

  async announce(link: Link): Promise<void> {
    await link.publish(this.topics.online, "true", { qos: 1, retain: true });
    const ms = link.now();
    const sw = this.switchStatus(ms);
    this.lastNotified = sw;
    await this.notify(link, "NotifyFullStatus", ms, this.shellyStatus(ms, sw));
  }

  /** A NotifyStatus with the measured fields that changed since the hub last heard; nothing if none did. */
  async notifyChanges(link: Link, extra: Record<string, unknown> = {}): Promise<void> {
    const ms = link.now();
    const sw = this.switchStatus(ms);
    const delta = { ...extra, ...diffSwitchStatus(this.lastNotified, sw) };
    this.lastNotified = sw;
    if (Object.keys(delta).length === 0) return;
    await this.notify(link, "NotifyStatus", ms, { "switch:0": delta });
  }

  publishReading(link: Link): Promise<void> {
    this.lastNotified = null; // everything counts as changed
    return this.notifyChanges(link);
  }

  onMessage(link: Link, topic: string, payload: Buffer): void {
    if (topic === this.topics.command) {
      if (payload.toString().trim() === "status_update") {
        link.publish(this.topics.switchStatus, JSON.stringify(this.switchStatus(link.now())), { qos: 1 }).catch(() => undefined);
      }
      return;
    }
    if (topic !== this.topics.rpc) return;
    const req = parseRpcRequest(payload);
    if (!req) return;
    const ms = link.now();
    const outcome = evaluateRpc(req, {
      output: this.meter.relayOn,
      switchStatus: () => this.switchStatus(ms),
      shellyStatus: () => this.shellyStatus(ms),
      deviceInfo: () => buildDeviceInfo({ id: this.deviceId, mac: this.mac }),
    });
    this.stats.rpc[req.method] = (this.stats.rpc[req.method] ?? 0) + 1;
    const switched = "output" in outcome && outcome.output !== undefined && outcome.output !== this.meter.relayOn;
    if ("output" in outcome && outcome.output !== undefined) {
      this.meter.setRelay(outcome.output, ms);
      this.source = "MQTT";
    }
    const reply = link.publish(`${req.src}/rpc`, JSON.stringify(buildRpcResponse(req, this.deviceId, outcome)), { qos: 1 });
    if (switched) {
      reply.then(() => this.notifyChanges(link, { output: this.meter.relayOn, source: this.source })).catch(() => undefined);
    } else reply.catch(() => undefined);
  }
}

export function startShellyGen2Plug(opts: ShellyGen2PlugOptions): ShellyGen2Plug {
  const now = opts.now ?? Date.now;
  const fw = new ShellyGen2Firmware(opts.deviceId, opts.prefix ?? opts.deviceId, opts, now());
  const plug = runFirmware(fw, { url: opts.url, password: opts.password, keepaliveSec: opts.keepaliveSec ?? 60, reconnect: opts.reconnect, now });
  return withGetters<typeof plug, { stats: ShellyGen2Stats; prefix: string }>(plug, {
    stats: () => fw.stats,
    prefix: () => fw.prefix,
  });
}
