// Tasmota (PROTOCOLS.md §2): cmnd/<topic>/<Command> down; stat/<topic>/… and tele/<topic>/… up.
// The hub tells the user to set the plug's Topic to its device id, so <topic> = device id.
import type { PlugAdapter, PlugEvent, ParseResult, PlugIdentity } from "./types.js";
import { checkTimestamp, checkValue, parseJsonObject } from "./validate.js";
import type { Reading } from "../bus.js";

function split(topic: string): [prefix: string, id: string, rest: string] | null {
  const a = topic.indexOf("/");
  if (a < 0) return null;
  const b = topic.indexOf("/", a + 1);
  if (b < 0) return null;
  return [topic.slice(0, a), topic.slice(a + 1, b), topic.slice(b + 1)];
}

/** Tasmota `Time` is device-local and may lack a UTC offset; without one, trust the hub's receive time. */
export function tasmotaTime(time: unknown, receivedAt: number): number | { reason: string } {
  if (time === undefined) return receivedAt;
  if (typeof time !== "string") return { reason: "bad_timestamp" };
  if (!/(Z|[+-]\d\d:?\d\d)$/.test(time)) return receivedAt;
  const ts = Date.parse(time);
  const bad = checkTimestamp(ts, receivedAt);
  return bad ? { reason: bad } : ts;
}

/** Multi-channel builds send arrays (`"Current":[1.320,2.100]`): take this plug's channel. */
function channelValue(v: unknown, channel: number): unknown {
  return Array.isArray(v) ? v[channel] : v;
}

export function parseTasmotaEnergy(energy: unknown, time: unknown, channel: number, receivedAt: number): ParseResult {
  if (energy === null || typeof energy !== "object" || Array.isArray(energy)) return { ok: false, reason: "no_energy_object" };
  const e = energy as Record<string, unknown>;
  const ts = tasmotaTime(time, receivedAt);
  if (typeof ts === "object") return { ok: false, reason: ts.reason };
  const power = checkValue("power", channelValue(e.Power, channel));
  const voltage = checkValue("voltage", channelValue(e.Voltage, channel));
  const current = checkValue("current", channelValue(e.Current, channel));
  const totalKwh = channelValue(e.Total, channel);
  const counter = checkValue("counterWh", typeof totalKwh === "number" ? totalKwh * 1000 : totalKwh);
  for (const v of [power, voltage, current, counter]) if (v !== null && typeof v === "object") return { ok: false, reason: v.reason };
  const reading: Reading = {
    ts,
    power: power as number | null,
    voltage: voltage as number | null,
    current: current as number | null,
    relayOn: null,
    counterWh: counter as number | null,
  };
  if (reading.power === null && reading.voltage === null && reading.current === null && reading.counterWh === null) return { ok: false, reason: "no_measurement" };
  return { ok: true, events: [{ kind: "reading", reading }] };
}

/** `POWER` for a single relay, `POWER<n>` (1-based) on multi-relay builds. */
function powerKey(channel: number): string[] {
  return channel === 0 ? ["POWER", "POWER1"] : [`POWER${channel + 1}`];
}

function relayFrom(body: Record<string, unknown>, channel: number): boolean | null | { reason: string } {
  for (const k of powerKey(channel)) {
    const v = body[k];
    if (v === undefined) continue;
    if (v === "ON") return true;
    if (v === "OFF") return false;
    return { reason: "bad_relay_state" };
  }
  return null;
}

export const tasmotaAdapter: PlugAdapter = {
  family: "tasmota",
  topicFor: (deviceId) => deviceId,
  mayPublish(plug: PlugIdentity, topic: string) {
    const p = split(topic);
    // The firmware also publishes an empty cmnd/<topic>/POWER after every connect (MqttConnected, "Satisfy iobroker").
    return p !== null && (p[0] === "tele" || p[0] === "stat" || (p[0] === "cmnd" && p[2] === "POWER")) && p[1] === plug.topic && p[2].length > 0;
  },
  maySubscribe(plug: PlugIdentity, filter: string) {
    // Tasmota subscribes to cmnd/<topic>/# (and a group and fallback topic, which are refused).
    const p = split(filter);
    return p !== null && p[0] === "cmnd" && p[1] === plug.topic && !p[2].includes("+") && (p[2] === "#" || !p[2].includes("#"));
  },
  parse(plug, topic, payload, receivedAt) {
    const p = split(topic);
    if (!p) return { ok: false, reason: "unknown_topic" };
    const [prefix, , rest] = p;
    const text = payload.toString("utf8");
    if (prefix === "tele" && rest === "LWT") {
      if (text === "Online") return { ok: true, events: [{ kind: "availability", online: true }] };
      if (text === "Offline") return { ok: true, events: [{ kind: "availability", online: false }] };
      return { ok: false, reason: "bad_availability" };
    }
    if (prefix === "stat" && /^POWER\d?$/.test(rest)) {
      const key = rest;
      if (!powerKey(plug.channel).includes(key)) return { ok: true, events: [] }; // another channel's relay
      if (text !== "ON" && text !== "OFF") return { ok: false, reason: "bad_relay_state" };
      return { ok: true, events: [{ kind: "relay", relayOn: text === "ON" }] };
    }
    const body = parseJsonObject(payload);
    if (prefix === "tele" && rest === "SENSOR") {
      if (!body) return { ok: false, reason: "malformed_json" };
      return parseTasmotaEnergy(body.ENERGY, body.Time, plug.channel, receivedAt);
    }
    if (prefix === "stat" && rest === "STATUS10") {
      if (!body) return { ok: false, reason: "malformed_json" };
      const sns = body.StatusSNS as Record<string, unknown> | undefined;
      if (!sns || typeof sns !== "object") return { ok: false, reason: "no_energy_object" };
      return parseTasmotaEnergy(sns.ENERGY, sns.Time, plug.channel, receivedAt);
    }
    if ((prefix === "tele" && rest === "STATE") || (prefix === "stat" && rest === "RESULT")) {
      if (!body) return { ok: false, reason: "malformed_json" };
      const relay = relayFrom(body, plug.channel);
      if (relay !== null && typeof relay === "object") return { ok: false, reason: relay.reason };
      const events: PlugEvent[] = [];
      if (relay !== null) events.push({ kind: "relay", relayOn: relay });
      // A RESULT carrying POWER is the answer to a Power command; Tasmota echoes no id.
      if (relay !== null && rest === "RESULT") events.push({ kind: "commandResult", commandId: null, relayOn: relay, ok: true });
      return { ok: true, events };
    }
    if (prefix === "stat" && rest === "STATUS2" && body) {
      const fw = (body.StatusFWR as Record<string, unknown> | undefined)?.Version;
      if (typeof fw === "string" && fw.length <= 64) return { ok: true, events: [{ kind: "availability", online: true, firmware: fw }] };
    }
    return { ok: true, events: [] }; // INFO1, STATUS…, UPTIME: nothing the hub needs
  },
  encodeCommand(plug, command) {
    const key = plug.channel === 0 ? "Power" : `Power${plug.channel + 1}`;
    const payload = command === "relay_on" ? "ON" : command === "relay_off" ? "OFF" : "TOGGLE";
    return [{ topic: `cmnd/${plug.topic}/${key}`, payload, qos: 1 }];
  },
  pollMessages(plug) {
    return [{ topic: `cmnd/${plug.topic}/Status`, payload: "10", qos: 0 }];
  },
};
