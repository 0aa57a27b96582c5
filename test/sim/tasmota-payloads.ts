// Pure payload building and parsing for Tasmota (PROTOCOLS.md §2), kept free of I/O so unit tests can
// assert whole payloads. Field names, order and rounding follow a Sonoff Pow R2 / Athom plug on Tasmota 13.
import { round } from "./sim-util.js";

export const TASMOTA_VERSION = "13.2.0(tasmota)";
export const TASMOTA_MODULE = "Sonoff Pow R2";
/** TelePeriod: firmware default and the range `TelePeriod <n>` accepts (PROTOCOLS.md §2). */
export const DEFAULT_TELE_PERIOD_S = 300;
export const MIN_TELE_PERIOD_S = 10;
export const MAX_TELE_PERIOD_S = 3600;
/** The first telemetry after connecting comes this soon (the firmware sets its counter to TelePeriod − 5 s). */
export const FIRST_TELE_S = 5;

export interface TasmotaTopics {
  lwt: string;
  state: string;
  sensor: string;
  info: (n: 1 | 2 | 3) => string;
  result: string;
  power: string;
  status: (n: "" | 2 | 10 | 11) => string;
  /** Prefix of every command to this plug, e.g. `cmnd/<topic>/`. */
  cmnd: string;
}

export function tasmotaTopics(topic: string): TasmotaTopics {
  return {
    lwt: `tele/${topic}/LWT`,
    state: `tele/${topic}/STATE`,
    sensor: `tele/${topic}/SENSOR`,
    info: (n) => `tele/${topic}/INFO${n}`,
    result: `stat/${topic}/RESULT`,
    power: `stat/${topic}/POWER`,
    status: (n) => `stat/${topic}/STATUS${n}`,
    cmnd: `cmnd/${topic}/`,
  };
}

export const LWT_ONLINE = "Online";
export const LWT_OFFLINE = "Offline";

/**
 * Tasmota's `Time`: device-local time, without a UTC offset unless SetOption52 is on
 * (`2018-02-15T17:37:10` or `2018-02-15T17:37:10+01:00`).
 */
export function tasmotaTime(ms: number, tzOffsetMin: number, withOffset: boolean): string {
  const local = new Date(Math.floor(ms / 1000) * 1000 + tzOffsetMin * 60_000).toISOString().slice(0, 19);
  if (!withOffset) return local;
  const sign = tzOffsetMin < 0 ? "-" : "+";
  const abs = Math.abs(tzOffsetMin);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** `Uptime` as Tasmota prints it: days, then T, then hh:mm:ss (`0T00:00:13`). */
export function tasmotaUptime(sec: number): string {
  const s = Math.max(0, Math.floor(sec));
  const d = Math.floor(s / 86_400);
  const hh = Math.floor((s % 86_400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  return `${d}T${[hh, mm, ss].map((v) => String(v).padStart(2, "0")).join(":")}`;
}

export interface EnergyState {
  power: number; // W, 0 while the relay is off
  voltage: number; // V
  powerFactor: number; // 0…1 of the load
  totalWh: number; // counter since TotalStartTime, persisted
  todayWh: number;
  yesterdayWh: number;
  totalStartTime: string; // Tasmota local time
}

export interface TasmotaEnergy {
  TotalStartTime: string;
  Total: number;
  Yesterday: number;
  Today: number;
  Period?: number;
  Power: number;
  ApparentPower: number;
  ReactivePower: number;
  Factor: number;
  Voltage: number;
  Current: number;
}

/** `EnergyRes`: decimals of Total/Yesterday/Today in kWh; the firmware default is 3 and it accepts 0–5. */
export const DEFAULT_ENERGY_RES = 3;

/**
 * The ENERGY object: Total/Yesterday/Today kWh (EnergyRes decimals, default 3), Period Wh since the previous
 * telemetry (SENSOR only), Power/ApparentPower/ReactivePower integer W/VA/VAr, Factor 2 decimals, Voltage
 * integer V, Current 3 decimals A. Current follows the rounded values so the payload is self-consistent (I = S / V).
 */
export function buildEnergy(s: EnergyState, periodWh?: number, energyRes: number = DEFAULT_ENERGY_RES): TasmotaEnergy {
  const power = Math.round(Math.max(0, s.power));
  const voltage = Math.round(s.voltage);
  const pf = power > 0 ? round(s.powerFactor, 2) : 0;
  const apparent = power > 0 ? Math.round(power / s.powerFactor) : 0;
  const reactive = power > 0 ? Math.round(Math.sqrt(Math.max(0, apparent * apparent - power * power))) : 0;
  const e: TasmotaEnergy = {
    TotalStartTime: s.totalStartTime,
    Total: round(s.totalWh / 1000, energyRes),
    Yesterday: round(s.yesterdayWh / 1000, energyRes),
    Today: round(s.todayWh / 1000, energyRes),
    Power: power,
    ApparentPower: apparent,
    ReactivePower: reactive,
    Factor: pf,
    Voltage: voltage,
    Current: voltage > 0 ? round(apparent / voltage, 3) : 0,
  };
  if (periodWh === undefined) return e;
  // Period sits between Today and Power, as in the firmware's output.
  const { TotalStartTime, Total, Yesterday, Today, ...rest } = e;
  return { TotalStartTime, Total, Yesterday, Today, Period: Math.max(0, Math.round(periodWh)), ...rest };
}

export function buildSensor(time: string, energy: TasmotaEnergy): { Time: string; ENERGY: TasmotaEnergy } {
  return { Time: time, ENERGY: energy };
}

/** The answer to `Status 10`: the same sensors under StatusSNS (no Period). */
export function buildStatus10(time: string, energy: TasmotaEnergy): { StatusSNS: { Time: string; ENERGY: TasmotaEnergy } } {
  const { Period: _period, ...rest } = energy;
  return { StatusSNS: { Time: time, ENERGY: rest } };
}

export interface StateInfo {
  time: string;
  uptimeSec: number;
  mqttCount: number;
  relayOn: boolean;
  rssi: number; // 0…100 %
  ssid: string;
}

export function buildState(s: StateInfo): Record<string, unknown> {
  return {
    Time: s.time,
    Uptime: tasmotaUptime(s.uptimeSec),
    UptimeSec: Math.floor(s.uptimeSec),
    Heap: 25,
    SleepMode: "Dynamic",
    Sleep: 50,
    LoadAvg: 19,
    MqttCount: s.mqttCount,
    POWER: powerText(s.relayOn),
    Wifi: { AP: 1, SSId: s.ssid, BSSId: "30:B5:C2:5D:70:72", Channel: 6, Mode: "11n", RSSI: s.rssi, Signal: Math.round(s.rssi / 2 - 100), LinkCount: 1, Downtime: "0T00:00:03" },
  };
}

export const powerText = (on: boolean): "ON" | "OFF" => (on ? "ON" : "OFF");

/** `stat/<topic>/RESULT` after a Power command (or query). */
export function buildPowerResult(relayOn: boolean): { POWER: "ON" | "OFF" } {
  return { POWER: powerText(relayOn) };
}

export function buildInfo1(fallbackTopic: string, groupTopic: string): Record<string, unknown> {
  return { Info1: { Module: TASMOTA_MODULE, Version: TASMOTA_VERSION, FallbackTopic: `cmnd/${fallbackTopic}/`, GroupTopic: `cmnd/${groupTopic}/` } };
}

export function buildInfo2(hostname: string, ip: string): Record<string, unknown> {
  return { Info2: { WebServerMode: "Admin", Hostname: hostname, IPAddress: ip } };
}

export function buildInfo3(restartReason: string, bootCount: number): Record<string, unknown> {
  return { Info3: { RestartReason: restartReason, BootCount: bootCount } };
}

export function buildStatus(topic: string, relayOn: boolean): Record<string, unknown> {
  return {
    Status: {
      Module: 43,
      DeviceName: "Tasmota",
      FriendlyName: ["Tasmota"],
      Topic: topic,
      ButtonTopic: "0",
      Power: relayOn ? 1 : 0,
      PowerOnState: 3,
      LedState: 1,
      LedMask: "FFFF",
      SaveData: 1,
      SaveState: 1,
      SwitchTopic: "0",
      SwitchMode: [0, 0, 0, 0, 0, 0, 0, 0],
      ButtonRetain: 0,
      SwitchRetain: 0,
      SensorRetain: 0,
      PowerRetain: 0,
      InfoRetain: 0,
      StateRetain: 0,
    },
  };
}

export function buildStatus2(bootCount: number): Record<string, unknown> {
  return {
    StatusFWR: { Version: TASMOTA_VERSION, BuildDateTime: "2023-10-09T11:52:05", Boot: 31, Core: "2_7_4_9", SDK: "2.2.2-dev(38a443e)", CpuFrequency: 80, Hardware: "ESP8266EX", CR: `${300 + (bootCount % 50)}/699` },
  };
}

export interface TasmotaCommand {
  /** Upper-cased command name without the relay index, e.g. POWER, STATUS, TELEPERIOD. */
  name: string;
  /** Relay index for POWER<n> (1 for `Power` and `Power1`); 0 for other commands. */
  index: number;
  /** The payload, trimmed. */
  arg: string;
}

/** Reads `cmnd/<topic>/<Command>`; command names are case-insensitive in Tasmota. Undefined for other topics. */
export function parseCommand(cmndPrefix: string, topic: string, payload: Buffer | string): TasmotaCommand | undefined {
  if (!topic.startsWith(cmndPrefix)) return undefined;
  const raw = topic.slice(cmndPrefix.length).toUpperCase();
  if (raw.length === 0 || raw.includes("/")) return undefined;
  const m = /^(POWER)(\d?)$/.exec(raw);
  const arg = payload.toString().trim();
  if (m) return { name: "POWER", index: m[2] ? Number(m[2]) : 1, arg };
  return { name: raw, index: 0, arg };
}

/**
 * What a Power payload does to the relay: the new state, "query" for an empty payload (report only),
 * or "invalid". Tasmota accepts ON/OFF/TOGGLE in any case and 1/0/2.
 */
export function applyPowerArg(relayOn: boolean, arg: string): boolean | "query" | "invalid" {
  const a = arg.toUpperCase();
  if (a === "") return "query";
  if (a === "ON" || a === "1" || a === "TRUE") return true;
  if (a === "OFF" || a === "0" || a === "FALSE") return false;
  if (a === "TOGGLE" || a === "2") return !relayOn;
  return "invalid";
}

/**
 * `TelePeriod <n>`: 0 disables telemetry, 1 restores the default, other values clamp to 10…3600 s.
 * An empty payload only reports. Returns the new period in seconds.
 */
export function applyTelePeriodArg(current: number, arg: string): number {
  if (arg === "") return current;
  const n = Number(arg);
  if (!Number.isFinite(n)) return current;
  if (n === 0) return 0;
  if (n === 1) return DEFAULT_TELE_PERIOD_S;
  return Math.min(MAX_TELE_PERIOD_S, Math.max(MIN_TELE_PERIOD_S, Math.round(n)));
}

/** Tasmota's answer to an unknown command. */
export const UNKNOWN_COMMAND = { Command: "Unknown" } as const;
