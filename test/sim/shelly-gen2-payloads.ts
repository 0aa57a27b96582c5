// Pure payload building and RPC evaluation for Shelly Gen2/Gen3 (PROTOCOLS.md §4), as a Plus Plug S sends them.
import { round } from "./sim-util.js";

export const GEN2_MODEL = "SNPL-00112EU";
export const GEN2_APP = "PlusPlugS";
export const GEN2_VERSION = "1.4.4";
export const GEN2_FW_ID = "20241011-114455/1.4.4-g6d2a586";
/** How often the plug checks its measurements for a NotifyStatus by default, ms. */
export const DEFAULT_GEN2_INTERVAL_MS = 1000;
/** Fields whose change a periodic NotifyStatus carries (PROTOCOLS.md §4: only the changed ones). */
export const MEASURED_FIELDS = ["apower", "voltage", "current", "aenergy"] as const;

/** JSON-RPC error codes the firmware uses. */
export const RPC_ERROR = { invalidArgument: -103, notFound: -105, methodNotFound: -114 } as const;

export interface Gen2Topics {
  online: string;
  events: string;
  rpc: string;
  /** `status_update` here publishes every component's status under status/<component>. */
  command: string;
  switchStatus: string;
}

export function gen2Topics(prefix: string): Gen2Topics {
  return { online: `${prefix}/online`, events: `${prefix}/events/rpc`, rpc: `${prefix}/rpc`, command: `${prefix}/command`, switchStatus: `${prefix}/status/switch:0` };
}

/** Notification and status timestamps: Unix seconds with two decimals (1788945292.88). */
export function rpcTs(ms: number): number {
  return round(ms / 1000, 2);
}

export interface SwitchState {
  output: boolean;
  /** What last switched the output: "init", "MQTT", "button"… */
  source: string;
  apower: number; // W
  voltage: number; // V
  freq: number; // Hz
  current: number; // A
  totalWh: number; // aenergy.total, Wh, cumulative
  /** Energy of the last three complete minutes, mWh, newest first. */
  byMinute: [number, number, number];
  /** Unix seconds of the current minute's start. */
  minuteTs: number;
  tempC: number;
}

export interface SwitchStatus {
  id: 0;
  source: string;
  output: boolean;
  apower: number;
  voltage: number;
  freq: number;
  current: number;
  aenergy: { total: number; by_minute: number[]; minute_ts: number };
  temperature: { tC: number; tF: number };
}

/** The full switch:0 status (Switch.GetStatus, NotifyFullStatus, status/switch:0), in the firmware's key order. */
export function buildSwitchStatus(s: SwitchState): SwitchStatus {
  const apower = round(s.output ? Math.max(0, s.apower) : 0, 1);
  const voltage = round(s.voltage, 1);
  return {
    id: 0,
    source: s.source,
    output: s.output,
    apower,
    voltage,
    freq: round(s.freq, 1),
    current: round(voltage > 0 && apower > 0 ? s.current : 0, 3),
    aenergy: { total: round(s.totalWh, 3), by_minute: s.byMinute.map((v) => round(v, 3)), minute_ts: s.minuteTs },
    temperature: { tC: round(s.tempC, 1), tF: round(s.tempC * 1.8 + 32, 1) },
  };
}

/** The measured fields that differ between two statuses (a NotifyStatus delta); empty when nothing changed. */
export function diffSwitchStatus(prev: SwitchStatus | null, next: SwitchStatus): Partial<SwitchStatus> {
  const out: Record<string, unknown> = {};
  for (const k of MEASURED_FIELDS) {
    if (!prev || JSON.stringify(prev[k]) !== JSON.stringify(next[k])) out[k] = next[k];
  }
  return out as Partial<SwitchStatus>;
}

export interface Notification {
  src: string;
  dst: string;
  method: "NotifyStatus" | "NotifyFullStatus" | "NotifyEvent";
  params: Record<string, unknown> & { ts: number };
}

export function buildNotification(src: string, method: Notification["method"], ts: number, body: Record<string, unknown>): Notification {
  return { src, dst: `${src}/events`, method, params: { ts, ...body } };
}

export interface DeviceFacts {
  id: string;
  mac: string;
  ip: string;
  uptimeSec: number;
  nowMs: number;
  ssid: string;
  rssi: number;
}

/** Shelly.GetStatus (and NotifyFullStatus's params without ts). */
export function buildShellyStatus(sw: SwitchStatus, d: DeviceFacts): Record<string, unknown> {
  const t = new Date(d.nowMs);
  return {
    ble: {},
    cloud: { connected: false },
    mqtt: { connected: true },
    "switch:0": sw,
    sys: {
      mac: d.mac,
      restart_required: false,
      time: `${String(t.getHours()).padStart(2, "0")}:${String(t.getMinutes()).padStart(2, "0")}`,
      unixtime: Math.floor(d.nowMs / 1000),
      uptime: Math.floor(d.uptimeSec),
      ram_size: 262_144,
      ram_free: 112_000,
      fs_size: 458_752,
      fs_free: 139_264,
      cfg_rev: 12,
      kvs_rev: 0,
      schedule_rev: 0,
      webhook_rev: 0,
      available_updates: {},
    },
    wifi: { sta_ip: d.ip, status: "got ip", ssid: d.ssid, rssi: d.rssi },
    ws: { connected: false },
  };
}

export function buildDeviceInfo(d: Pick<DeviceFacts, "id" | "mac">): Record<string, unknown> {
  return { name: null, id: d.id, mac: d.mac, slot: 0, model: GEN2_MODEL, gen: 2, fw_id: GEN2_FW_ID, ver: GEN2_VERSION, app: GEN2_APP, auth_en: false, auth_domain: null };
}

export interface RpcRequest {
  id?: number | string;
  src: string;
  method: string;
  params: Record<string, unknown>;
}

/** A request frame on <prefix>/rpc; undefined when it is not one or has no `src` to answer to (the firmware drops those). */
export function parseRpcRequest(payload: Buffer | string): RpcRequest | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString());
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.method !== "string" || typeof o.src !== "string" || o.src.length === 0) return undefined;
  const params = o.params !== null && typeof o.params === "object" && !Array.isArray(o.params) ? (o.params as Record<string, unknown>) : {};
  const req: RpcRequest = { src: o.src, method: o.method, params };
  if (typeof o.id === "number" || typeof o.id === "string") req.id = o.id;
  return req;
}

export type RpcOutcome = { result: unknown; output?: boolean } | { error: { code: number; message: string } };

export interface RpcContext {
  output: boolean;
  switchStatus(): SwitchStatus;
  shellyStatus(): Record<string, unknown>;
  deviceInfo(): Record<string, unknown>;
}

function switchId(params: Record<string, unknown>): RpcOutcome | null {
  if (params.id === undefined) return { error: { code: RPC_ERROR.invalidArgument, message: "Missing required argument 'id'!" } };
  if (params.id !== 0) return { error: { code: RPC_ERROR.notFound, message: `Argument 'id', value ${JSON.stringify(params.id)} not found!` } };
  return null;
}

/** What the firmware answers to a request; `output` is the relay state it switches to, if any. */
export function evaluateRpc(req: RpcRequest, ctx: RpcContext): RpcOutcome {
  switch (req.method) {
    case "Switch.Set": {
      const bad = switchId(req.params);
      if (bad) return bad;
      if (typeof req.params.on !== "boolean") return { error: { code: RPC_ERROR.invalidArgument, message: "Missing required argument 'on'!" } };
      return { result: { was_on: ctx.output }, output: req.params.on };
    }
    case "Switch.Toggle": {
      const bad = switchId(req.params);
      if (bad) return bad;
      return { result: { was_on: ctx.output }, output: !ctx.output };
    }
    case "Switch.GetStatus":
      return switchId(req.params) ?? { result: ctx.switchStatus() };
    case "Shelly.GetStatus":
      return { result: ctx.shellyStatus() };
    case "Shelly.GetDeviceInfo":
      return { result: ctx.deviceInfo() };
    default:
      return { error: { code: RPC_ERROR.methodNotFound, message: `Method ${req.method} not found` } };
  }
}

/** The response frame, published on `<request src>/rpc`. */
export function buildRpcResponse(req: RpcRequest, deviceId: string, outcome: RpcOutcome): Record<string, unknown> {
  const head = { ...(req.id === undefined ? {} : { id: req.id }), src: deviceId, dst: req.src };
  return "error" in outcome ? { ...head, error: outcome.error } : { ...head, result: outcome.result };
}
