import { describe, expect, it } from "vitest";
import { applyRelayCommand, buildAnnounce, formatPower, gen1Mac, gen1Topics, parseRelayCommand, relayText, wattMinutes } from "../../sim/shelly-gen1-payloads.js";
import {
  buildNotification,
  buildRpcResponse,
  buildShellyStatus,
  buildSwitchStatus,
  diffSwitchStatus,
  evaluateRpc,
  gen2Topics,
  parseRpcRequest,
  rpcTs,
  type RpcContext,
  type SwitchState,
} from "../../sim/shelly-gen2-payloads.js";
import { GEN1_ANNOUNCE, GEN2_SWITCH_STATUS } from "../../fixtures/shelly/payloads.js";

describe("Shelly Gen1 payloads (PROTOCOLS.md §3)", () => {
  it("lives under shellies/<model>-<id>/ plus the shared announce and command topics", () => {
    expect(gen1Topics("shellyplug-s-7AD2F1")).toEqual({
      root: "shellies/shellyplug-s-7AD2F1",
      online: "shellies/shellyplug-s-7AD2F1/online",
      announce: "shellies/shellyplug-s-7AD2F1/announce",
      announceAll: "shellies/announce",
      relay: "shellies/shellyplug-s-7AD2F1/relay/0",
      power: "shellies/shellyplug-s-7AD2F1/relay/0/power",
      energy: "shellies/shellyplug-s-7AD2F1/relay/0/energy",
      relayCommand: "shellies/shellyplug-s-7AD2F1/relay/0/command",
      command: "shellies/shellyplug-s-7AD2F1/command",
      broadcast: "shellies/command",
    });
  });

  it("announces with the documented fields; the MAC ends in the id's hex", () => {
    expect(JSON.stringify(buildAnnounce("shellyplug-s-7AD2F1", "192.168.1.50"))).toBe(GEN1_ANNOUNCE);
    expect(gen1Mac("shellyplug-s-7ad2f1")).toBe("A4CF127AD2F1");
    expect(gen1Mac("my-plug")).toMatch(/^A4CF12[0-9A-F]{6}$/);
  });

  it("sends power as text with two decimals and energy as whole watt-minutes", () => {
    expect([formatPower(63.123), formatPower(0), formatPower(-0.01)]).toEqual(["63.12", "0.00", "0.00"]);
    expect([wattMinutes(0), wattMinutes(1), wattMinutes(2.5 / 60), wattMinutes(100.999 / 60)]).toEqual(["0", "60", "2", "100"]);
  });

  it("obeys on|off|toggle only; reports overpower as its own state", () => {
    expect(["on", "off", "toggle", " on\n", "ON", "1", ""].map((p) => parseRelayCommand(p))).toEqual(["on", "off", "toggle", "on", undefined, undefined, undefined]);
    expect([applyRelayCommand(false, "on"), applyRelayCommand(true, "off"), applyRelayCommand(true, "toggle")]).toEqual([true, false, false]);
    expect([relayText(true, false), relayText(false, false), relayText(false, true), relayText(true, true)]).toEqual(["on", "off", "overpower", "on"]);
  });
});

const STATE: SwitchState = {
  output: true,
  source: "MQTT",
  apower: 11.54,
  voltage: 240.31,
  freq: 50.01,
  current: 0.0731,
  totalWh: 152669.9871,
  byMinute: [0, 0, 0],
  minuteTs: 1788945240,
  tempC: 55,
};

describe("Shelly Gen2 payloads (PROTOCOLS.md §4)", () => {
  it("uses <prefix>/online, events/rpc, rpc, command and status/switch:0", () => {
    expect(gen2Topics("shellyplusplugs-80646fd031f8")).toEqual({
      online: "shellyplusplugs-80646fd031f8/online",
      events: "shellyplusplugs-80646fd031f8/events/rpc",
      rpc: "shellyplusplugs-80646fd031f8/rpc",
      command: "shellyplusplugs-80646fd031f8/command",
      switchStatus: "shellyplusplugs-80646fd031f8/status/switch:0",
    });
  });

  it("builds the documented switch:0 status, key for key", () => {
    expect(JSON.stringify(buildSwitchStatus(STATE))).toBe(JSON.stringify(JSON.parse(GEN2_SWITCH_STATUS)));
  });

  it("reports 0 W and 0 A with the output off", () => {
    expect(buildSwitchStatus({ ...STATE, output: false })).toMatchObject({ output: false, apower: 0, current: 0, voltage: 240.3 });
  });

  it("stamps notifications with float seconds and carries only the measured fields that changed", () => {
    expect(rpcTs(1788945292881)).toBe(1788945292.88);
    const a = buildSwitchStatus(STATE);
    const b = buildSwitchStatus({ ...STATE, current: 0.071, tempC: 56 });
    expect(diffSwitchStatus(a, b)).toEqual({ current: 0.071 });
    expect(diffSwitchStatus(a, a)).toEqual({});
    expect(Object.keys(diffSwitchStatus(null, a))).toEqual(["apower", "voltage", "current", "aenergy"]);
    expect(buildNotification("shelly1pmminig3-5432044edbc0", "NotifyStatus", 1788945292.88, { "switch:0": { apower: 11.5, current: 0.071 } })).toEqual(
      JSON.parse('{"src":"shelly1pmminig3-5432044edbc0","dst":"shelly1pmminig3-5432044edbc0/events","method":"NotifyStatus","params":{"ts":1788945292.88,"switch:0":{"apower":11.5,"current":0.071}}}'),
    );
  });

  it("builds Shelly.GetStatus with switch:0, sys and wifi", () => {
    const s = buildShellyStatus(buildSwitchStatus(STATE), { id: "p", mac: "80646FD031F8", ip: "192.168.1.9", uptimeSec: 12.9, nowMs: 1788945292881, ssid: "home", rssi: -60 });
    expect(Object.keys(s)).toEqual(["ble", "cloud", "mqtt", "switch:0", "sys", "wifi", "ws"]);
    expect(s.sys).toMatchObject({ mac: "80646FD031F8", unixtime: 1788945292, uptime: 12 });
  });

  describe("RPC", () => {
    const ctx = (output: boolean): RpcContext => ({
      output,
      switchStatus: () => buildSwitchStatus({ ...STATE, output }),
      shellyStatus: () => ({ whole: true }),
      deviceInfo: () => ({ id: "p" }),
    });
    const req = (method: string, params: Record<string, unknown> = {}) => ({ id: 7, src: "p/hub", method, params });

    it("reads request frames; frames without src or method are dropped", () => {
      expect(parseRpcRequest('{"id":1,"src":"hub","method":"Switch.Set","params":{"id":0,"on":true}}')).toEqual({ id: 1, src: "hub", method: "Switch.Set", params: { id: 0, on: true } });
      expect(parseRpcRequest('{"src":"hub","method":"Shelly.GetStatus"}')).toEqual({ src: "hub", method: "Shelly.GetStatus", params: {} });
      for (const bad of ["{", "[]", '{"id":1,"method":"Switch.Set"}', '{"id":1,"src":"hub"}', '{"src":"","method":"x"}']) expect(parseRpcRequest(bad), bad).toBeUndefined();
    });

    it("Switch.Set and Switch.Toggle answer was_on and switch", () => {
      expect(evaluateRpc(req("Switch.Set", { id: 0, on: true }), ctx(false))).toEqual({ result: { was_on: false }, output: true });
      expect(evaluateRpc(req("Switch.Toggle", { id: 0 }), ctx(true))).toEqual({ result: { was_on: true }, output: false });
      const reply = buildRpcResponse({ id: 1, src: "hub", method: "Switch.Set", params: {} }, "shellyplus1pm-XXXX", { result: { was_on: false } });
      expect(reply).toEqual({ id: 1, src: "shellyplus1pm-XXXX", dst: "hub", result: { was_on: false } });
    });

    it("Switch.GetStatus returns the switch:0 status; Shelly.GetStatus the whole device", () => {
      expect(evaluateRpc(req("Switch.GetStatus", { id: 0 }), ctx(true))).toEqual({ result: buildSwitchStatus(STATE) });
      expect(evaluateRpc(req("Shelly.GetStatus"), ctx(true))).toEqual({ result: { whole: true } });
    });

    it("answers errors: unknown method -114, bad id -105, missing arguments -103", () => {
      const err = (method: string, params: Record<string, unknown>) => buildRpcResponse(req(method, params), "p", evaluateRpc(req(method, params), ctx(true)));
      expect(err("Switch.Explode", {})).toEqual({ id: 7, src: "p", dst: "p/hub", error: { code: -114, message: "Method Switch.Explode not found" } });
      expect(err("Switch.Set", { id: 1, on: true })).toEqual({ id: 7, src: "p", dst: "p/hub", error: { code: -105, message: "Argument 'id', value 1 not found!" } });
      expect(err("Switch.Set", { id: 0 })).toEqual({ id: 7, src: "p", dst: "p/hub", error: { code: -103, message: "Missing required argument 'on'!" } });
      expect(err("Switch.GetStatus", {})).toEqual({ id: 7, src: "p", dst: "p/hub", error: { code: -103, message: "Missing required argument 'id'!" } });
    });
  });
});
