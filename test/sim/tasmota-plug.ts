// A Tasmota metering plug (PROTOCOLS.md §2) as a real MQTT client, replaying an appliance trace. What it
// does on the wire follows the firmware (tasmota/tasmota_xdrv_driver/xdrv_02_9_mqtt.ino, MqttConnected):
//   will tele/<t>/LWT "Offline" (QoS 1, retained); on connect tele/<t>/LWT "Online" (retained), an empty
//   cmnd/<t>/POWER ("Satisfy iobroker"), subscriptions to cmnd/<t>/#, the group topic and the fallback topic;
//   after a boot INFO1–3 and the relay state (stat RESULT + POWER); tele STATE + SENSOR 5 s later and then
//   every TelePeriod. Commands: Power ON|OFF|TOGGLE|"" → stat RESULT {"POWER":…} + stat POWER; Status ""|2|10|11;
//   TelePeriod; State. The ENERGY Total (kWh) survives reboots, as the firmware saves it to flash.
// Everything is published at QoS 0, as PubSubClient does.
import { createRng, sampleVoltage } from "./native-payloads.js";
import { Meter, loadCurve, runFirmware, withGetters, type Firmware, type Link, type LoadOptions, type PeriodicJob } from "./sim-core.js";
import { fnv1a } from "./sim-util.js";
import type { SimPlug } from "./sim-plug.js";
import {
  DEFAULT_TELE_PERIOD_S,
  FIRST_TELE_S,
  LWT_OFFLINE,
  LWT_ONLINE,
  UNKNOWN_COMMAND,
  applyPowerArg,
  applyTelePeriodArg,
  buildEnergy,
  buildInfo1,
  buildInfo2,
  buildInfo3,
  buildPowerResult,
  buildSensor,
  buildState,
  buildStatus,
  buildStatus10,
  buildStatus2,
  parseCommand,
  powerText,
  tasmotaTime,
  tasmotaTopics,
  type EnergyState,
} from "./tasmota-payloads.js";

export interface TasmotaPlugOptions extends LoadOptions {
  url: string;
  deviceId: string; // client id = username = deviceId
  password: string; // the pairing code
  /** Tasmota's Topic; the hub's pairing answer says to set it to the device id (the default). */
  topic?: string;
  /** TelePeriod, s; default 300 (firmware default). The firmware accepts 10–3600; tests may use less. */
  telePeriodSec?: number;
  /** The plug's timezone, minutes east of UTC; default the host's. */
  tzOffsetMin?: number;
  /** SetOption52: append the UTC offset to `Time`; default false (as shipped). */
  timeWithOffset?: boolean;
  /** EnergyRes: decimals of Total/Yesterday/Today (kWh), 0–5; default 3. */
  energyRes?: number;
  /** Publish the empty cmnd/<topic>/POWER after connecting, as the firmware does unless SetOption90 is on; default true. */
  powerQueryOnConnect?: boolean;
  /** Group topic subscribed as cmnd/<group>/#; default "tasmotas"; null for none. */
  groupTopic?: string | null;
  /** Subscribe the fallback topic cmnd/<client id>_fb/#; default true. */
  fallbackTopic?: boolean;
  startRelay?: boolean; // default true
  /** ENERGY Total at start, Wh; default 0. */
  energyWh?: number;
  keepaliveSec?: number; // default 30 (Tasmota MqttKeepAlive)
  reconnect?: boolean; // default true
  now?: () => number;
  seed?: string; // default deviceId
}

export interface TasmotaStats {
  /** tele/<t>/SENSOR messages sent. */
  tele: number;
  /** Status 10 requests answered (the hub's polls). */
  status10: number;
  /** Power commands obeyed (including queries). */
  power: number;
  /** Sessions since power-on (Tasmota's MqttCount). */
  mqttCount: number;
  /** Boots, including the first. */
  boots: number;
}

export type TasmotaPlug = SimPlug & { readonly stats: Readonly<TasmotaStats>; readonly topic: string; readonly telePeriodSec: number };

class TasmotaFirmware implements Firmware {
  readonly family = "tasmota" as const;
  readonly meter: Meter;
  readonly will;
  readonly goodbye;
  readonly subscriptions: string[];
  readonly optionalSubscriptions: string[];
  readonly subscribeQos = 0 as const;
  readonly jobs: PeriodicJob[];
  readonly topics;
  readonly stats: TasmotaStats = { tele: 0, status10: 0, power: 0, mqttCount: 0, boots: 0 };
  telePeriodSec: number;
  private readonly rng: () => number;
  private readonly tz: number;
  private readonly powerFactor: number;
  private readonly totalStartTime: string;
  private readonly ip: string;
  private bootMs = 0;
  private dayKey = "";
  private dayStartWh = 0;
  private yesterdayWh = 0;
  private lastTeleWh: number;

  constructor(
    readonly deviceId: string,
    readonly topic: string,
    private readonly o: TasmotaPlugOptions,
    startMs: number,
  ) {
    this.rng = createRng(o.seed ?? deviceId);
    this.tz = o.tzOffsetMin ?? -new Date(startMs).getTimezoneOffset();
    this.powerFactor = 0.9 + this.rng() * 0.09;
    this.meter = new Meter(loadCurve(o, startMs), startMs, o.startRelay ?? true, o.energyWh ?? 0);
    this.totalStartTime = tasmotaTime(startMs - 86_400_000 * (1 + (fnv1a(deviceId) % 300)), this.tz, false);
    this.ip = `192.168.1.${20 + (fnv1a(deviceId) % 200)}`;
    this.telePeriodSec = o.telePeriodSec ?? DEFAULT_TELE_PERIOD_S;
    this.lastTeleWh = this.meter.energyWh;
    this.topics = tasmotaTopics(topic);
    this.will = { topic: this.topics.lwt, payload: LWT_OFFLINE, qos: 1 as const, retain: true };
    this.goodbye = this.will;
    this.subscriptions = [`cmnd/${topic}/#`];
    const group = o.groupTopic === undefined ? "tasmotas" : o.groupTopic;
    this.optionalSubscriptions = [...(group ? [`cmnd/${group}/#`] : []), ...((o.fallbackTopic ?? true) ? [`cmnd/${deviceId}_fb/#`] : [])];
    this.jobs = [
      {
        periodMs: () => this.telePeriodSec * 1000,
        firstDelayMs: () => Math.min(FIRST_TELE_S, this.telePeriodSec) * 1000,
        run: (link) => this.publishTele(link),
      },
    ];
  }

  private time(ms: number): string {
    return tasmotaTime(ms, this.tz, this.o.timeWithOffset ?? false);
  }

  private energy(ms: number): EnergyState {
    const power = this.meter.advance(ms);
    const total = this.meter.energyWh;
    const key = tasmotaTime(ms, this.tz, false).slice(0, 10);
    if (this.dayKey === "") {
      this.dayKey = key;
      this.dayStartWh = total;
    } else if (key !== this.dayKey) {
      // Midnight (device-local): Today becomes Yesterday.
      this.yesterdayWh = total - this.dayStartWh;
      this.dayKey = key;
      this.dayStartWh = total;
    }
    return { power, voltage: sampleVoltage(this.rng), powerFactor: this.powerFactor, totalWh: total, todayWh: total - this.dayStartWh, yesterdayWh: this.yesterdayWh, totalStartTime: this.totalStartTime };
  }

  private state(ms: number) {
    return buildState({ time: this.time(ms), uptimeSec: (ms - this.bootMs) / 1000, mqttCount: this.stats.mqttCount, relayOn: this.meter.relayOn, rssi: 60 + Math.floor(this.rng() * 30), ssid: "home" });
  }

  boot(ms: number): void {
    this.bootMs = ms;
    this.stats.mqttCount = 0;
    this.stats.boots++;
    this.meter.resume(ms); // the counter itself is in flash: it survives
  }

  async beforeSubscribe(link: Link): Promise<void> {
    this.stats.mqttCount++;
    await link.publish(this.topics.lwt, LWT_ONLINE, { retain: true });
    if (this.o.powerQueryOnConnect ?? true) await link.publish(`${this.topics.cmnd}POWER`, "");
  }

  async announce(link: Link, afterBoot: boolean): Promise<void> {
    if (!afterBoot) return;
    await link.publish(this.topics.info(1), JSON.stringify(buildInfo1(`${this.deviceId}_fb`, this.o.groupTopic ?? "tasmotas")));
    await link.publish(this.topics.info(2), JSON.stringify(buildInfo2(this.deviceId, this.ip)));
    await link.publish(this.topics.info(3), JSON.stringify(buildInfo3(this.stats.boots === 1 ? "Power On" : "Software/System restart", this.stats.boots)));
    await this.publishPower(link);
  }

  private async publishPower(link: Link): Promise<void> {
    await link.publish(this.topics.result, JSON.stringify(buildPowerResult(this.meter.relayOn)));
    await link.publish(this.topics.power, powerText(this.meter.relayOn));
  }

  async publishTele(link: Link): Promise<void> {
    const ms = link.now();
    const e = this.energy(ms);
    await link.publish(this.topics.state, JSON.stringify(this.state(ms)));
    this.stats.tele++;
    const period = e.totalWh - this.lastTeleWh;
    this.lastTeleWh = e.totalWh;
    await link.publish(this.topics.sensor, JSON.stringify(buildSensor(this.time(ms), buildEnergy(e, period, this.o.energyRes))));
  }

  publishReading(link: Link): Promise<void> {
    return this.publishTele(link);
  }

  onMessage(link: Link, topic: string, payload: Buffer): void {
    const cmd = parseCommand(this.topics.cmnd, topic, payload);
    if (!cmd) return; // group or fallback topic commands are not simulated
    const reply = (body: object, sub = this.topics.result) => link.publish(sub, JSON.stringify(body)).catch(() => undefined);
    const ms = link.now();
    switch (cmd.name) {
      case "POWER": {
        if (cmd.index !== 1) return void reply(UNKNOWN_COMMAND);
        const next = applyPowerArg(this.meter.relayOn, cmd.arg);
        this.stats.power++;
        if (typeof next === "boolean") this.meter.setRelay(next, ms);
        this.publishPower(link).catch(() => undefined);
        return;
      }
      case "STATUS": {
        if (cmd.arg === "") return void reply(buildStatus(this.topic, this.meter.relayOn), this.topics.status(""));
        if (cmd.arg === "2") return void reply(buildStatus2(this.stats.boots), this.topics.status(2));
        if (cmd.arg === "10") {
          this.stats.status10++;
          return void reply(buildStatus10(this.time(ms), buildEnergy(this.energy(ms), undefined, this.o.energyRes)), this.topics.status(10));
        }
        if (cmd.arg === "11") return void reply({ StatusSTS: this.state(ms) }, this.topics.status(11));
        return void reply({ Command: "Error" });
      }
      case "TELEPERIOD": {
        const next = applyTelePeriodArg(this.telePeriodSec, cmd.arg);
        if (next !== this.telePeriodSec) {
          this.telePeriodSec = next;
          link.reschedule();
        }
        return void reply({ TelePeriod: this.telePeriodSec });
      }
      case "STATE":
        return void reply(this.state(ms));
      default:
        return void reply(UNKNOWN_COMMAND);
    }
  }
}

export function startTasmotaPlug(opts: TasmotaPlugOptions): TasmotaPlug {
  const now = opts.now ?? Date.now;
  const fw = new TasmotaFirmware(opts.deviceId, opts.topic ?? opts.deviceId, opts, now());
  const plug = runFirmware(fw, { url: opts.url, password: opts.password, keepaliveSec: opts.keepaliveSec, reconnect: opts.reconnect, now });
  return withGetters<typeof plug, { stats: TasmotaStats; topic: string; telePeriodSec: number }>(plug, {
    stats: () => fw.stats,
    topic: () => fw.topic,
    telePeriodSec: () => fw.telePeriodSec,
  });
}
