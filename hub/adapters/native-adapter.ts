// Native smartplug/v1 firmware (PROTOCOLS.md §1): smartplug/{id}/telemetry|status up, control|config down.
import type { PlugAdapter, PlugEvent, ParseResult, PlugIdentity } from "./types.js";
import { checkTimestamp, checkValue, parseJsonObject, type Bounded } from "./validate.js";
import type { Reading } from "../bus.js";

const ROOT = "smartplug";

function split(topic: string): [string, string, string] | null {
  const parts = topic.split("/");
  if (parts.length !== 3 || parts[0] !== ROOT) return null;
  return [parts[0], parts[1]!, parts[2]!];
}

function parseTelemetry(body: Record<string, unknown>, receivedAt: number): ParseResult {
  let ts = receivedAt;
  if (body.timestamp !== undefined) {
    if (typeof body.timestamp !== "string") return { ok: false, reason: "bad_timestamp" };
    ts = Date.parse(body.timestamp);
    const bad = checkTimestamp(ts, receivedAt);
    if (bad) return { ok: false, reason: bad };
  }
  const values: Partial<Record<Bounded, number | null>> = {};
  for (const [key, name] of [["voltage", "voltage"], ["current", "current"], ["power", "power"], ["energy_wh", "counterWh"]] as const) {
    const v = checkValue(name, body[key]);
    if (v !== null && typeof v === "object") return { ok: false, reason: v.reason };
    values[name] = v;
  }
  if (values.power == null && values.voltage == null && values.current == null && values.counterWh == null) {
    return { ok: false, reason: "no_measurement" };
  }
  if (body.relay_state !== undefined && typeof body.relay_state !== "boolean") return { ok: false, reason: "bad_relay_state" };
  const reading: Reading = {
    ts,
    power: values.power ?? null,
    voltage: values.voltage ?? null,
    current: values.current ?? null,
    relayOn: typeof body.relay_state === "boolean" ? body.relay_state : null,
    counterWh: values.counterWh ?? null,
  };
  const events: PlugEvent[] = [{ kind: "reading", reading }];
  if (reading.relayOn !== null) events.push({ kind: "relay", relayOn: reading.relayOn });
  return { ok: true, events };
}

function parseStatus(body: Record<string, unknown>): ParseResult {
  if (body.status !== "online" && body.status !== "offline") return { ok: false, reason: "bad_status" };
  if (body.relay_state !== undefined && typeof body.relay_state !== "boolean") return { ok: false, reason: "bad_relay_state" };
  if (body.firmware_version !== undefined && (typeof body.firmware_version !== "string" || body.firmware_version.length > 64)) {
    return { ok: false, reason: "bad_firmware_version" };
  }
  const events: PlugEvent[] = [
    { kind: "availability", online: body.status === "online", ...(typeof body.firmware_version === "string" ? { firmware: body.firmware_version } : {}) },
  ];
  if (typeof body.relay_state === "boolean") {
    events.push({ kind: "relay", relayOn: body.relay_state });
    if (typeof body.command_id === "string") events.push({ kind: "commandResult", commandId: body.command_id, relayOn: body.relay_state, ok: true });
  }
  return { ok: true, events };
}

export const nativeAdapter: PlugAdapter = {
  family: "native",
  topicFor: (deviceId) => `${ROOT}/${deviceId}`,
  mayPublish(plug: PlugIdentity, topic: string) {
    const p = split(topic);
    return p !== null && p[1] === plug.deviceId && (p[2] === "telemetry" || p[2] === "status");
  },
  maySubscribe(plug: PlugIdentity, filter: string) {
    const p = split(filter);
    return p !== null && p[1] === plug.deviceId && (p[2] === "control" || p[2] === "config");
  },
  parse(_plug, topic, payload, receivedAt) {
    const p = split(topic);
    if (!p) return { ok: false, reason: "unknown_topic" };
    const body = parseJsonObject(payload);
    if (!body) return { ok: false, reason: "malformed_json" };
    if (p[2] === "telemetry") return parseTelemetry(body, receivedAt);
    if (p[2] === "status") return parseStatus(body);
    return { ok: false, reason: "unknown_topic" };
  },
  encodeCommand(plug, command, commandId) {
    return [{ topic: `${ROOT}/${plug.deviceId}/control`, payload: JSON.stringify({ command, id: commandId }), qos: 1 }];
  },
};
