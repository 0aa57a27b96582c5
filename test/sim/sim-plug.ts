// One interface for every simulated plug family, a dispatcher, and device ids that look like the real thing.
import { DEVICE_ID_PATTERN } from "../../shared/schemas/common.js";
import { startNativePlug } from "./native-plug.js";
import { startTasmotaPlug } from "./tasmota-plug.js";
import { startShellyGen1Plug } from "./shelly-gen1-plug.js";
import { startShellyGen2Plug } from "./shelly-gen2-plug.js";
import { fnv1a, uniqueHex24 } from "./sim-util.js";
import type { Trace } from "./traces.js";

export const SIM_FAMILIES = ["native", "tasmota", "shelly-gen1", "shelly-gen2"] as const;
export type SimFamily = (typeof SIM_FAMILIES)[number];

/** What tests and the CLI see of any simulated plug (the shape of NativePlug, plus its family). */
export interface SimPlug {
  readonly family: SimFamily;
  readonly deviceId: string;
  readonly relayOn: boolean;
  /** The plug's energy counter, Wh, as of its last reading or relay change (Gen1 and native: since boot). */
  readonly energyWh: number;
  /** PUBLISH packets sent (native: telemetry readings only). */
  readonly sent: number;
  /** QoS 1 PUBLISH packets acknowledged by the broker. */
  readonly acked: number;
  /** Whether the MQTT link is up right now. */
  readonly isConnected: boolean;
  /** Resolves once the first session is up (CONNACK, SUBACK, announced). Rejects on a CONNACK error. */
  connected(): Promise<void>;
  /** Publishes a reading now, in the family's format. */
  publishReading(): Promise<void>;
  /** Restarts the plug: the socket dies without DISCONNECT (the will fires), then it boots and reconnects. Also powers a killed plug back on. */
  reboot(): Promise<void>;
  /** Power cut: the socket dies without DISCONNECT, so the broker publishes the will; nothing more is sent. */
  kill(): void;
  /** Clean shutdown: announces itself offline, then DISCONNECT. */
  close(): Promise<void>;
}

/** Options every family understands; a family ignores what it has no use for. */
export interface SimPlugOptions {
  url: string;
  deviceId: string; // client id = username = deviceId
  password: string; // the pairing code
  trace?: Trace;
  /** A constant load, W (not for native, which replays its trace or 60 W). */
  loadW?: number;
  /**
   * Reporting cadence, ms: native telemetry (default 1000), Shelly Gen1 state period (default 30 000),
   * Shelly Gen2 NotifyStatus check (default 1000). Tasmota uses telePeriodSec instead.
   */
  intervalMs?: number;
  /** Tasmota TelePeriod, s; default 300. */
  telePeriodSec?: number;
  /** Native telemetry QoS; default 1. */
  qos?: 0 | 1;
  startRelay?: boolean;
  /** Starting energy counter, Wh (ignored by Shelly Gen1, whose counter starts at 0 on every boot). */
  energyWh?: number;
  timeOffsetSec?: number;
  keepaliveSec?: number;
  reconnect?: boolean;
  now?: () => number;
}

/** Starts a simulated plug of any family. */
export function startSimPlug(family: SimFamily, o: SimPlugOptions): SimPlug {
  const base = { url: o.url, deviceId: o.deviceId, password: o.password, trace: o.trace, startRelay: o.startRelay, timeOffsetSec: o.timeOffsetSec, keepaliveSec: o.keepaliveSec, reconnect: o.reconnect, now: o.now };
  switch (family) {
    case "native": {
      const plug = startNativePlug({ ...base, intervalMs: o.intervalMs, qos: o.qos, energyWh: o.energyWh });
      return Object.defineProperty(plug, "family", { value: "native", enumerable: true }) as SimPlug;
    }
    case "tasmota":
      return startTasmotaPlug({ ...base, loadW: o.loadW, telePeriodSec: o.telePeriodSec, energyWh: o.energyWh });
    case "shelly-gen1":
      return startShellyGen1Plug({ ...base, loadW: o.loadW, intervalMs: o.intervalMs });
    case "shelly-gen2":
      return startShellyGen2Plug({ ...base, loadW: o.loadW, intervalMs: o.intervalMs, energyWh: o.energyWh });
  }
}

/**
 * Device ids per family, stable for a prefix and index:
 *   native       <prefix>001
 *   tasmota      <prefix>tasmota-001
 *   shelly-gen1  shellyplug-s-<6 HEX>          (as the Plug S names itself; the hex is its MAC's tail)
 *   shelly-gen2  shellyplusplugs-<12 hex>      (the Plus Plug S's id: its MAC)
 * The hex digits come from the prefix and index; within one prefix they never repeat.
 */
export function simDeviceId(family: SimFamily, prefix: string, index: number): string {
  const n = String(index + 1).padStart(3, "0");
  switch (family) {
    case "native":
      return `${prefix}${n}`;
    case "tasmota":
      return `${prefix}tasmota-${n}`;
    case "shelly-gen1":
      return `shellyplug-s-${uniqueHex24(`${prefix}/gen1`, index).toUpperCase()}`;
    case "shelly-gen2":
      return `shellyplusplugs-${(fnv1a(`${prefix}/gen2/oui`) & 0xffffff).toString(16).padStart(6, "0")}${uniqueHex24(`${prefix}/gen2`, index)}`;
  }
}

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}
