// Pure payload building and parsing for the native smartplug/v1 protocol (PROTOCOLS.md §1).
// Kept free of I/O so unit tests can assert whole payloads.

export const DEFAULT_FIRMWARE = "1.0.0";
export const NOMINAL_VOLTAGE = 230;
export const VOLTAGE_SPREAD = 2; // ±V around nominal: a quiet European mains supply
// Bounds for config {"interval_ms"}: below 100 ms a plug would flood the hub; above 1 h it looks dead.
export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 3_600_000;

export interface NativeTopics {
  telemetry: string;
  status: string;
  control: string;
  config: string;
}

export function nativeTopics(deviceId: string): NativeTopics {
  const root = `smartplug/${deviceId}`;
  return { telemetry: `${root}/telemetry`, status: `${root}/status`, control: `${root}/control`, config: `${root}/config` };
}

export interface TelemetryState {
  power: number; // W
  voltage: number; // V
  relayOn: boolean;
  energyWh: number; // counter since boot
}

export interface TelemetryPayload {
  timestamp: string;
  voltage: number;
  current: number;
  power: number;
  relay_state: boolean;
  energy_wh: number;
}

/** Rounds to `digits` decimals; `+ 0` turns -0 into 0 so JSON never shows "-0". */
function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f + 0;
}

/** Current is derived from the rounded power and voltage so the payload is self-consistent (P = V·I). */
export function buildTelemetry(state: TelemetryState, nowMs: number): TelemetryPayload {
  const voltage = round(state.voltage, 1);
  const power = round(state.relayOn ? state.power : 0, 1);
  return {
    timestamp: new Date(nowMs).toISOString(),
    voltage,
    current: round(voltage > 0 ? power / voltage : 0, 3),
    power,
    relay_state: state.relayOn,
    energy_wh: round(state.energyWh, 3),
  };
}

export interface OnlineStatusPayload {
  status: "online";
  relay_state: boolean;
  firmware_version: string;
  command_id?: string;
}

export function buildOnlineStatus(relayOn: boolean, firmware: string, commandId?: string): OnlineStatusPayload {
  const status: OnlineStatusPayload = { status: "online", relay_state: relayOn, firmware_version: firmware };
  if (commandId !== undefined) status.command_id = commandId;
  return status;
}

/** The will: the broker publishes it (retained) when the plug vanishes without DISCONNECT. */
export const OFFLINE_STATUS = { status: "offline" } as const;

export const NATIVE_COMMANDS = ["relay_on", "relay_off", "relay_toggle"] as const;
export type NativeCommand = (typeof NATIVE_COMMANDS)[number];

export interface ControlMessage {
  command: NativeCommand;
  id?: string;
}

function parseJsonObject(payload: Buffer | string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(payload.toString());
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Unknown commands and malformed JSON give undefined: the firmware ignores them rather than answering. */
export function parseControl(payload: Buffer | string): ControlMessage | undefined {
  const obj = parseJsonObject(payload);
  const command = obj?.command;
  if (typeof command !== "string" || !(NATIVE_COMMANDS as readonly string[]).includes(command)) return undefined;
  const msg: ControlMessage = { command: command as NativeCommand };
  if (typeof obj?.id === "string") msg.id = obj.id;
  return msg;
}

export function applyCommand(relayOn: boolean, command: NativeCommand): boolean {
  if (command === "relay_on") return true;
  if (command === "relay_off") return false;
  return !relayOn;
}

export interface ConfigMessage {
  intervalMs?: number;
}

/** Only `interval_ms` is understood; out-of-range or non-integer values are ignored, not clamped. */
export function parseConfig(payload: Buffer | string): ConfigMessage {
  const v = parseJsonObject(payload)?.interval_ms;
  if (typeof v === "number" && Number.isInteger(v) && v >= MIN_INTERVAL_MS && v <= MAX_INTERVAL_MS) return { intervalMs: v };
  return {};
}

/** mulberry32 seeded with FNV-1a of the seed string: tiny, fast and reproducible per device id. */
export function createRng(seed: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export function sampleVoltage(rng: () => number): number {
  return NOMINAL_VOLTAGE + (rng() * 2 - 1) * VOLTAGE_SPREAD;
}
