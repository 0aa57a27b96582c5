// Shelly Gen1 plugs (PROTOCOLS.md §3) against the real hub over real MQTT: the simulator in
// test/sim/shelly-gen1-plug.ts re-publishes its state every 300 ms here (30 s on a real plug).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../helpers/hub.js";
import { connectClient, type MqttClient } from "../../../helpers/mqtt.js";
import { startShellyGen1Plug, type ShellyGen1Plug, type ShellyGen1PlugOptions } from "../../../sim/shelly-gen1-plug.js";
import { GEN1_FIRMWARE } from "../../../sim/shelly-gen1-payloads.js";
import {
  FAMILY_HUB_ENV,
  freshId,
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
const plugs: ShellyGen1Plug[] = [];
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

/** The id of the plug in the pairing test, as PROTOCOLS.md spells it; the other tests take fresh ids. */
const DOC_ID = "shellyplug-s-7AD2F1";

/** Pairs a Gen1 plug and starts its simulator: 100 W load, state every 300 ms; resolves once the hub has a reading. */
async function gen1(id: string, o: Partial<ShellyGen1PlugOptions> = {}): Promise<{ plug: ShellyGen1Plug; code: string }> {
  const code = await t.pair(id, { family: "shelly-gen1" });
  const plug = startShellyGen1Plug({ url: t.mqttUrl, deviceId: id, password: code, loadW: 100, intervalMs: 300, reconnect: false, ...o });
  plugs.push(plug);
  await plug.connected();
  await untilDevice(t, id, (d) => [d.status, d.power], ([s, p]) => s === "online" && p !== null, "online with a first reading");
  return { plug, code };
}

describe("Shelly Gen1 plugs", () => {
  it("pairing answers with what to type into the plug (client id = user = device id, root shellies/<id>), and a plug configured with it connects", async () => {
    await t.owner();
    const res = await t.api("/devices", { body: { device_id: DOC_ID, name: "Lamp", pairing_code: "s3cret-code", family: "shelly-gen1" } });
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body).toEqual({
      device_id: DOC_ID,
      name: "Lamp",
      family: "shelly-gen1",
      channel: 0,
      status: "offline",
      relay_state: null,
      firmware_version: null,
      last_seen: null,
      power: null,
      energy_kwh: 0,
      created_at: expect.any(String),
      mqtt: { host: "127.0.0.1", port: t.hub.mqttPort, client_id: DOC_ID, username: DOC_ID, password: "s3cret-code", topic: `shellies/${DOC_ID}` },
    });
    const m = body.mqtt;
    const plug = startShellyGen1Plug({ url: `mqtt://${m.host}:${m.port}`, deviceId: m.client_id, password: m.password, reconnect: false });
    plugs.push(plug);
    await plug.connected();
    await untilDevice(t, DOC_ID, (d) => d.status, (s) => s === "online", "online");
  });

  it("reports online with the announced firmware, relay, power (text W) and the watt-minute counter as Wh, at the plug's own cadence", async () => {
    const A = freshId("shelly-gen1");
    const { plug } = await gen1(A);
    const readings = await untilReadings(t, A, 5);
    expect(await device(t, A)).toMatchObject({ family: "shelly-gen1", status: "online", relay_state: true, power: 100, firmware_version: GEN1_FIRMWARE });
    expect(readings.every((r) => r.power_avg === 100)).toBe(true);
    const c = counters(readings);
    expect(c.length).toBeGreaterThanOrEqual(readings.length - 1); // the counter joins from the 2nd reading on
    expect(nonDecreasing(c)).toBe(true);
    expect(c[c.length - 1]).toBeLessThanOrEqual(plug.energyWh); // Wh·min / 60, whole watt-minutes
    expect(medianGapMs(readings)).toBeGreaterThanOrEqual(250); // the plug's 300 ms period, no polling
    expect(medianGapMs(readings)).toBeLessThanOrEqual(450);
    expect(plug.stats.power).toBeGreaterThanOrEqual(readings.length);
  });

  it("switches with confirmation from relay/0 published at once: off, on, toggle, toggle", async () => {
    const A = freshId("shelly-gen1");
    const { plug } = await gen1(A);
    const off = await command(t, A, "relay_off");
    expect(off).toEqual({ status: 200, body: { command_id: expect.any(String), device_id: A, command: "relay_off", status: "confirmed", relay_state: false, timestamp: expect.any(String) } });
    expect(plug.relayOn).toBe(false);
    await untilDevice(t, A, (d) => d.power, (p) => p === 0, "0 W after switching off");
    expect(await command(t, A, "relay_on")).toMatchObject({ status: 200, body: { status: "confirmed", relay_state: true } });
    expect(await command(t, A, "relay_toggle")).toMatchObject({ status: 200, body: { command: "relay_toggle", status: "confirmed", relay_state: false } });
    expect(await command(t, A, "relay_toggle")).toMatchObject({ status: 200, body: { status: "confirmed", relay_state: true } });
    expect(plug.stats.commands).toBe(4);
    await untilDevice(t, A, (d) => d.power, (p) => p === 100, "100 W after switching on");
  });

  it("goes offline on a power cut (will: online false), refuses commands with 409, and comes back online when power returns", async () => {
    const A = freshId("shelly-gen1");
    const { plug } = await gen1(A);
    plug.kill();
    await untilDevice(t, A, (d) => d.status, (s) => s === "offline", "offline after the cut");
    expect(await command(t, A, "relay_off")).toMatchObject({ status: 409, body: { device_id: A, command: "relay_off", status: "offline", relay_state: true } });
    expect(plug.relayOn).toBe(true);

    await plug.reboot();
    await untilDevice(t, A, (d) => d.status, (s) => s === "online", "online again");
    const before = (await storedReadings(t, A)).length;
    await untilReadings(t, A, before + 2);
    expect(await command(t, A, "relay_off")).toMatchObject({ status: 200, body: { status: "confirmed", relay_state: false } });
  });

  it("a reboot resets the watt-minute counter to 0; the hub's energy keeps rising without a jump or a double count", async () => {
    const A = freshId("shelly-gen1");
    const { plug } = await gen1(A, { loadW: 2400 }); // 40 Wh·min per second
    await untilReadings(t, A, 5);
    const metered = plug.energyWh;
    await plug.reboot();
    expect(plug.wattMinutes).toBeLessThan(60); // back near 0
    const n = (await storedReadings(t, A)).length;
    await untilReadings(t, A, n + 5);
    const energyBefore = (await device(t, A)).energy_kwh;
    await sleep(400);
    const c = counters(await storedReadings(t, A));
    // One drop, to (near) zero: the reset.
    const drops = c.flatMap((v, i) => (i > 0 && v < c[i - 1]! ? [i] : []));
    expect(drops).toHaveLength(1);
    const at = drops[0]!;
    expect(c[at]).toBeLessThan(1); // under 60 Wh·min
    expect(nonDecreasing(c.slice(0, at))).toBe(true);
    expect(nonDecreasing(c.slice(at))).toBe(true);
    // What the hub must count: the rise before the reboot, plus everything after it (the new cycle starts at 0).
    const expected = c[at - 1]! - c[0]! + c[c.length - 1]!;
    expect(expected).toBeGreaterThan(1);
    expect(await hourEnergyWh(t, A)).toBeCloseTo(expected, 2);
    const energyKwh = (await device(t, A)).energy_kwh;
    expect(energyKwh).toBeCloseTo(expected / 1000, 3);
    expect(energyKwh).toBeGreaterThanOrEqual(energyBefore); // never decreased
    expect(expected).toBeLessThanOrEqual(metered + plug.energyWh); // never more than the plug metered over both boots
  });

  it("A2: a plug's credentials under another Gen1 plug's client id are refused (CONNACK 5); the victim stays connected and reporting", async () => {
    const A = freshId("shelly-gen1");
    const B = freshId("shelly-gen1");
    const codeA = await t.pair(A, { family: "shelly-gen1" });
    const { plug: b } = await gen1(B);
    const before = await scrape(t);
    await expect(connectClient(t.mqttUrl, { clientId: B, username: A, password: codeA })).rejects.toMatchObject({ code: 5 });
    expect(await increases(t, before, [refused("client_id_mismatch")])).toEqual({ [refused("client_id_mismatch")]: 1 });
    expect(b.isConnected).toBe(true);
    expect((await device(t, B)).status).toBe("online");
    const n = (await storedReadings(t, B)).length;
    await untilReadings(t, B, n + 2);
    expect(await storedReadings(t, A)).toEqual([]);
  });

  it("A4: publishing under another plug's root (power, online, relay, its command topic) closes the connection; an announce naming another plug changes nothing", async () => {
    const A = freshId("shelly-gen1");
    const B = freshId("shelly-gen1");
    const codeA = await t.pair(A, { family: "shelly-gen1" });
    const { plug: b } = await gen1(B);
    const before = await scrape(t);
    const spoofs: [string, string][] = [
      [`shellies/${B}/relay/0/power`, "9999.00"],
      [`shellies/${B}/relay/0/energy`, "99999999"],
      [`shellies/${B}/online`, "false"],
      [`shellies/${B}/relay/0`, "off"],
      [`shellies/${B}/relay/0/command`, "off"],
    ];
    for (const [topic, payload] of spoofs) {
      const a = await connectAs(t, A, codeA, clients);
      expect(await publishExpectingDisconnect(a, topic, payload), topic).toBe(false);
    }
    expect(await increases(t, before, [security("publish_denied"), dropped("acl_denied")])).toEqual({ [security("publish_denied")]: 5, [dropped("acl_denied")]: 5 });
    // shellies/announce is shared by every Gen1 plug; one naming B is accepted but ignored.
    const a = await connectAs(t, A, codeA, clients);
    await a.publishAsync("shellies/announce", JSON.stringify({ id: B, mode: "relay", model: "SHPLG-S", mac: "A4CF120C1D2E", ip: "10.0.0.66", new_fw: false, fw_ver: "evil-fw" }), { qos: 1 });
    expect(a.connected).toBe(true);
    expect(b.relayOn).toBe(true);
    expect(b.stats.commands).toBe(0);
    expect(await device(t, B)).toMatchObject({ status: "online", relay_state: true, power: 100, firmware_version: GEN1_FIRMWARE });
    expect((await storedReadings(t, B)).map((r) => r.power_avg).filter((p) => p !== 100)).toEqual([]);
    expect(await storedReadings(t, A)).toEqual([]);
  });

  it("A5: subscribing to another plug's relay command topic gets SUBACK 128 and receives nothing; its own topics and shellies/command are granted", async () => {
    const A = freshId("shelly-gen1");
    const B = freshId("shelly-gen1");
    const codeA = await t.pair(A, { family: "shelly-gen1" });
    await gen1(B);
    const a = await connectAs(t, A, codeA, clients);
    const inbox: string[] = [];
    a.on("message", (topic) => inbox.push(topic));
    const before = await scrape(t);
    const codes: Record<string, number> = {};
    const filters = [`shellies/${B}/relay/0/command`, `shellies/${B}/#`, "shellies/+/relay/0/command", "shellies/#", "#", `shellies/${A}/relay/0/command`, "shellies/command"];
    for (const f of filters) codes[f] = await subackCode(a, f);
    expect(codes).toEqual({
      [`shellies/${B}/relay/0/command`]: 128,
      [`shellies/${B}/#`]: 128,
      "shellies/+/relay/0/command": 128,
      "shellies/#": 128,
      "#": 128,
      [`shellies/${A}/relay/0/command`]: 1,
      "shellies/command": 1,
    });
    expect(await increases(t, before, [security("subscribe_denied")])).toEqual({ [security("subscribe_denied")]: 5 });
    expect(await command(t, B, "relay_off")).toMatchObject({ status: 200, body: { status: "confirmed", relay_state: false } });
    await sleep(200);
    expect(inbox).toEqual([]);
    expect(a.connected).toBe(true);
  });

  it("A7: malformed Gen1 payloads are acked, dropped with a counted reason, and nothing is stored; the plug stays connected", async () => {
    const A = freshId("shelly-gen1");
    const code = await t.pair(A, { family: "shelly-gen1" });
    const p = await connectAs(t, A, code, clients);
    const root = `shellies/${A}`;
    const before = await scrape(t);
    const bad: [string, string, string][] = [
      [`${root}/relay/0/power`, "abc", "bad_power"],
      [`${root}/relay/0/power`, "12,5", "bad_power"],
      [`${root}/relay/0/power`, "-4", "out_of_range_power"],
      [`${root}/relay/0/power`, "1e9", "out_of_range_power"],
      [`${root}/relay/0/energy`, "NaN", "bad_counterWh"],
      [`${root}/relay/0/energy`, "-60", "out_of_range_counterWh"],
      [`${root}/relay/0`, "maybe", "bad_relay_state"],
      [`${root}/online`, "yes", "bad_availability"],
      [`${root}/announce`, "{", "malformed_json"],
      ["shellies/announce", "not json", "malformed_json"],
    ];
    const expected: Record<string, number> = {};
    for (const [topic, payload, reason] of bad) {
      await p.publishAsync(topic, payload, { qos: 1 });
      expected[dropped(reason)] = (expected[dropped(reason)] ?? 0) + 1;
    }
    expect(await increases(t, before, Object.keys(expected))).toEqual(expected);
    expect(p.connected).toBe(true);
    expect(await storedReadings(t, A)).toEqual([]);
    expect(await device(t, A)).toMatchObject({ status: "online", relay_state: null, power: null, energy_kwh: 0 });
    await p.publishAsync(`${root}/relay/0/energy`, "600", { qos: 1 });
    await p.publishAsync(`${root}/relay/0/power`, "42.50", { qos: 1 });
    expect((await storedReadings(t, A)).map((r) => [r.power_avg, r.energy_wh])).toEqual([[42.5, 10]]);
  });
});
