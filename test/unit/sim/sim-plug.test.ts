import { describe, expect, it } from "vitest";
import { SIM_FAMILIES, isValidDeviceId, simDeviceId } from "../../sim/sim-plug.js";
import { familyAt, parseSimArgs } from "../../sim/cli.js";
import { Meter, loadCurve } from "../../sim/sim-core.js";
import { uniqueHex24 } from "../../sim/sim-util.js";

describe("simulated device ids", () => {
  it("look like each family's real ids", () => {
    expect(simDeviceId("native", "sim-", 0)).toBe("sim-001");
    expect(simDeviceId("tasmota", "sim-", 1)).toBe("sim-tasmota-002");
    expect(simDeviceId("shelly-gen1", "sim-", 2)).toMatch(/^shellyplug-s-[0-9A-F]{6}$/);
    expect(simDeviceId("shelly-gen2", "sim-", 3)).toMatch(/^shellyplusplugs-[0-9a-f]{12}$/);
  });

  it("are stable, valid hub device ids, and never repeat within a prefix (10 000 plugs)", () => {
    for (const f of SIM_FAMILIES) {
      const ids = Array.from({ length: 10_000 }, (_, i) => simDeviceId(f, "sim-", i));
      expect(new Set(ids).size, f).toBe(ids.length);
      expect(ids.every(isValidDeviceId), f).toBe(true);
      expect(simDeviceId(f, "sim-", 42)).toBe(ids[42]);
    }
    expect(simDeviceId("shelly-gen1", "a-", 0)).not.toBe(simDeviceId("shelly-gen1", "b-", 0));
    expect(uniqueHex24("p", 5)).toHaveLength(6);
  });
});

describe("sim CLI arguments", () => {
  it("accepts every family and mix, which is round-robin over the four", () => {
    expect(parseSimArgs(["--family", "mix", "--plugs", "6"])).toMatchObject({ family: "mix", plugs: 6, telePeriodSec: 300 });
    expect([0, 1, 2, 3, 4, 5].map((i) => familyAt("mix", i))).toEqual(["native", "tasmota", "shelly-gen1", "shelly-gen2", "native", "tasmota"]);
    expect(familyAt("shelly-gen2", 3)).toBe("shelly-gen2");
    const c = parseSimArgs(["--family", "tasmota", "--tele-period", "10", "--interval-ms", "500"]);
    expect(c).toMatchObject({ family: "tasmota", telePeriodSec: 10, intervalMs: 500 });
    expect(parseSimArgs([])).not.toHaveProperty("intervalMs"); // each family's own default
  });

  it("refuses unknown families and prefixes that make invalid device ids", () => {
    expect(() => parseSimArgs(["--family", "zigbee"])).toThrow(/unsupported --family "zigbee"; supported: native, tasmota, shelly-gen1, shelly-gen2, mix/);
    expect(() => parseSimArgs(["--prefix", "a/b-"])).toThrow(/gives the device id "a\/b-001"/);
    expect(() => parseSimArgs(["--family", "tasmota", "--prefix", "x".repeat(60)])).toThrow(/device id/);
  });
});

describe("energy meter", () => {
  it("integrates load power while the relay is on, not while off, and not across a power cut", () => {
    const m = new Meter(loadCurve({ loadW: 3600 }, 0), 0, true, 0);
    expect(m.advance(1000)).toBe(3600);
    expect(m.energyWh).toBeCloseTo(1, 9);
    m.setRelay(false, 2000);
    expect(m.advance(5000)).toBe(0);
    expect(m.energyWh).toBeCloseTo(2, 9);
    m.setRelay(true, 5000);
    m.resume(10_000); // dark from 5 s to 10 s
    m.advance(11_000);
    expect(m.energyWh).toBeCloseTo(3, 9);
    m.advance(9_000); // a clock stepping back never drains the counter
    expect(m.energyWh).toBeCloseTo(3, 9);
  });
});
