// RELIABILITY rows A1, A3, A6, A8 and A9 for each off-the-shelf family (A2, A4, A5 and A7 have their own
// family-specific cases in tasmota/shelly-gen1/shelly-gen2.test.ts; native has all nine in
// broker-attacks.test.ts). The victims are the family simulators; attackers are raw sockets or mqtt.js
// clients holding, or guessing, a family plug's credentials. What is checked is what a user sees:
// CONNACK codes, sockets closed, /metrics counters, and the victim still online and still stored.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../helpers/hub.js";
import { connectClient, type MqttClient } from "../../../helpers/mqtt.js";
import { RawMqtt, connectPacket, rawConnect } from "../../../helpers/mqtt-raw.js";
import { startSimPlug, type SimFamily, type SimPlug } from "../../../sim/sim-plug.js";
import { tasmotaTopics, buildSensor, buildEnergy, tasmotaTime } from "../../../sim/tasmota-payloads.js";
import { gen1Topics } from "../../../sim/shelly-gen1-payloads.js";
import { gen2Topics, buildNotification, rpcTs } from "../../../sim/shelly-gen2-payloads.js";
import { FAMILY_HUB_ENV, closed, command, connectAs, freshId, increases, refused, scrape, storedReadings, untilDevice, untilReadings } from "./support.js";

const MSG_RATE = 20; // HUB_MQTT_MSG_RATE: the per-connection shed allowance is 10 × this
let t: TestHub;
const plugs: SimPlug[] = [];
const clients: MqttClient[] = [];
const raws: RawMqtt[] = [];

beforeAll(async () => {
  t = await startTestHub({ env: { ...FAMILY_HUB_ENV, HUB_MQTT_MSG_RATE: String(MSG_RATE), HUB_MQTT_CONNECT_TIMEOUT_MS: "1000", HUB_MQTT_MAX_KEEPALIVE_S: "120" } });
  await t.owner();
});
afterEach(() => {
  for (const p of plugs.splice(0)) p.kill();
  for (const c of clients.splice(0)) c.end(true);
  for (const r of raws.splice(0)) r.destroy();
});
afterAll(async () => {
  await t.close();
});

/** Pairs a plug of the family and starts its simulator; resolves once the hub shows it online with a reading. */
async function victim(family: SimFamily): Promise<{ id: string; code: string; plug: SimPlug }> {
  const id = freshId(family);
  const code = await t.pair(id, { family });
  const plug = startSimPlug(family, { url: t.mqttUrl, deviceId: id, password: code, loadW: 100, telePeriodSec: 3600, intervalMs: 1000, reconnect: false });
  plugs.push(plug);
  await plug.connected();
  await untilDevice(t, id, (d) => [d.status, d.power], ([s, p]) => s === "online" && p !== null, "online with a first reading");
  return { id, code, plug };
}

async function rawPlug(o: Parameters<typeof connectPacket>[0]): Promise<{ client: RawMqtt; returnCode: number }> {
  const res = await rawConnect(t.hub.mqttPort, o);
  raws.push(res.client);
  return res;
}

/** One valid reading in the family's own format, on its own topic (what a flooding plug repeats). */
function reading(family: SimFamily, id: string, n: number): [string, string] {
  switch (family) {
    case "tasmota": {
      const energy = buildEnergy({ power: 100, voltage: 230, powerFactor: 0.95, totalWh: 1000 + n, todayWh: 0, yesterdayWh: 0, totalStartTime: "2026-01-01T00:00:00" });
      return [tasmotaTopics(id).sensor, JSON.stringify(buildSensor(tasmotaTime(Date.now(), 0, true), energy))];
    }
    case "shelly-gen1":
      return [gen1Topics(id).power, (100 + (n % 10)).toFixed(2)];
    case "shelly-gen2":
      return [gen2Topics(id).events, JSON.stringify(buildNotification(id, "NotifyStatus", rpcTs(Date.now()), { "switch:0": { id: 0, apower: 100 + (n % 10) } }))];
    case "native":
      throw new Error("native has its own attack file");
  }
}

describe.each(["tasmota", "shelly-gen1", "shelly-gen2"] as const)("%s plugs: attack rows shared by every family", (family) => {
  it("A1: CONNECT without or with wrong credentials under a paired plug's id is refused (CONNACK 4); the plug stays connected and stored", async () => {
    const v = await victim(family);
    const before = await scrape(t);
    const ghost = freshId(family); // never paired
    const attempts: [string, Parameters<typeof connectPacket>[0]][] = [
      ["no username, no password", { clientId: v.id }],
      ["wrong password", { clientId: v.id, username: v.id, password: `${v.code}x` }],
      ["empty password", { clientId: v.id, username: v.id, password: "" }],
      ["unknown plug of the family's shape", { clientId: ghost, username: ghost, password: "whatever" }],
    ];
    for (const [what, o] of attempts) {
      const { client, returnCode } = await rawPlug(o);
      expect(returnCode, what).toBe(4);
      await client.closed;
    }
    await expect(connectClient(t.mqttUrl, { clientId: v.id, username: v.id, password: "guess", reconnectPeriod: 0 })).rejects.toMatchObject({ code: 4 });
    expect(await increases(t, before, [refused("no_credentials"), refused("bad_credentials")])).toEqual({
      [refused("no_credentials")]: 1,
      [refused("bad_credentials")]: 4,
    });
    // The victim's session is untouched: still connected, online, and what it reports next is stored.
    expect(v.plug.isConnected).toBe(true);
    const stored = (await storedReadings(t, v.id)).length;
    await v.plug.publishReading();
    await untilReadings(t, v.id, stored + 1);
    expect((await command(t, v.id, "relay_toggle")).body.status).toBe("confirmed");
  });

  it("A3: client ids with '#', '+', '/', NUL or more than 64 bytes are refused (CONNACK 2) before authentication", async () => {
    const v = await victim(family);
    const before = await scrape(t);
    const bad = [`${v.id}/#`, `${v.id}+`, `${v.id}/x`, `${v.id}\u0000`, `${v.id}${"a".repeat(65)}`];
    for (const clientId of bad) {
      // The right password: what is refused is the id, before the secret is even looked at.
      const { client, returnCode } = await rawPlug({ clientId, username: v.id, password: v.code });
      expect(returnCode, JSON.stringify(clientId)).toBe(2);
      await client.closed;
    }
    const seen = await increases(t, before, [refused("bad_client_id"), refused("bad_credentials")]);
    expect(seen[refused("bad_client_id")]).toBe(bad.length);
    expect(seen[refused("bad_credentials")]).toBe(0);
    expect(v.plug.isConnected).toBe(true);
  });

  it("A6: after a plug's valid CONNECT, a packet header declaring 256 MiB destroys the socket within 1 s (counted); the real plug carries on", async () => {
    const v = await victim(family);
    v.plug.kill(); // the attacker takes the plug's place with its real credentials
    await untilDevice(t, v.id, (d) => d.status, (s) => s === "offline", "offline after the power cut");
    const { client, returnCode } = await rawPlug({ clientId: v.id, username: v.id, password: v.code });
    expect(returnCode).toBe(0);
    const before = await scrape(t);
    const sentAt = Date.now();
    client.send(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
    client.send(Buffer.alloc(64 * 1024, 0x61));
    const closedAt = await client.closed;
    expect(closedAt - sentAt).toBeLessThanOrEqual(1000);
    expect(await increases(t, before, [refused("packet_too_large")])).toEqual({ [refused("packet_too_large")]: 1 });
    await v.plug.reboot(); // power back: the plug reconnects and reports as before
    await untilDevice(t, v.id, (d) => d.status, (s) => s === "online", "online again");
  });

  it("A8: a plug's CONNECT with keepalive 0 or above the maximum is refused (CONNACK 2); trickled CONNECTs are closed within the connect timeout", async () => {
    const v = await victim(family);
    const before = await scrape(t);
    for (const keepalive of [0, 121]) {
      const { client, returnCode } = await rawPlug({ clientId: v.id, username: v.id, password: v.code, keepalive });
      expect(returnCode, `keepalive ${keepalive}`).toBe(2);
      await client.closed;
    }
    // Half a CONNECT carrying this plug's credentials, then silence.
    const half = await RawMqtt.open(t.hub.mqttPort);
    raws.push(half);
    const openedAt = Date.now();
    half.send(connectPacket({ clientId: v.id, username: v.id, password: v.code }).subarray(0, 10));
    expect((await half.closed) - openedAt).toBeLessThan(1500);
    expect(half.drain()).toEqual([]);
    expect(await increases(t, before, [refused("bad_keepalive")])).toEqual({ [refused("bad_keepalive")]: 2 });
    expect(v.plug.isConnected).toBe(true); // the refused attempts never took over the real plug's session
  });

  it("A9: a plug flooding 1000 readings/s in its own format is shed, then disconnected; another plug of the family still confirms commands", async () => {
    const other = await victim(family);
    const flooder = freshId(family);
    const code = await t.pair(flooder, { family });
    const c = await connectAs(t, flooder, code, clients);
    const before = await scrape(t);
    const gone = closed(c).then(() => Date.now());
    let sent = 0;
    const startedAt = Date.now();
    const pump = setInterval(() => {
      if (!c.connected) return;
      for (let k = 0; k < 10; k++) {
        const [topic, payload] = reading(family, flooder, sent++);
        c.publish(topic, payload, { qos: 0 });
      }
    }, 10);
    let confirmed = 0;
    let over = false;
    const flood = gone.finally(() => (over = true));
    try {
      while (!over || confirmed < 5) {
        const res = await command(t, other.id, "relay_toggle");
        expect(res.status).toBe(200);
        expect(res.body.status).toBe("confirmed");
        confirmed++;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      clearInterval(pump);
    }
    const disconnectedAt = await flood;
    console.log(`A9 ${family}: flooder sent ${sent} messages, disconnected after ${disconnectedAt - startedAt} ms; ${confirmed} commands to ${other.id} confirmed meanwhile`);
    expect(await increases(t, before, [`hub_mqtt_shed_total{reason="connection_rate"}`, refused("rate_limit_disconnect")])).toEqual({
      [`hub_mqtt_shed_total{reason="connection_rate"}`]: MSG_RATE * 10 + 1,
      [refused("rate_limit_disconnect")]: 1,
    });
    // What was shed was not stored: at most what got through before the limit is.
    expect((await storedReadings(t, flooder)).length).toBeLessThanOrEqual(sent - (MSG_RATE * 10 + 1));
    expect(other.plug.isConnected).toBe(true);
  });
});
