import { describe, expect, it } from "vitest";
import { pairingCodeFor } from "../../sim/cli.js";
import {
  applyCommand,
  buildOnlineStatus,
  buildTelemetry,
  createRng,
  nativeTopics,
  OFFLINE_STATUS,
  parseConfig,
  parseControl,
  sampleVoltage,
} from "../../sim/native-payloads.js";

const NOW = Date.UTC(2024, 0, 15, 10, 45, 30, 123);

describe("native smartplug/v1 payloads (PROTOCOLS.md §1)", () => {
  it("uses the smartplug/{device_id}/… topics", () => {
    expect(nativeTopics("sim-001")).toEqual({
      telemetry: "smartplug/sim-001/telemetry",
      status: "smartplug/sim-001/status",
      control: "smartplug/sim-001/control",
      config: "smartplug/sim-001/config",
    });
  });

  it("builds telemetry with an ISO UTC millisecond timestamp, rounded fields and I = P / V", () => {
    expect(buildTelemetry({ power: 60.54, voltage: 229.96, relayOn: true, energyWh: 12.34567 }, NOW)).toEqual({
      timestamp: "2024-01-15T10:45:30.123Z",
      voltage: 230,
      current: 0.263,
      power: 60.5,
      relay_state: true,
      energy_wh: 12.346,
    });
  });

  it("keeps the JSON key order of the spec example", () => {
    const json = JSON.stringify(buildTelemetry({ power: 1, voltage: 230, relayOn: true, energyWh: 0 }, NOW));
    expect(json).toBe('{"timestamp":"2024-01-15T10:45:30.123Z","voltage":230,"current":0.004,"power":1,"relay_state":true,"energy_wh":0}');
  });

  it("reports 0 W and 0 A while the relay is off, whatever the load would draw", () => {
    expect(buildTelemetry({ power: 2000, voltage: 231.2, relayOn: false, energyWh: 5 }, NOW)).toEqual({
      timestamp: "2024-01-15T10:45:30.123Z",
      voltage: 231.2,
      current: 0,
      power: 0,
      relay_state: false,
      energy_wh: 5,
    });
  });

  it("never emits -0", () => {
    expect(Object.is(buildTelemetry({ power: -0.01, voltage: 230, relayOn: true, energyWh: -0.0001 }, NOW).power, -0)).toBe(false);
  });

  it("builds online status, with the command id echoed only when given", () => {
    expect(buildOnlineStatus(true, "1.0.0")).toEqual({ status: "online", relay_state: true, firmware_version: "1.0.0" });
    expect(buildOnlineStatus(false, "1.2.3", "cmd-0001")).toEqual({ status: "online", relay_state: false, firmware_version: "1.2.3", command_id: "cmd-0001" });
    expect(OFFLINE_STATUS).toEqual({ status: "offline" });
  });

  it("parses the three relay commands and ignores everything else", () => {
    expect(parseControl('{"command":"relay_on","id":"abc12345"}')).toEqual({ command: "relay_on", id: "abc12345" });
    expect(parseControl(Buffer.from('{"command":"relay_toggle"}'))).toEqual({ command: "relay_toggle" });
    expect(parseControl('{"command":"relay_off","id":7}')).toEqual({ command: "relay_off" });
    expect(parseControl('{"command":"reboot","id":"x"}')).toBeUndefined();
    expect(parseControl("not json")).toBeUndefined();
    expect(parseControl("[]")).toBeUndefined();
  });

  it("applies relay commands", () => {
    expect([applyCommand(false, "relay_on"), applyCommand(true, "relay_off"), applyCommand(true, "relay_toggle"), applyCommand(false, "relay_toggle")]).toEqual([true, false, false, true]);
  });

  it("accepts interval_ms config within 100 ms … 1 h only", () => {
    expect(parseConfig('{"interval_ms":5000}')).toEqual({ intervalMs: 5000 });
    expect(parseConfig('{"interval_ms":50}')).toEqual({});
    expect(parseConfig('{"interval_ms":"1000"}')).toEqual({});
    expect(parseConfig('{"interval_ms":1000.5}')).toEqual({});
    expect(parseConfig("{}")).toEqual({});
  });

  it("draws reproducible voltage noise per device id, within 230 ± 2 V", () => {
    const a = createRng("sim-001");
    const b = createRng("sim-001");
    const c = createRng("sim-002");
    const va = Array.from({ length: 1000 }, () => sampleVoltage(a));
    const vb = Array.from({ length: 1000 }, () => sampleVoltage(b));
    const vc = Array.from({ length: 1000 }, () => sampleVoltage(c));
    expect(va).toEqual(vb);
    expect(va).not.toEqual(vc);
    expect(va.every((v) => v >= 228 && v <= 232)).toBe(true);
  });
});

describe("pairingCodeFor", () => {
  it("derives a stable 16-hex-char code per device and secret", () => {
    const code = pairingCodeFor("sim-001");
    expect(code).toMatch(/^[0-9a-f]{16}$/);
    expect(pairingCodeFor("sim-001")).toBe(code);
    expect(pairingCodeFor("sim-002")).not.toBe(code);
    expect(pairingCodeFor("sim-001", "other-secret")).not.toBe(code);
  });
});
