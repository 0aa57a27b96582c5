import { describe, expect, it } from "vitest";
import {
  applyPowerArg,
  applyTelePeriodArg,
  buildEnergy,
  buildPowerResult,
  buildSensor,
  buildState,
  buildStatus10,
  parseCommand,
  tasmotaTime,
  tasmotaTopics,
  tasmotaUptime,
} from "../../sim/tasmota-payloads.js";
import { tasmotaAdapter } from "../../../hub/adapters/tasmota-adapter.js";

const NOW = Date.UTC(2024, 0, 15, 10, 45, 30, 789);
const ENERGY = { power: 2635.4, voltage: 227.3, powerFactor: 0.99, totalWh: 6294.4, todayWh: 954.2, yesterdayWh: 5340, totalStartTime: "2018-11-14T18:39:40" };

describe("Tasmota payloads (PROTOCOLS.md §2)", () => {
  it("uses cmnd/stat/tele topics with the plug's Topic", () => {
    const t = tasmotaTopics("athom-1");
    expect([t.lwt, t.state, t.sensor, t.result, t.power, t.status(10), t.status(""), t.info(1), t.cmnd]).toEqual([
      "tele/athom-1/LWT",
      "tele/athom-1/STATE",
      "tele/athom-1/SENSOR",
      "stat/athom-1/RESULT",
      "stat/athom-1/POWER",
      "stat/athom-1/STATUS10",
      "stat/athom-1/STATUS",
      "tele/athom-1/INFO1",
      "cmnd/athom-1/",
    ]);
  });

  it("prints Time in device-local time, without an offset unless SetOption52 asks for one", () => {
    expect(tasmotaTime(NOW, 0, false)).toBe("2024-01-15T10:45:30");
    expect(tasmotaTime(NOW, 60, false)).toBe("2024-01-15T11:45:30");
    expect(tasmotaTime(NOW, 60, true)).toBe("2024-01-15T11:45:30+01:00");
    expect(tasmotaTime(NOW, -330, true)).toBe("2024-01-15T05:15:30-05:30");
  });

  it("prints Uptime as <days>T<hh:mm:ss>", () => {
    expect(tasmotaUptime(13)).toBe("0T00:00:13");
    expect(tasmotaUptime(2 * 86_400 + 3 * 3600 + 4 * 60 + 5.9)).toBe("2T03:04:05");
  });

  it("builds the documented SENSOR shape: kWh with 3 decimals, Period in Wh, integer W and V, I = S / V", () => {
    const body = buildSensor("2018-02-15T17:37:10", buildEnergy(ENERGY, 217.4));
    expect(JSON.stringify(body)).toBe(
      '{"Time":"2018-02-15T17:37:10","ENERGY":{"TotalStartTime":"2018-11-14T18:39:40","Total":6.294,"Yesterday":5.34,"Today":0.954,"Period":217,"Power":2635,"ApparentPower":2662,"ReactivePower":378,"Factor":0.99,"Voltage":227,"Current":11.727}}',
    );
  });

  it("prints Total, Yesterday and Today with EnergyRes decimals", () => {
    expect(buildEnergy(ENERGY, undefined, 5)).toMatchObject({ Total: 6.2944, Yesterday: 5.34, Today: 0.9542 });
    expect(buildEnergy(ENERGY, undefined, 0)).toMatchObject({ Total: 6, Yesterday: 5, Today: 1 });
  });

  it("reports zeros but keeps the voltage when the relay is off", () => {
    expect(buildEnergy({ ...ENERGY, power: 0 })).toEqual({
      TotalStartTime: "2018-11-14T18:39:40",
      Total: 6.294,
      Yesterday: 5.34,
      Today: 0.954,
      Power: 0,
      ApparentPower: 0,
      ReactivePower: 0,
      Factor: 0,
      Voltage: 227,
      Current: 0,
    });
  });

  it("answers Status 10 with the same sensors under StatusSNS, without Period", () => {
    expect(buildStatus10("2024-01-15T10:45:30", buildEnergy(ENERGY, 12))).toEqual({
      StatusSNS: { Time: "2024-01-15T10:45:30", ENERGY: buildEnergy(ENERGY) },
    });
  });

  it("builds STATE with Uptime, MqttCount and POWER", () => {
    expect(buildState({ time: "2024-01-15T10:45:30", uptimeSec: 13.7, mqttCount: 2, relayOn: false, rssi: 70, ssid: "home" })).toMatchObject({
      Time: "2024-01-15T10:45:30",
      Uptime: "0T00:00:13",
      UptimeSec: 13,
      MqttCount: 2,
      POWER: "OFF",
      Wifi: { SSId: "home", RSSI: 70, Signal: -65 },
    });
    expect(buildPowerResult(true)).toEqual({ POWER: "ON" });
  });

  it("reads commands case-insensitively, with the relay index and a trimmed payload", () => {
    expect(parseCommand("cmnd/t1/", "cmnd/t1/Power", " toggle ")).toEqual({ name: "POWER", index: 1, arg: "toggle" });
    expect(parseCommand("cmnd/t1/", "cmnd/t1/POWER1", "")).toEqual({ name: "POWER", index: 1, arg: "" });
    expect(parseCommand("cmnd/t1/", "cmnd/t1/power2", "ON")).toEqual({ name: "POWER", index: 2, arg: "ON" });
    expect(parseCommand("cmnd/t1/", "cmnd/t1/Status", "10")).toEqual({ name: "STATUS", index: 0, arg: "10" });
    expect(parseCommand("cmnd/t1/", "cmnd/tasmotas/Power", "ON")).toBeUndefined();
    expect(parseCommand("cmnd/t1/", "cmnd/t1/", "ON")).toBeUndefined();
  });

  it("applies Power ON|OFF|TOGGLE (and 1|0|2); an empty payload only reports", () => {
    expect(["ON", "on", "1", "OFF", "0", "TOGGLE", "2", "", "half"].map((a) => applyPowerArg(true, a))).toEqual([true, true, true, false, false, false, false, "query", "invalid"]);
    expect(applyPowerArg(false, "toggle")).toBe(true);
  });

  it("applies TelePeriod: 0 disables, 1 restores 300, others clamp to 10…3600", () => {
    expect(["", "0", "1", "5", "60", "99999", "x"].map((a) => applyTelePeriodArg(42, a))).toEqual([42, 0, 300, 10, 60, 3600, 42]);
  });

  it("builds payloads the hub's adapter reads back to the same figures", () => {
    const plug = { deviceId: "t1", family: "tasmota" as const, mqttUser: "t1", topic: "t1", channel: 0 };
    const sensor = JSON.stringify(buildSensor(tasmotaTime(NOW, 60, false), buildEnergy(ENERGY, 1)));
    expect(tasmotaAdapter.parse(plug, "tele/t1/SENSOR", Buffer.from(sensor), NOW)).toEqual({
      ok: true,
      events: [{ kind: "reading", reading: { ts: NOW, power: 2635, voltage: 227, current: 11.727, relayOn: null, counterWh: 6294 } }],
    });
    const withOffset = JSON.stringify(buildStatus10(tasmotaTime(NOW, 60, true), buildEnergy(ENERGY)));
    const r = tasmotaAdapter.parse(plug, "stat/t1/STATUS10", Buffer.from(withOffset), NOW + 5000);
    expect(r.ok && r.events[0]).toMatchObject({ reading: { ts: Math.floor(NOW / 1000) * 1000 } });
  });
});
