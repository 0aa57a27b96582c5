// Shelly Gen2/Gen3 (PROTOCOLS.md §4): RPC over MQTT under <prefix> (the device id). Notifications on
// <prefix>/events/rpc: NotifyFullStatus after boot, then NotifyStatus with only the changed fields, which
// are overlaid on the last full status. Requests go to <prefix>/rpc with `src` = "<prefix>/hub", so the
// plug's replies land on <prefix>/hub/rpc, inside its own namespace (a shared reply topic would let one
// plug see or forge another's replies).
import type { PlugAdapter, PlugEvent, ParseResult, PlugIdentity } from "./types.js";
import { checkValue, checkTimestamp, parseJsonObject } from "./validate.js";
import type { Reading } from "../bus.js";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);

interface Pending {
  commandId: string | null;
  /** The relay state the request asks for; null for a toggle (decided by the reply's was_on) or a poll. */
  target: boolean | null;
  method: string;
}

interface PlugState {
  /** The switch component status with every delta overlaid. */
  status: Obj | null;
  pending: Map<number, Pending>;
}

const MAX_PENDING = 32;

/** Overlays a NotifyStatus delta on the last full component status (one level deep, like `aenergy`). */
export function overlay(base: Obj | null, delta: Obj): Obj {
  const out: Obj = { ...(base ?? {}) };
  for (const [k, v] of Object.entries(delta)) out[k] = isObj(v) && isObj(out[k]) ? { ...(out[k] as Obj), ...v } : v;
  return out;
}

/** A reading from a switch component status (apower W, voltage V, current A, aenergy.total Wh). */
export function readingFromSwitch(sw: Obj, ts: number): ParseResult {
  const power = checkValue("power", sw.apower);
  const voltage = checkValue("voltage", sw.voltage);
  const current = checkValue("current", sw.current);
  const counter = checkValue("counterWh", isObj(sw.aenergy) ? sw.aenergy.total : undefined);
  for (const v of [power, voltage, current, counter]) if (v !== null && typeof v === "object") return { ok: false, reason: v.reason };
  if (sw.output !== undefined && typeof sw.output !== "boolean") return { ok: false, reason: "bad_relay_state" };
  const events: PlugEvent[] = [];
  if (power !== null || voltage !== null || current !== null || counter !== null) {
    const reading: Reading = {
      ts,
      power: power as number | null,
      voltage: voltage as number | null,
      current: current as number | null,
      relayOn: typeof sw.output === "boolean" ? sw.output : null,
      counterWh: counter as number | null,
    };
    events.push({ kind: "reading", reading });
  }
  if (typeof sw.output === "boolean") events.push({ kind: "relay", relayOn: sw.output });
  return { ok: true, events };
}

export function createShellyGen2Adapter(): PlugAdapter {
  const plugs = new Map<string, PlugState>();
  let nextId = 1;
  const stateOf = (plug: PlugIdentity): PlugState => {
    let s = plugs.get(plug.deviceId);
    if (!s) plugs.set(plug.deviceId, (s = { status: null, pending: new Map() }));
    return s;
  };
  const within = (plug: PlugIdentity, topic: string) => (topic.startsWith(`${plug.topic}/`) ? topic.slice(plug.topic.length + 1) : null);
  const request = (plug: PlugIdentity, method: string, params: Obj, pending: Omit<Pending, "method">) => {
    const s = stateOf(plug);
    const id = nextId++;
    if (nextId > 2 ** 31) nextId = 1;
    s.pending.set(id, { ...pending, method });
    // Replies that never come must not grow the map without bound.
    if (s.pending.size > MAX_PENDING) s.pending.delete(s.pending.keys().next().value!);
    return { topic: `${plug.topic}/rpc`, payload: JSON.stringify({ id, src: `${plug.topic}/hub`, method, params }), qos: 1 as const };
  };

  return {
    family: "shelly-gen2",
    topicFor: (deviceId) => deviceId,
    mayPublish(plug, topic) {
      const rest = within(plug, topic);
      return rest !== null && rest.length > 0;
    },
    maySubscribe(plug, filter) {
      const rest = within(plug, filter);
      return rest !== null && rest.length > 0 && !rest.includes("+") && (rest === "#" || !rest.includes("#"));
    },
    parse(plug, topic, payload, receivedAt) {
      const rest = within(plug, topic);
      if (rest === null) return { ok: false, reason: "unknown_topic" };
      const text = payload.toString("utf8");
      if (rest === "online") {
        if (text === "true") return { ok: true, events: [{ kind: "availability", online: true }] };
        if (text === "false") return { ok: true, events: [{ kind: "availability", online: false }] };
        return { ok: false, reason: "bad_availability" };
      }
      const key = `switch:${plug.channel}`;
      const s = stateOf(plug);
      if (rest === "events/rpc") {
        const body = parseJsonObject(payload);
        if (!body) return { ok: false, reason: "malformed_json" };
        const params = body.params;
        if (!isObj(params)) return { ok: false, reason: "bad_rpc_frame" };
        let ts = receivedAt;
        if (params.ts !== undefined) {
          if (typeof params.ts !== "number") return { ok: false, reason: "bad_timestamp" };
          ts = Math.round(params.ts * 1000);
          const bad = checkTimestamp(ts, receivedAt);
          if (bad) return { ok: false, reason: bad };
        }
        const sw = params[key];
        if (body.method === "NotifyFullStatus") {
          if (!isObj(sw)) return { ok: true, events: [] };
          s.status = { ...sw };
          return readingFromSwitch(s.status, ts);
        }
        if (body.method === "NotifyStatus") {
          if (!isObj(sw)) return { ok: true, events: [] };
          s.status = overlay(s.status, sw);
          // A delta without measurements (say, only temperature) is not a new reading.
          const measured = ["apower", "voltage", "current", "aenergy"].some((k) => k in sw);
          const r = readingFromSwitch(s.status, ts);
          if (!r.ok || measured) return r;
          return { ok: true, events: r.events.filter((e) => e.kind !== "reading" && ("output" in sw || e.kind !== "relay")) };
        }
        return { ok: true, events: [] }; // NotifyEvent and others
      }
      if (rest === `status/${key}`) {
        const body = parseJsonObject(payload);
        if (!body) return { ok: false, reason: "malformed_json" };
        s.status = { ...body };
        return readingFromSwitch(body, receivedAt);
      }
      if (rest === "hub/rpc") {
        const body = parseJsonObject(payload);
        if (!body) return { ok: false, reason: "malformed_json" };
        if (typeof body.id !== "number") return { ok: false, reason: "bad_rpc_frame" };
        const p = s.pending.get(body.id);
        if (!p) return { ok: true, events: [] }; // a late or foreign reply
        s.pending.delete(body.id);
        if (body.error !== undefined || !isObj(body.result)) return { ok: true, events: [{ kind: "commandResult", commandId: p.commandId, relayOn: null, ok: false }] };
        const result = body.result;
        if (p.method === "Switch.GetStatus") {
          s.status = { ...result };
          return readingFromSwitch(result, receivedAt);
        }
        if (typeof result.was_on !== "boolean") return { ok: false, reason: "bad_rpc_frame" };
        const on = p.target ?? !result.was_on;
        return {
          ok: true,
          events: [
            { kind: "relay", relayOn: on },
            { kind: "commandResult", commandId: p.commandId, relayOn: on, ok: true },
          ],
        };
      }
      return { ok: true, events: [] }; // other components' status, debug logs…
    },
    encodeCommand(plug, command, commandId) {
      if (command === "relay_toggle") return [request(plug, "Switch.Toggle", { id: plug.channel }, { commandId, target: null })];
      const on = command === "relay_on";
      return [request(plug, "Switch.Set", { id: plug.channel, on }, { commandId, target: on })];
    },
    pollMessages(plug) {
      return [request(plug, "Switch.GetStatus", { id: plug.channel }, { commandId: null, target: null })];
    },
    forget(plug) {
      plugs.delete(plug.deviceId);
    },
  };
}
