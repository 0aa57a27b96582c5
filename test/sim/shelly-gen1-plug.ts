// A Shelly Gen1 Plug S (PROTOCOLS.md §3) as a real MQTT client, replaying an appliance trace.
//   will shellies/<id>/online "false" (retained); on connect online "true" (retained), shellies/announce and
//   shellies/<id>/announce, then relay/0, relay/0/power, relay/0/energy — re-published every 30 s (option).
//   relay/0/command on|off|toggle → the new relay/0 state at once (then power and energy). The energy counter
//   is in watt-minutes and lives in RAM: it restarts at 0 on every boot. Above 2500 W the relay trips and
//   reports "overpower". shellies/command and shellies/<id>/command understand "announce" and "update".
import { Meter, loadCurve, runFirmware, withGetters, type Firmware, type Link, type LoadOptions, type PeriodicJob } from "./sim-core.js";
import { fnv1a } from "./sim-util.js";
import type { SimPlug } from "./sim-plug.js";
import {
  DEFAULT_GEN1_PERIOD_MS,
  GEN1_FIRMWARE,
  GEN1_MAX_POWER_W,
  applyRelayCommand,
  buildAnnounce,
  formatPower,
  gen1Topics,
  parseRelayCommand,
  relayText,
  wattMinutes,
} from "./shelly-gen1-payloads.js";

export interface ShellyGen1PlugOptions extends LoadOptions {
  url: string;
  deviceId: string; // e.g. shellyplug-s-7AD2F1; client id = username = deviceId
  password: string; // the pairing code
  /** State re-publish period, ms; default 30 000 (the firmware's). */
  intervalMs?: number;
  /** QoS of everything it publishes and subscribes (Gen1 `mqtt_max_qos`); default 0. */
  qos?: 0 | 1;
  firmware?: string;
  startRelay?: boolean; // default true
  /** Overpower threshold, W; default 2500 (Plug S). */
  maxPowerW?: number;
  keepaliveSec?: number; // default 60 (Gen1 mqtt_keep_alive)
  reconnect?: boolean; // default true
  now?: () => number;
}

export interface ShellyGen1Stats {
  /** relay/0/power messages sent. */
  power: number;
  /** relay/0/command messages obeyed. */
  commands: number;
  boots: number;
}

export type ShellyGen1Plug = SimPlug & { readonly stats: Readonly<ShellyGen1Stats>; readonly wattMinutes: number };

class ShellyGen1Firmware implements Firmware {
  readonly family = "shelly-gen1" as const;
  readonly meter: Meter;
  readonly will;
  readonly goodbye;
  readonly subscriptions: string[];
  readonly subscribeQos: 0 | 1;
  readonly jobs: PeriodicJob[];
  readonly topics;
  readonly stats: ShellyGen1Stats = { power: 0, commands: 0, boots: 0 };
  private readonly qos: 0 | 1;
  private readonly ip: string;
  private overpower = false;

  constructor(
    readonly deviceId: string,
    private readonly o: ShellyGen1PlugOptions,
    startMs: number,
  ) {
    this.qos = o.qos ?? 0;
    this.subscribeQos = this.qos;
    this.meter = new Meter(loadCurve(o, startMs), startMs, o.startRelay ?? true, 0);
    this.ip = `192.168.1.${20 + (fnv1a(deviceId) % 200)}`;
    this.topics = gen1Topics(deviceId);
    this.will = { topic: this.topics.online, payload: "false", qos: this.qos, retain: true };
    this.goodbye = this.will;
    this.subscriptions = [this.topics.broadcast, this.topics.command, this.topics.relayCommand];
    this.jobs = [{ periodMs: () => o.intervalMs ?? DEFAULT_GEN1_PERIOD_MS, run: (link) => this.publishStatus(link) }];
  }

  boot(ms: number): void {
    this.stats.boots++;
    this.meter.energyWh = 0; // watt-minutes live in RAM
    this.meter.resume(ms);
  }

  private pub(link: Link, topic: string, payload: string, retain = false): Promise<void> {
    return link.publish(topic, payload, { qos: this.qos, retain });
  }

  private async announceSelf(link: Link): Promise<void> {
    const body = JSON.stringify(buildAnnounce(this.deviceId, this.ip, this.o.firmware ?? GEN1_FIRMWARE));
    await this.pub(link, this.topics.announceAll, body);
    await this.pub(link, this.topics.announce, body);
  }

  async announce(link: Link): Promise<void> {
    await this.pub(link, this.topics.online, "true", true);
    await this.announceSelf(link);
    await this.publishStatus(link);
  }

  /** The overpower protection trips between measurements. */
  private trip(ms: number): boolean {
    if (!this.meter.relayOn || this.meter.powerAt(ms) <= (this.o.maxPowerW ?? GEN1_MAX_POWER_W)) return false;
    this.meter.setRelay(false, ms);
    this.overpower = true;
    return true;
  }

  async publishStatus(link: Link): Promise<void> {
    const ms = link.now();
    this.trip(ms);
    const power = this.meter.advance(ms);
    await this.pub(link, this.topics.relay, relayText(this.meter.relayOn, this.overpower));
    this.stats.power++;
    await this.pub(link, this.topics.power, formatPower(power));
    await this.pub(link, this.topics.energy, wattMinutes(this.meter.energyWh));
  }

  publishReading(link: Link): Promise<void> {
    return this.publishStatus(link);
  }

  onMessage(link: Link, topic: string, payload: Buffer): void {
    if (topic === this.topics.relayCommand) {
      const cmd = parseRelayCommand(payload);
      if (!cmd) return;
      this.stats.commands++;
      const ms = link.now();
      this.meter.setRelay(applyRelayCommand(this.meter.relayOn, cmd), ms);
      if (this.meter.relayOn) this.overpower = false;
      this.trip(ms);
      this.publishStatus(link).catch(() => undefined);
      return;
    }
    if (topic === this.topics.command || topic === this.topics.broadcast) {
      const what = payload.toString().trim();
      if (what === "announce") this.announceSelf(link).catch(() => undefined);
      else if (what === "update") this.publishStatus(link).catch(() => undefined);
    }
  }
}

export function startShellyGen1Plug(opts: ShellyGen1PlugOptions): ShellyGen1Plug {
  const now = opts.now ?? Date.now;
  const fw = new ShellyGen1Firmware(opts.deviceId, opts, now());
  const plug = runFirmware(fw, { url: opts.url, password: opts.password, keepaliveSec: opts.keepaliveSec ?? 60, reconnect: opts.reconnect, now });
  return withGetters<typeof plug, { stats: ShellyGen1Stats; wattMinutes: number }>(plug, {
    stats: () => fw.stats,
    wattMinutes: () => Number(wattMinutes(fw.meter.energyWh)),
  });
}
