import { describe, expect, it } from "vitest";
import { nativeAdapter } from "../../../hub/adapters/native-adapter.js";
import type { PlugIdentity } from "../../../hub/adapters/types.js";
import { TELEMETRY_DOC, STATUS_DOC, WILL_DOC } from "../../fixtures/native/payloads.js";

const plug: PlugIdentity = { deviceId: "p1", family: "native", mqttUser: "p1", topic: "smartplug/p1", channel: 0 };
const DOC_TS = Date.parse("2024-01-15T10:45:30Z");
const parse = (topic: string, payload: string, receivedAt = DOC_TS + 500) => nativeAdapter.parse(plug, topic, Buffer.from(payload), receivedAt);

describe("native adapter (PROTOCOLS.md §1)", () => {
  it("maps the documented telemetry payload to a reading and a relay report", () => {
    expect(parse("smartplug/p1/telemetry", TELEMETRY_DOC)).toEqual({
      ok: true,
      events: [
        { kind: "reading", reading: { ts: DOC_TS, power: 60.5, voltage: 120.2, current: 0.503, relayOn: true, counterWh: null } },
        { kind: "relay", relayOn: true },
      ],
    });
  });

  it("takes the optional energy_wh counter", () => {
    const r = parse("smartplug/p1/telemetry", '{"timestamp":"2024-01-15T10:45:30Z","power":5,"energy_wh":1234.5}');
    expect(r).toEqual({ ok: true, events: [{ kind: "reading", reading: { ts: DOC_TS, power: 5, voltage: null, current: null, relayOn: null, counterWh: 1234.5 } }] });
  });

  it("stamps a reading without timestamp with the hub's receive time", () => {
    const r = parse("smartplug/p1/telemetry", '{"power":1}', 1_700_000_000_000);
    expect(r.ok && r.events[0]).toEqual({ kind: "reading", reading: { ts: 1_700_000_000_000, power: 1, voltage: null, current: null, relayOn: null, counterWh: null } });
  });

  it("maps status and the will to availability, firmware and relay", () => {
    expect(parse("smartplug/p1/status", STATUS_DOC)).toEqual({
      ok: true,
      events: [
        { kind: "availability", online: true, firmware: "1.0.0" },
        { kind: "relay", relayOn: true },
      ],
    });
    expect(parse("smartplug/p1/status", WILL_DOC)).toEqual({ ok: true, events: [{ kind: "availability", online: false }] });
  });

  it("turns a status echoing a command id into a command result", () => {
    const r = parse("smartplug/p1/status", '{"status":"online","relay_state":false,"command_id":"c-1"}');
    expect(r.ok && r.events).toEqual([
      { kind: "availability", online: true },
      { kind: "relay", relayOn: false },
      { kind: "commandResult", commandId: "c-1", relayOn: false, ok: true },
    ]);
  });

  it.each([
    ["not json", "malformed_json"],
    ["[1,2]", "malformed_json"],
    ['{"power":-1}', "out_of_range_power"],
    ['{"power":1e9}', "out_of_range_power"],
    ['{"power":"60"}', "bad_power"],
    ['{"voltage":9999}', "out_of_range_voltage"],
    ['{"current":-0.1}', "out_of_range_current"],
    ['{"energy_wh":-5}', "out_of_range_counterWh"],
    ['{"relay_state":"on","power":1}', "bad_relay_state"],
    ['{"timestamp":"yesterday","power":1}', "bad_timestamp"],
    ['{"timestamp":12345,"power":1}', "bad_timestamp"],
    ['{"timestamp":"2030-01-01T00:00:00Z","power":1}', "timestamp_in_future"],
    ['{"timestamp":"1970-01-01T00:00:00Z","power":1}', "timestamp_too_old"],
    ['{"relay_state":true}', "no_measurement"],
  ])("A7: drops telemetry %s with reason %s", (payload, reason) => {
    expect(parse("smartplug/p1/telemetry", payload)).toEqual({ ok: false, reason });
  });

  it("rejects a status that is neither online nor offline", () => {
    expect(parse("smartplug/p1/status", '{"status":"maybe"}')).toEqual({ ok: false, reason: "bad_status" });
  });

  it("A4/A5: allows publishing and subscribing only inside the plug's own namespace", () => {
    expect(nativeAdapter.mayPublish(plug, "smartplug/p1/telemetry")).toBe(true);
    expect(nativeAdapter.mayPublish(plug, "smartplug/p1/status")).toBe(true);
    expect(nativeAdapter.mayPublish(plug, "smartplug/p1/control")).toBe(false);
    expect(nativeAdapter.mayPublish(plug, "smartplug/p2/telemetry")).toBe(false);
    expect(nativeAdapter.mayPublish(plug, "smartplug/p1/telemetry/x")).toBe(false);
    expect(nativeAdapter.maySubscribe(plug, "smartplug/p1/control")).toBe(true);
    expect(nativeAdapter.maySubscribe(plug, "smartplug/p1/config")).toBe(true);
    for (const f of ["#", "$SYS/#", "smartplug/+/control", "smartplug/p2/control", "smartplug/p1/#", "smartplug/p1/telemetry"]) {
      expect(nativeAdapter.maySubscribe(plug, f)).toBe(false);
    }
  });

  it("encodes commands to the control topic carrying the id", () => {
    expect(nativeAdapter.encodeCommand(plug, "relay_toggle", "c-9", true)).toEqual([
      { topic: "smartplug/p1/control", payload: '{"command":"relay_toggle","id":"c-9"}', qos: 1 },
    ]);
  });
});
