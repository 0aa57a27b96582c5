// Tasmota plugs (PROTOCOLS.md §2) against the real hub over real MQTT: the simulator in test/sim/tasmota-plug.ts
// speaks the firmware's topics and payloads; the hub polls metered plugs with Status 10 every 200 ms here.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../helpers/hub.js";
import { connectClient, type MqttClient } from "../../../helpers/mqtt.js";
import { startTasmotaPlug, type TasmotaPlug, type TasmotaPlugOptions } from "../../../sim/tasmota-plug.js";
import { buildEnergy, buildSensor, tasmotaTime } from "../../../sim/tasmota-payloads.js";
import {
  FAMILY_HUB_ENV,
  command,
  connectAs,
  counters,
  device,
  dropped,
  hourEnergyWh,
  increases,
  medianGapMs,
  nonDecreasing,
  publishExpectingDisconnect,
  refused,
  scrape,
  security,
  sleep,
  storedReadings,
  subackCode,
  untilDevice,
  untilReadings,
} from "./support.js";

let t: TestHub;
const plugs: TasmotaPlug[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  t = await startTestHub({ env: FAMILY_HUB_ENV });
  await t.owner();
});
afterEach(() => {
  for (const p of plugs.splice(0)) p.kill();
  for (const c of clients.splice(0)) c.end(true);
});
afterAll(async () => {
  await t.close();
});

/** Pairs a Tasmota plug and starts its simulator: 100 W load, TelePeriod 1 h (so readings come from polls). */
async function tasmota(id: string, o: Partial<TasmotaPlugOptions> = {}): Promise<{ plug: TasmotaPlug; code: string }> {
  const code = await t.pair(id, { family: "tasmota" });
  const plug = startTasmotaPlug({ url: t.mqttUrl, deviceId: id, password: code, loadW: 100, telePeriodSec: 3600, reconnect: false, ...o });
  plugs.push(plug);
  await plug.connected();
  await untilDevice(t, id, (d) => [d.status, d.power], ([s, p]) => s === "online" && p !== null, "online with a first reading");
  return { plug, code };
}

describe("Tasmota plugs", () => {
  it("pairing answers with what to type into the plug (Topic = client id = user = device id), and a plug configured with it connects", async () => {
    await t.owner();
    const res = await t.api("/devices", { body: { device_id: "athom-kitchen", name: "Kettle", pairing_code: "s3cret-code", family: "tasmota" } });
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body).toEqual({
      device_id: "athom-kitchen",
      name: "Kettle",
      family: "tasmota",
      channel: 0,
      status: "offline",
      relay_state: null,
      firmware_version: null,
      last_seen: null,
      power: null,
      energy_kwh: 0,
      created_at: expect.any(String),
      mqtt: { host: "127.0.0.1", port: t.hub.mqttPort, client_id: "athom-kitchen", username: "athom-kitchen", password: "s3cret-code", topic: "athom-kitchen" },
    });
    const m = body.mqtt;
    const plug = startTasmotaPlug({ url: `mqtt://${m.host}:${m.port}`, deviceId: m.client_id, topic: m.topic, password: m.password, reconnect: false });
    plugs.push(plug);
    await plug.connected();
    await untilDevice(t, "athom-kitchen", (d) => d.status, (s) => s === "online", "online");
  });

  it("stays connected through the firmware's connect sequence: LWT Online, the empty cmnd/<t>/POWER, group and fallback subscriptions (refused, harmless)", async () => {
    const before = await scrape(t);
    const { plug } = await tasmota("tas-connect");
    await sleep(600);
    expect(plug.isConnected).toBe(true);
    // The empty POWER goes out before the firmware subscribes, so it does not come back to the plug itself.
    expect(plug.stats).toMatchObject({ power: 0, mqttCount: 1, boots: 1 });
    expect(await increases(t, before, [security("publish_denied"), dropped("acl_denied"), security("subscribe_denied")])).toEqual({
      [security("publish_denied")]: 0,
      [dropped("acl_denied")]: 0,
      [security("subscribe_denied")]: 2, // cmnd/tasmotas/# and cmnd/tas-connect_fb/#
    });
  });

  it("reports online, relay, power, voltage, current and the kWh counter; with TelePeriod 1 h the poller fills history from Status 10 every 200 ms", async () => {
    const { plug } = await tasmota("tas-report", { energyWh: 1234 });
    const readings = await untilReadings(t, "tas-report", 6);
    // The first SENSOR comes 5 s after connecting, then hourly: (nearly) every reading answered a poll.
    expect(plug.stats.tele).toBeLessThanOrEqual(1);
    expect(plug.stats.status10).toBeGreaterThanOrEqual(readings.length - plug.stats.tele);
    expect(readings.length - plug.stats.tele).toBeGreaterThanOrEqual(5);
    for (const r of readings) {
      expect(r.power_avg).toBe(100);
      expect(r.voltage_avg).toBeGreaterThanOrEqual(228);
      expect(r.voltage_avg).toBeLessThanOrEqual(232);
      expect(r.current_avg).toBeCloseTo(100 / 0.945 / 230, 1); // apparent power / voltage
      expect(r.energy_wh).toBeGreaterThanOrEqual(1234); // ENERGY.Total, kWh → Wh
      expect(r.energy_wh).toBeLessThan(1240);
    }
    expect(medianGapMs(readings)).toBeGreaterThanOrEqual(150); // HUB_POLL_INTERVAL_MS = 200
    expect(medianGapMs(readings)).toBeLessThanOrEqual(400);
    expect(await device(t, "tas-report")).toMatchObject({ family: "tasmota", status: "online", relay_state: true, power: 100 });
  });

  it("switches with confirmation from stat RESULT/POWER: off, on, toggle, toggle", async () => {
    const { plug } = await tasmota("tas-switch");
    const off = await command(t, "tas-switch", "relay_off");
    expect(off).toEqual({ status: 200, body: { command_id: expect.any(String), device_id: "tas-switch", command: "relay_off", status: "confirmed", relay_state: false, timestamp: expect.any(String) } });
    expect(plug.relayOn).toBe(false);
    await untilDevice(t, "tas-switch", (d) => d.power, (p) => p === 0, "0 W after switching off");
    expect(await command(t, "tas-switch", "relay_on")).toMatchObject({ status: 200, body: { status: "confirmed", relay_state: true } });
    expect(await command(t, "tas-switch", "relay_toggle")).toMatchObject({ status: 200, body: { command: "relay_toggle", status: "confirmed", relay_state: false } });
    expect(await command(t, "tas-switch", "relay_toggle")).toMatchObject({ status: 200, body: { status: "confirmed", relay_state: true } });
    expect(plug.relayOn).toBe(true);
    expect(plug.stats.power).toBe(4);
    await untilDevice(t, "tas-switch", (d) => d.power, (p) => p === 100, "100 W after switching on");
  });

  it("goes offline on a power cut (will: LWT Offline), refuses commands with 409, and comes back online when power returns", async () => {
    const { plug } = await tasmota("tas-offline");
    plug.kill();
    await untilDevice(t, "tas-offline", (d) => d.status, (s) => s === "offline", "offline after the cut");
    expect(await command(t, "tas-offline", "relay_off")).toMatchObject({ status: 409, body: { device_id: "tas-offline", command: "relay_off", status: "offline", relay_state: true } });
    expect(plug.relayOn).toBe(true); // nothing reached the plug

    await plug.reboot();
    await untilDevice(t, "tas-offline", (d) => d.status, (s) => s === "online", "online again");
    expect(plug.stats).toMatchObject({ boots: 2, mqttCount: 1 });
    const before = (await storedReadings(t, "tas-offline")).length;
    await untilReadings(t, "tas-offline", before + 3); // the poller picked it up again
    expect(await command(t, "tas-offline", "relay_off")).toMatchObject({ status: 200, body: { status: "confirmed", relay_state: false } });
  });

  it("keeps ENERGY.Total across a reboot and the hub counts each Wh once (no double count)", async () => {
    // 3.6 kW is 1 Wh per second; EnergyRes 5 prints Total to 0.01 Wh.
    const { plug } = await tasmota("tas-counter", { loadW: 3600, energyWh: 5000, energyRes: 5 });
    await untilReadings(t, "tas-counter", 5);
    await plug.reboot();
    await untilDevice(t, "tas-counter", (d) => d.status, (s) => s === "online", "online after reboot");
    const n = (await storedReadings(t, "tas-counter")).length;
    await untilReadings(t, "tas-counter", n + 5);
    const c = counters(await storedReadings(t, "tas-counter"));
    expect(nonDecreasing(c)).toBe(true); // the counter never went back: it persisted
    const first = c[0]!;
    const last = c[c.length - 1]!;
    expect(first).toBeGreaterThanOrEqual(5000);
    expect(last - first).toBeGreaterThan(1); // ~2 s of 1 Wh/s
    expect(await hourEnergyWh(t, "tas-counter")).toBeCloseTo(last - first, 2);
    expect((await device(t, "tas-counter")).energy_kwh).toBeCloseTo((last - first) / 1000, 3);
    expect(last - first).toBeLessThanOrEqual(plug.energyWh - 5000 + 0.01); // never more than the plug metered
  });

  it("counter drops over MQTT: < 10 % is noise (ignored, the dip not counted twice), > 10 % is a reset (counted from zero); energy_kwh through the API", async () => {
    // ENERGY.Total as a reflashed or reset plug sends it (`EnergyTotal 0`, a new TotalStartTime), on tele SENSOR.
    const code = await t.pair("tas-reset", { family: "tasmota" });
    const p = await connectAs(t, "tas-reset", code, clients);
    const base = Date.now() - 60_000;
    let i = 0;
    const report = async (totalWh: number) => {
      const ms = base + 1000 * i++; // one reading per second of plug time (Time carries an offset: it is used)
      const energy = buildEnergy({ power: 100, voltage: 230, powerFactor: 0.95, totalWh, todayWh: 0, yesterdayWh: 0, totalStartTime: "2026-01-01T00:00:00" });
      await p.publishAsync("tele/tas-reset/SENSOR", JSON.stringify(buildSensor(tasmotaTime(ms, 0, true), energy)), { qos: 1 });
      return (await device(t, "tas-reset")).energy_kwh as number;
    };
    expect(await report(10_000)).toBe(0); // the first counter is a baseline
    expect(await report(10_500)).toBe(0.5);
    expect(await report(10_000)).toBe(0.5); // −4.8 %: noise, neither subtracted nor re-based
    expect(await report(10_600)).toBe(0.6); // +100 Wh over the 10 500 baseline: the dip is not counted twice
    expect(await report(50)).toBe(0.65); // −99.5 %: a reset; the plug counted 50 Wh since
    expect(await report(250)).toBe(0.85);
    expect(counters(await storedReadings(t, "tas-reset"))).toEqual([10_000, 10_500, 10_000, 10_600, 50, 250]);
    expect(await hourEnergyWh(t, "tas-reset")).toBeCloseTo(850, 3);
  });

  it("A2: a plug's credentials under another Tasmota's client id are refused (CONNACK 5); the victim stays connected and reporting", async () => {
    const codeA = await t.pair("tas-a2", { family: "tasmota" });
    const { plug: b } = await tasmota("tas-b2");
    const before = await scrape(t);
    await expect(connectClient(t.mqttUrl, { clientId: "tas-b2", username: "tas-a2", password: codeA })).rejects.toMatchObject({ code: 5 });
    expect(await increases(t, before, [refused("client_id_mismatch")])).toEqual({ [refused("client_id_mismatch")]: 1 });
    expect(b.isConnected).toBe(true);
    expect((await device(t, "tas-b2")).status).toBe("online");
    const n = (await storedReadings(t, "tas-b2")).length;
    await untilReadings(t, "tas-b2", n + 2);
    expect(await storedReadings(t, "tas-a2")).toEqual([]);
  });

  it("A4: publishing into another plug's namespace (tele/<other>/SENSOR, LWT, stat/<other>/RESULT, cmnd/<other>/POWER) closes the connection; nothing stored or delivered", async () => {
    const codeA = await t.pair("tas-a4", { family: "tasmota" });
    const { plug: b } = await tasmota("tas-b4");
    const before = await scrape(t);
    const spoofs: [string, string][] = [
      ["tele/tas-b4/SENSOR", '{"Time":"2024-01-01T00:00:00","ENERGY":{"Total":99,"Power":9999,"Voltage":230,"Current":43.5}}'],
      ["tele/tas-b4/LWT", "Offline"],
      ["stat/tas-b4/RESULT", '{"POWER":"OFF"}'],
      ["cmnd/tas-b4/POWER", "OFF"], // the one cmnd topic a plug may publish is its own
    ];
    for (const [topic, payload] of spoofs) {
      const a = await connectAs(t, "tas-a4", codeA, clients);
      expect(await publishExpectingDisconnect(a, topic, payload), topic).toBe(false);
    }
    expect(await increases(t, before, [security("publish_denied"), dropped("acl_denied")])).toEqual({ [security("publish_denied")]: 4, [dropped("acl_denied")]: 4 });
    expect(b.relayOn).toBe(true); // the spoofed command never reached it
    expect(b.stats.power).toBe(0);
    expect(await device(t, "tas-b4")).toMatchObject({ status: "online", relay_state: true, power: 100 });
    expect((await storedReadings(t, "tas-b4")).map((r) => r.power_avg).filter((p) => p !== 100)).toEqual([]);
  });

  it("A5: subscribing to another plug's command topic gets SUBACK 128 and receives nothing; its own cmnd/<t>/# is granted", async () => {
    const codeA = await t.pair("tas-a5", { family: "tasmota" });
    await tasmota("tas-b5");
    const a = await connectAs(t, "tas-a5", codeA, clients);
    const inbox: string[] = [];
    a.on("message", (topic) => inbox.push(topic));
    const before = await scrape(t);
    const codes: Record<string, number> = {};
    for (const f of ["cmnd/tas-b5/#", "cmnd/tas-b5/Power", "cmnd/+/Power", "cmnd/#", "stat/tas-b5/#", "#", "cmnd/tas-a5/#"]) codes[f] = await subackCode(a, f);
    expect(codes).toEqual({ "cmnd/tas-b5/#": 128, "cmnd/tas-b5/Power": 128, "cmnd/+/Power": 128, "cmnd/#": 128, "stat/tas-b5/#": 128, "#": 128, "cmnd/tas-a5/#": 1 });
    expect(await increases(t, before, [security("subscribe_denied")])).toEqual({ [security("subscribe_denied")]: 6 });
    expect(await command(t, "tas-b5", "relay_off")).toMatchObject({ status: 200, body: { status: "confirmed", relay_state: false } });
    await sleep(300); // polls of tas-b5 go out meanwhile, too
    expect(inbox.filter((topic) => !topic.startsWith("cmnd/tas-a5/"))).toEqual([]);
    expect(a.connected).toBe(true);
  });

  it("A7: malformed or implausible Tasmota payloads are acked, dropped with a counted reason, and nothing is stored; the plug stays connected", async () => {
    const code = await t.pair("tas-7", { family: "tasmota" });
    const p = await connectAs(t, "tas-7", code, clients);
    const before = await scrape(t);
    const bad: [string, string, string][] = [
      ["tele/tas-7/SENSOR", "{", "malformed_json"],
      ["tele/tas-7/SENSOR", '{"Time":"2024-01-01T00:00:00"}', "no_energy_object"],
      ["stat/tas-7/STATUS10", '{"StatusSNS":5}', "no_energy_object"],
      ["tele/tas-7/SENSOR", '{"ENERGY":{"Power":-3}}', "out_of_range_power"],
      ["tele/tas-7/SENSOR", '{"ENERGY":{"Power":"lots"}}', "bad_power"],
      ["tele/tas-7/SENSOR", '{"ENERGY":{"Voltage":230,"Current":1000000}}', "out_of_range_current"],
      ["tele/tas-7/SENSOR", '{"ENERGY":{"Total":-1}}', "out_of_range_counterWh"],
      ["tele/tas-7/SENSOR", '{"Time":"2099-01-01T00:00:00Z","ENERGY":{"Power":1}}', "timestamp_in_future"],
      ["tele/tas-7/SENSOR", '{"ENERGY":{"Yesterday":1}}', "no_measurement"],
      ["stat/tas-7/POWER", "ON!", "bad_relay_state"],
      ["stat/tas-7/RESULT", '{"POWER":"HALF"}', "bad_relay_state"],
      ["tele/tas-7/LWT", "Maybe", "bad_availability"],
    ];
    const expected: Record<string, number> = {};
    for (const [topic, payload, reason] of bad) {
      await p.publishAsync(topic, payload, { qos: 1 }); // acked: resending cannot make it good
      expected[dropped(reason)] = (expected[dropped(reason)] ?? 0) + 1;
    }
    expect(await increases(t, before, Object.keys(expected))).toEqual(expected);
    expect(p.connected).toBe(true);
    expect(await storedReadings(t, "tas-7")).toEqual([]);
    expect(await device(t, "tas-7")).toMatchObject({ status: "online", relay_state: null, power: null });
    // A good message still lands.
    await p.publishAsync("tele/tas-7/SENSOR", '{"Time":"2024-01-01T00:00:00","ENERGY":{"Total":1.5,"Power":42,"Voltage":230,"Current":0.19}}', { qos: 1 });
    expect((await storedReadings(t, "tas-7")).map((r) => [r.power_avg, r.energy_wh])).toEqual([[42, 1500]]);
  });
});
