// Shelly Gen1 (PROTOCOLS.md §3): shellies/<model>-<id>/… with text payloads. Power and the energy counter
// arrive as separate messages every 30 s; the counter is in watt-minutes and resets when the plug reboots
// (the shared reset rule handles that). The device id is the Shelly's own id, which is also its client id.
import type { PlugAdapter, PlugIdentity } from "./types.js";
import { checkValue, parseJsonObject } from "./validate.js";

const ROOT = "shellies";

function within(plug: PlugIdentity, topic: string): string | null {
  const prefix = `${plug.topic}/`;
  return topic.startsWith(prefix) ? topic.slice(prefix.length) : null;
}

function number(text: string): number | undefined {
  if (!/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(text.trim())) return undefined;
  return Number(text);
}

export function createShellyGen1Adapter(): PlugAdapter {
  /** Last energy counter per plug (Wh), joined onto the next power message. */
  const counters = new Map<string, number>();
  return {
    family: "shelly-gen1",
    topicFor: (deviceId) => `${ROOT}/${deviceId}`,
    mayPublish(plug, topic) {
      if (topic === `${ROOT}/announce`) return true; // every Gen1 device announces itself here on connect
      const rest = within(plug, topic);
      return rest !== null && rest.length > 0;
    },
    maySubscribe(plug, filter) {
      if (filter === `${ROOT}/command`) return true; // the broadcast command topic; only the hub publishes there
      const rest = within(plug, filter);
      return rest !== null && rest.length > 0 && !rest.includes("+") && (rest === "#" || !rest.includes("#"));
    },
    parse(plug, topic, payload, receivedAt) {
      const text = payload.toString("utf8");
      if (topic === `${ROOT}/announce`) {
        const body = parseJsonObject(payload);
        if (!body) return { ok: false, reason: "malformed_json" };
        if (body.id !== plug.deviceId && `${ROOT}/${String(body.id)}` !== plug.topic) return { ok: true, events: [] };
        return { ok: true, events: [{ kind: "availability", online: true, ...(typeof body.fw_ver === "string" ? { firmware: body.fw_ver.slice(0, 64) } : {}) }] };
      }
      const rest = within(plug, topic);
      if (rest === null) return { ok: false, reason: "unknown_topic" };
      const ch = plug.channel;
      if (rest === "online") {
        if (text === "true") return { ok: true, events: [{ kind: "availability", online: true }] };
        if (text === "false") return { ok: true, events: [{ kind: "availability", online: false }] };
        return { ok: false, reason: "bad_availability" };
      }
      if (rest === "announce") {
        const body = parseJsonObject(payload);
        if (!body) return { ok: false, reason: "malformed_json" };
        return { ok: true, events: [{ kind: "availability", online: true, ...(typeof body.fw_ver === "string" ? { firmware: body.fw_ver.slice(0, 64) } : {}) }] };
      }
      if (rest === `relay/${ch}`) {
        // "overpower" means the plug switched itself off.
        if (text === "on" || text === "off" || text === "overpower") return { ok: true, events: [{ kind: "relay", relayOn: text === "on" }] };
        return { ok: false, reason: "bad_relay_state" };
      }
      if (rest === `relay/${ch}/energy`) {
        const wm = number(text);
        const v = checkValue("counterWh", wm === undefined ? "x" : wm / 60);
        if (v !== null && typeof v === "object") return { ok: false, reason: v.reason };
        if (v !== null) counters.set(plug.deviceId, v);
        return { ok: true, events: [] };
      }
      if (rest === `relay/${ch}/power`) {
        const w = number(text);
        const v = checkValue("power", w === undefined ? "x" : w);
        if (v !== null && typeof v === "object") return { ok: false, reason: v.reason };
        return {
          ok: true,
          events: [{ kind: "reading", reading: { ts: receivedAt, power: v, voltage: null, current: null, relayOn: null, counterWh: counters.get(plug.deviceId) ?? null } }],
        };
      }
      return { ok: true, events: [] }; // temperature, info, input…: nothing the hub needs
    },
    encodeCommand(plug, command) {
      const payload = command === "relay_on" ? "on" : command === "relay_off" ? "off" : "toggle";
      return [{ topic: `${plug.topic}/relay/${plug.channel}/command`, payload, qos: 1 }];
    },
    forget(plug) {
      counters.delete(plug.deviceId);
    },
  };
}
