import { describe, expect, it } from "vitest";
import { tasmotaAdapter } from "../../../hub/adapters/tasmota-adapter.js";
import type { PlugIdentity } from "../../../hub/adapters/types.js";
import { SENSOR_DOC, SENSOR_MULTI, SENSOR_WITH_OFFSET, STATE_DOC, RESULT_ON, STATUS10 } from "../../fixtures/tasmota/payloads.js";

const plug: PlugIdentity = { deviceId: "athom-1", family: "tasmota", mqttUser: "athom-1", topic: "athom-1", channel: 0 };
const NOW = Date.parse("2026-03-01T09:00:30Z");
const parse = (topic: string, payload: string, p = plug) => tasmotaAdapter.parse(p, topic, Buffer.from(payload), NOW);

describe("Tasmota adapter (PROTOCOLS.md §2)", () => {
  it("maps the documented SENSOR payload; Time without offset takes the hub's receive time; Total kWh → Wh", () => {
    expect(parse("tele/athom-1/SENSOR", SENSOR_DOC)).toEqual({
      ok: true,
      events: [{ kind: "reading", reading: { ts: NOW, power: 2635, voltage: 227, current: 11.661, relayOn: null, counterWh: 6294 } }],
    });
  });

  it("honours a UTC offset in Time", () => {
    const r = parse("tele/athom-1/SENSOR", SENSOR_WITH_OFFSET);
    expect(r.ok && r.events[0]).toEqual({ kind: "reading", reading: { ts: Date.parse("2026-03-01T09:00:00Z"), power: 100, voltage: 230, current: 0.45, relayOn: null, counterWh: 1500 } });
  });

  it("takes channel 0 of multi-channel arrays, or the configured channel", () => {
    const r0 = parse("tele/athom-1/SENSOR", SENSOR_MULTI);
    expect(r0.ok && r0.events[0]).toMatchObject({ reading: { power: 10, current: 1.32, voltage: 230, counterWh: 1100 } });
    const r1 = parse("tele/athom-1/SENSOR", SENSOR_MULTI, { ...plug, channel: 1 });
    expect(r1.ok && r1.events[0]).toMatchObject({ reading: { power: 20, current: 2.1, voltage: 230, counterWh: 2200 } });
  });

  it("maps STATUS10 (the poll answer) like SENSOR", () => {
    const r = parse("stat/athom-1/STATUS10", STATUS10);
    expect(r).toEqual({ ok: true, events: [{ kind: "reading", reading: { ts: NOW, power: 55, voltage: 229, current: 0.24, relayOn: null, counterWh: 6300 } }] });
  });

  it("maps LWT, STATE, RESULT and POWER", () => {
    expect(parse("tele/athom-1/LWT", "Online")).toEqual({ ok: true, events: [{ kind: "availability", online: true }] });
    expect(parse("tele/athom-1/LWT", "Offline")).toEqual({ ok: true, events: [{ kind: "availability", online: false }] });
    expect(parse("tele/athom-1/STATE", STATE_DOC)).toEqual({ ok: true, events: [{ kind: "relay", relayOn: true }] });
    expect(parse("stat/athom-1/RESULT", RESULT_ON)).toEqual({
      ok: true,
      events: [
        { kind: "relay", relayOn: true },
        { kind: "commandResult", commandId: null, relayOn: true, ok: true },
      ],
    });
    expect(parse("stat/athom-1/POWER", "OFF")).toEqual({ ok: true, events: [{ kind: "relay", relayOn: false }] });
    expect(parse("stat/athom-1/POWER2", "OFF")).toEqual({ ok: true, events: [] });
    expect(parse("stat/athom-1/POWER2", "ON", { ...plug, channel: 1 })).toEqual({ ok: true, events: [{ kind: "relay", relayOn: true }] });
  });

  it.each([
    ["tele/athom-1/SENSOR", "{", "malformed_json"],
    ["tele/athom-1/SENSOR", '{"Time":"2026-03-01T10:00:00"}', "no_energy_object"],
    ["tele/athom-1/SENSOR", '{"ENERGY":{"Power":-3}}', "out_of_range_power"],
    ["tele/athom-1/SENSOR", '{"ENERGY":{"Power":"lots"}}', "bad_power"],
    ["tele/athom-1/SENSOR", '{"ENERGY":{"Total":-1}}', "out_of_range_counterWh"],
    ["tele/athom-1/SENSOR", '{"Time":"2099-01-01T00:00:00Z","ENERGY":{"Power":1}}', "timestamp_in_future"],
    ["tele/athom-1/SENSOR", '{"ENERGY":{"Yesterday":1}}', "no_measurement"],
    ["tele/athom-1/LWT", "Maybe", "bad_availability"],
    ["stat/athom-1/POWER", "ON!", "bad_relay_state"],
    ["stat/athom-1/RESULT", '{"POWER":"HALF"}', "bad_relay_state"],
  ])("A7: %s %s → %s", (topic, payload, reason) => {
    expect(parse(topic, payload)).toEqual({ ok: false, reason });
  });

  it("A4/A5: namespace of the plug's own topic only", () => {
    expect(tasmotaAdapter.mayPublish(plug, "tele/athom-1/SENSOR")).toBe(true);
    expect(tasmotaAdapter.mayPublish(plug, "stat/athom-1/RESULT")).toBe(true);
    expect(tasmotaAdapter.mayPublish(plug, "cmnd/athom-1/Power")).toBe(false);
    expect(tasmotaAdapter.mayPublish(plug, "tele/athom-2/SENSOR")).toBe(false);
    expect(tasmotaAdapter.maySubscribe(plug, "cmnd/athom-1/#")).toBe(true);
    for (const f of ["#", "cmnd/tasmotas/#", "cmnd/+/Power", "cmnd/athom-2/#", "tele/athom-1/#", "cmnd/athom-1/+"]) expect(tasmotaAdapter.maySubscribe(plug, f)).toBe(false);
  });

  it("encodes Power commands per channel and polls with Status 10", () => {
    expect(tasmotaAdapter.encodeCommand(plug, "relay_on", "c1", null)).toEqual([{ topic: "cmnd/athom-1/Power", payload: "ON", qos: 1 }]);
    expect(tasmotaAdapter.encodeCommand({ ...plug, channel: 1 }, "relay_toggle", "c2", null)).toEqual([{ topic: "cmnd/athom-1/Power2", payload: "TOGGLE", qos: 1 }]);
    expect(tasmotaAdapter.pollMessages!(plug)).toEqual([{ topic: "cmnd/athom-1/Status", payload: "10", qos: 0 }]);
  });
});
