import { describe, expect, it } from "vitest";
import { createShellyGen1Adapter } from "../../../hub/adapters/shelly-gen1-adapter.js";
import { createShellyGen2Adapter } from "../../../hub/adapters/shelly-gen2-adapter.js";
import type { PlugIdentity } from "../../../hub/adapters/types.js";
import { GEN1_ANNOUNCE, GEN2_NOTIFY_STATUS, GEN2_SWITCH_STATUS, gen2FullStatus } from "../../fixtures/shelly/payloads.js";

const NOW = 1788945293_000;

describe("Shelly Gen1 adapter (PROTOCOLS.md §3)", () => {
  const plug: PlugIdentity = { deviceId: "shellyplug-s-7AD2F1", family: "shelly-gen1", mqttUser: "shellyplug-s-7AD2F1", topic: "shellies/shellyplug-s-7AD2F1", channel: 0 };
  const root = "shellies/shellyplug-s-7AD2F1";

  it("maps online, announce (firmware) and relay, with overpower as off", () => {
    const a = createShellyGen1Adapter();
    const p = (t: string, s: string) => a.parse(plug, t, Buffer.from(s), NOW);
    expect(p(`${root}/online`, "true")).toEqual({ ok: true, events: [{ kind: "availability", online: true }] });
    expect(p(`${root}/online`, "false")).toEqual({ ok: true, events: [{ kind: "availability", online: false }] });
    expect(p("shellies/announce", GEN1_ANNOUNCE)).toEqual({ ok: true, events: [{ kind: "availability", online: true, firmware: "20230913-114008/v1.14.0-gcb84623" }] });
    expect(p("shellies/announce", GEN1_ANNOUNCE.replace("7AD2F1", "000000"))).toEqual({ ok: true, events: [] });
    expect(p(`${root}/relay/0`, "on")).toEqual({ ok: true, events: [{ kind: "relay", relayOn: true }] });
    expect(p(`${root}/relay/0`, "overpower")).toEqual({ ok: true, events: [{ kind: "relay", relayOn: false }] });
  });

  it("joins the watt-minute counter (→ Wh) onto the next power reading", () => {
    const a = createShellyGen1Adapter();
    const p = (t: string, s: string) => a.parse(plug, t, Buffer.from(s), NOW);
    expect(p(`${root}/relay/0/power`, "12.5")).toEqual({ ok: true, events: [{ kind: "reading", reading: { ts: NOW, power: 12.5, voltage: null, current: null, relayOn: null, counterWh: null } }] });
    expect(p(`${root}/relay/0/energy`, "6000")).toEqual({ ok: true, events: [] });
    expect(p(`${root}/relay/0/power`, "13")).toEqual({ ok: true, events: [{ kind: "reading", reading: { ts: NOW, power: 13, voltage: null, current: null, relayOn: null, counterWh: 100 } }] });
  });

  it.each([
    ["relay/0/power", "abc", "bad_power"],
    ["relay/0/power", "-4", "out_of_range_power"],
    ["relay/0/energy", "NaN", "bad_counterWh"],
    ["relay/0", "maybe", "bad_relay_state"],
    ["online", "yes", "bad_availability"],
  ])("A7: %s %s → %s", (sub, payload, reason) => {
    expect(createShellyGen1Adapter().parse(plug, `${root}/${sub}`, Buffer.from(payload), NOW)).toEqual({ ok: false, reason });
  });

  it("A4/A5: own root only (plus the announce and broadcast command topics); commands per relay", () => {
    const a = createShellyGen1Adapter();
    expect(a.mayPublish(plug, `${root}/relay/0/power`)).toBe(true);
    expect(a.mayPublish(plug, "shellies/announce")).toBe(true);
    expect(a.mayPublish(plug, "shellies/shellyplug-s-000000/relay/0")).toBe(false);
    expect(a.maySubscribe(plug, `${root}/relay/0/command`)).toBe(true);
    expect(a.maySubscribe(plug, "shellies/command")).toBe(true);
    for (const f of ["#", "shellies/#", "shellies/+/relay/0/command", "shellies/shellyplug-s-000000/relay/0/command"]) expect(a.maySubscribe(plug, f)).toBe(false);
    expect(a.encodeCommand(plug, "relay_toggle", "c", null)).toEqual([{ topic: `${root}/relay/0/command`, payload: "toggle", qos: 1 }]);
  });
});

describe("Shelly Gen2/3 adapter (PROTOCOLS.md §4)", () => {
  const plug: PlugIdentity = { deviceId: "shelly1pmminig3-5432044edbc0", family: "shelly-gen2", mqttUser: "shelly1pmminig3-5432044edbc0", topic: "shelly1pmminig3-5432044edbc0", channel: 0 };
  const pre = plug.topic;

  it("overlays NotifyStatus deltas on the last full status", () => {
    const a = createShellyGen2Adapter();
    const p = (t: string, s: string) => a.parse(plug, t, Buffer.from(s), NOW);
    const full = p(`${pre}/events/rpc`, gen2FullStatus(1788945200.5));
    expect(full).toEqual({
      ok: true,
      events: [
        { kind: "reading", reading: { ts: 1788945200500, power: 11.5, voltage: 240.3, current: 0.073, relayOn: true, counterWh: 152669.987 } },
        { kind: "relay", relayOn: true },
      ],
    });
    // The documented delta carries only apower and current: voltage and the counter come from the full status.
    expect(p(`${pre}/events/rpc`, GEN2_NOTIFY_STATUS)).toEqual({
      ok: true,
      events: [
        { kind: "reading", reading: { ts: 1788945292880, power: 11.5, voltage: 240.3, current: 0.071, relayOn: true, counterWh: 152669.987 } },
        { kind: "relay", relayOn: true },
      ],
    });
    const tempOnly = JSON.stringify({ method: "NotifyStatus", params: { ts: 1788945293, "switch:0": { temperature: { tC: 56 } } } });
    expect(p(`${pre}/events/rpc`, tempOnly)).toEqual({ ok: true, events: [] });
  });

  it("maps the full component status topic and availability", () => {
    const a = createShellyGen2Adapter();
    expect(a.parse(plug, `${pre}/status/switch:0`, Buffer.from(GEN2_SWITCH_STATUS), NOW)).toMatchObject({ ok: true, events: [{ kind: "reading", reading: { ts: NOW, power: 11.5, counterWh: 152669.987 } }, { kind: "relay", relayOn: true }] });
    expect(a.parse(plug, `${pre}/online`, Buffer.from("false"), NOW)).toEqual({ ok: true, events: [{ kind: "availability", online: false }] });
  });

  it("sends Switch.Set / Switch.Toggle frames whose ids are matched to their replies", () => {
    const a = createShellyGen2Adapter();
    const [set] = a.encodeCommand(plug, "relay_on", "cmd-1", false);
    const frame = JSON.parse(set!.payload);
    expect(set!.topic).toBe(`${pre}/rpc`);
    expect(frame).toEqual({ id: expect.any(Number), src: `${pre}/hub`, method: "Switch.Set", params: { id: 0, on: true } });
    const reply = JSON.stringify({ id: frame.id, src: pre, dst: `${pre}/hub`, result: { was_on: false } });
    expect(a.parse(plug, `${pre}/hub/rpc`, Buffer.from(reply), NOW)).toEqual({
      ok: true,
      events: [
        { kind: "relay", relayOn: true },
        { kind: "commandResult", commandId: "cmd-1", relayOn: true, ok: true },
      ],
    });
    // The same reply again is no longer pending.
    expect(a.parse(plug, `${pre}/hub/rpc`, Buffer.from(reply), NOW)).toEqual({ ok: true, events: [] });

    const [tog] = a.encodeCommand(plug, "relay_toggle", "cmd-2", true);
    const tf = JSON.parse(tog!.payload);
    expect(tf.method).toBe("Switch.Toggle");
    const tr = JSON.stringify({ id: tf.id, src: pre, dst: `${pre}/hub`, result: { was_on: true } });
    expect(a.parse(plug, `${pre}/hub/rpc`, Buffer.from(tr), NOW)).toMatchObject({ ok: true, events: [{ kind: "relay", relayOn: false }, { kind: "commandResult", commandId: "cmd-2", relayOn: false }] });

    const [bad] = a.encodeCommand(plug, "relay_off", "cmd-3", true);
    const err = JSON.stringify({ id: JSON.parse(bad!.payload).id, src: pre, dst: `${pre}/hub`, error: { code: -103, message: "Invalid argument" } });
    expect(a.parse(plug, `${pre}/hub/rpc`, Buffer.from(err), NOW)).toEqual({ ok: true, events: [{ kind: "commandResult", commandId: "cmd-3", relayOn: null, ok: false }] });
  });

  it("polls with Switch.GetStatus and reads the reply as a reading", () => {
    const a = createShellyGen2Adapter();
    const [poll] = a.pollMessages!(plug);
    const f = JSON.parse(poll!.payload);
    expect(f).toEqual({ id: expect.any(Number), src: `${pre}/hub`, method: "Switch.GetStatus", params: { id: 0 } });
    const reply = JSON.stringify({ id: f.id, src: pre, dst: `${pre}/hub`, result: JSON.parse(GEN2_SWITCH_STATUS) });
    expect(a.parse(plug, `${pre}/hub/rpc`, Buffer.from(reply), NOW)).toMatchObject({ ok: true, events: [{ kind: "reading", reading: { ts: NOW, power: 11.5, voltage: 240.3 } }, { kind: "relay", relayOn: true }] });
  });

  it.each([
    ["events/rpc", "{", "malformed_json"],
    ["events/rpc", '{"method":"NotifyStatus"}', "bad_rpc_frame"],
    ["events/rpc", '{"method":"NotifyStatus","params":{"ts":"now"}}', "bad_timestamp"],
    ["events/rpc", '{"method":"NotifyStatus","params":{"ts":1788945292,"switch:0":{"apower":-5}}}', "out_of_range_power"],
    ["events/rpc", '{"method":"NotifyStatus","params":{"ts":1788945292,"switch:0":{"output":"yes"}}}', "bad_relay_state"],
    ["hub/rpc", '{"result":{}}', "bad_rpc_frame"],
    ["online", "1", "bad_availability"],
  ])("A7: %s %s → %s", (sub, payload, reason) => {
    expect(createShellyGen2Adapter().parse(plug, `${pre}/${sub}`, Buffer.from(payload), NOW)).toEqual({ ok: false, reason });
  });

  it("A4/A5: own prefix only", () => {
    const a = createShellyGen2Adapter();
    expect(a.mayPublish(plug, `${pre}/events/rpc`)).toBe(true);
    expect(a.mayPublish(plug, `${pre}/hub/rpc`)).toBe(true);
    expect(a.mayPublish(plug, "other-plug/events/rpc")).toBe(false);
    expect(a.maySubscribe(plug, `${pre}/rpc`)).toBe(true);
    for (const f of ["#", "+/rpc", "other-plug/rpc", `${pre}/+`]) expect(a.maySubscribe(plug, f)).toBe(false);
  });
});
