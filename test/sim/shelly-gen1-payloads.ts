// Pure payload building and parsing for Shelly Gen1 (PROTOCOLS.md §3): text payloads under
// shellies/<model>-<deviceid>/, as a Shelly Plug S sends them.
import { fnv1a } from "./sim-util.js";

export const GEN1_MODEL = "SHPLG-S";
export const GEN1_FIRMWARE = "20230913-114008/v1.14.0-gcb84623";
/** How often the state is re-published by default (Gen1 `mqtt_update_period`). */
export const DEFAULT_GEN1_PERIOD_MS = 30_000;
/** Plug S overpower protection: above this the relay switches itself off and reports "overpower". */
export const GEN1_MAX_POWER_W = 2500;

export interface Gen1Topics {
  root: string;
  online: string;
  announce: string;
  /** Every Gen1 device announces itself here too. */
  announceAll: string;
  relay: string;
  power: string;
  energy: string;
  relayCommand: string;
  /** Device command topic: "announce", "update". */
  command: string;
  /** Broadcast command topic for every Shelly on the broker. */
  broadcast: string;
}

export function gen1Topics(deviceId: string): Gen1Topics {
  const root = `shellies/${deviceId}`;
  return {
    root,
    online: `${root}/online`,
    announce: `${root}/announce`,
    announceAll: "shellies/announce",
    relay: `${root}/relay/0`,
    power: `${root}/relay/0/power`,
    energy: `${root}/relay/0/energy`,
    relayCommand: `${root}/relay/0/command`,
    command: `${root}/command`,
    broadcast: "shellies/command",
  };
}

/** The id's 6 hex digits are the end of the MAC (shellyplug-s-7AD2F1 → A4CF127AD2F1); other ids get a stable one. */
export function gen1Mac(deviceId: string): string {
  const m = /([0-9A-Fa-f]{6})$/.exec(deviceId);
  const tail = m ? m[1]! : (fnv1a(deviceId) & 0xffffff).toString(16).padStart(6, "0");
  return `A4CF12${tail}`.toUpperCase();
}

export interface Gen1Announce {
  id: string;
  mode: "relay";
  model: string;
  mac: string;
  ip: string;
  new_fw: boolean;
  fw_ver: string;
}

export function buildAnnounce(deviceId: string, ip: string, firmware: string = GEN1_FIRMWARE): Gen1Announce {
  return { id: deviceId, mode: "relay", model: GEN1_MODEL, mac: gen1Mac(deviceId), ip, new_fw: false, fw_ver: firmware };
}

/** Watts as text with two decimals ("63.12", "0.00"). */
export function formatPower(w: number): string {
  return Math.max(0, w).toFixed(2);
}

/** The energy counter: whole watt-minutes since the plug booted. */
export function wattMinutes(wh: number): string {
  return String(Math.max(0, Math.floor(wh * 60 + 1e-9)));
}

export type Gen1RelayCommand = "on" | "off" | "toggle";

/** `…/relay/0/command` payloads the firmware obeys; anything else is ignored. */
export function parseRelayCommand(payload: Buffer | string): Gen1RelayCommand | undefined {
  const s = payload.toString().trim();
  return s === "on" || s === "off" || s === "toggle" ? s : undefined;
}

export function applyRelayCommand(relayOn: boolean, cmd: Gen1RelayCommand): boolean {
  return cmd === "on" ? true : cmd === "off" ? false : !relayOn;
}

/** `…/relay/0`: "on", "off", or "overpower" when the protection switched it off. */
export function relayText(relayOn: boolean, overpower: boolean): "on" | "off" | "overpower" {
  return relayOn ? "on" : overpower ? "overpower" : "off";
}
