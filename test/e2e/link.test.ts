// The link end to end (issue 6 §3, §5–§7): app → real cloud → the hub's WebSocket link → the real hub → a
// simulated plug over MQTT, and back. The fault proxy between hub and cloud takes the link (and the uplink)
// down when a row needs the hub offline. RELIABILITY F13 and A19 are checked on what the app and the plug see.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { SERVICE_START_MS, startTestCloud, type TestCloud } from "../helpers/cloud.js";
import { startTestHub, type TestHub } from "../helpers/hub.js";
import { connectNativePlug, eventually, type MqttClient } from "../helpers/mqtt.js";
import { CloudFaultProxy } from "../helpers/cloud-fault-proxy.js";

let influx: TestInflux;
beforeAll(async () => {
  influx = await startInflux();
}, SERVICE_START_MS);
afterAll(async () => {
  await influx?.close();
});

const FAST_SYNC = {
  HUB_SYNC_INTERVAL_MS: "200",
  HUB_SYNC_BACKOFF_BASE_MS: "100",
  HUB_SYNC_BACKOFF_MAX_S: "1",
  HUB_SYNC_TIMEOUT_MS: "3000",
  HUB_LINK_STATE_MS: "100",
};

interface Plug {
  client: MqttClient;
  /** Control messages the plug received, in order. */
  received: { command: string; id: string }[];
  relay: () => boolean;
}

/** A native plug that obeys control messages (PROTOCOLS.md §1), optionally slow to confirm. */
async function obedientPlug(h: TestHub, id: string, code: string, confirmDelayMs = 0): Promise<Plug> {
  const client = await connectNativePlug(h.mqttUrl, id, code);
  let state = false;
  const received: Plug["received"] = [];
  await client.subscribeAsync(`smartplug/${id}/control`, { qos: 1 });
  client.on("message", (_topic, payload) => {
    const m = JSON.parse(payload.toString()) as { command: string; id: string };
    received.push(m);
    state = m.command === "relay_on" ? true : m.command === "relay_off" ? false : !state;
    const s = state;
    setTimeout(() => client.publish(`smartplug/${id}/status`, JSON.stringify({ status: "online", relay_state: s, firmware_version: "2.0.0", command_id: m.id }), { qos: 1 }), confirmDelayMs);
  });
  await client.publishAsync(`smartplug/${id}/status`, JSON.stringify({ status: "online", relay_state: false, firmware_version: "2.0.0" }), { qos: 1, retain: true });
  await eventually(async () => h.hub.devices.get(id).status, (s) => s === "online", `${id} online`);
  return { client, received, relay: () => state };
}

describe("hub ↔ cloud link, end to end", () => {
  let cloud: TestCloud | undefined;
  let hub: TestHub | undefined;
  let proxy: CloudFaultProxy | undefined;
  const plugs: Plug[] = [];
  afterEach(async () => {
    for (const p of plugs.splice(0)) p.client.end(true);
    await hub?.close();
    await proxy?.close();
    await cloud?.close();
    hub = proxy = cloud = undefined;
  });

  /** Cloud, proxy, hub; the hub registered and claimed by alice; one obedient plug `plug-1` paired on the hub. */
  async function setup(o: { cloudEnv?: Record<string, string>; confirmDelayMs?: number } = {}) {
    cloud = await startTestCloud({ influxUrl: influx.url, env: o.cloudEnv });
    const c = cloud;
    proxy = await CloudFaultProxy.start(() => c.cloud.httpPort);
    hub = await startTestHub({ env: { HUB_CLOUD_URL: proxy.url, ...FAST_SYNC } });
    const owner = await cloud.user("alice");
    const token = await hub.owner();
    const st = await eventually(async () => (await hub!.api("/cloud", { token })).json(), (s) => typeof s.claim_code === "string", "claim code");
    expect((await cloud.api("/hubs/claim", { body: { claim_code: st.claim_code }, token: owner.token })).status).toBe(200);
    const code = await hub.pair("plug-1", { name: "Lamp" });
    const plug = await obedientPlug(hub, "plug-1", code, o.confirmDelayMs);
    plugs.push(plug);
    await eventually(async () => (await cloud!.api("/devices/plug-1", { token: owner.token })).json(), (d) => d.status === "online", "plug online in the cloud", 10_000);
    await eventually(async () => (await hub!.api("/cloud", { token })).json(), (s) => s.claimed === true && s.link.state === "connected", "hub claimed and linked");
    return { owner, token, plug, hubId: st.hub_id as string };
  }

  /** Takes the hub offline from the cloud's point of view: link and uplink down. */
  async function cutInternet() {
    proxy!.linkDown = true;
    proxy!.fault = { kind: "down" };
    proxy!.dropConnections();
    await eventually(async () => hub!.hub.sync.link.connected, (c) => !c, "link down");
    await eventually(async () => (await cloud!.api("/hubs", { token: null })).status, () => true, "cloud up");
  }
  function restoreInternet() {
    proxy!.linkDown = false;
    proxy!.fault = { kind: "none" };
  }

  it("remote control: the cloud's POST /devices/{id}/command returns the plug's confirmed state with the seed's fields; live state follows", async () => {
    const { owner, plug } = await setup();
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const command = i % 2 === 0 ? "relay_on" : "relay_off";
      const t0 = performance.now();
      const res = await cloud!.api("/devices/plug-1/command", { body: { command }, token: owner.token });
      times.push(performance.now() - t0);
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body).toMatchObject({ device_id: "plug-1", command, status: "confirmed", relay_state: command === "relay_on" });
      expect(typeof body.timestamp).toBe("string");
      expect(typeof body.command_id).toBe("string");
      expect(plug.relay()).toBe(command === "relay_on");
    }
    times.sort((a, b) => a - b);
    console.log(`[link] remote command round trip app → cloud → hub → plug → app: p50 ${times[10]!.toFixed(1)} ms, max ${times[19]!.toFixed(1)} ms (20 commands)`);
    expect(plug.received).toHaveLength(20);
    await eventually(async () => (await cloud!.api("/devices/plug-1", { token: owner.token })).json(), (d) => d.relay_state === false, "relay state live in the cloud");
  });

  it("hub offline: a command is queued with its expiry and runs once on reconnect; a repeated command_id is never run twice (F13)", async () => {
    const { owner, plug } = await setup();
    await cutInternet();
    const res = await cloud!.api("/devices/plug-1/command", { body: { command: "relay_toggle", command_id: "toggle-1" }, token: owner.token });
    expect(res.status).toBe(202);
    const queued = await res.json();
    expect(queued).toMatchObject({ device_id: "plug-1", command: "relay_toggle", status: "queued", command_id: "toggle-1" });
    expect(Date.parse(queued.expires_at)).toBeGreaterThan(Date.now());
    // The same id again while offline: the stored command, not a second one.
    const again = await cloud!.api("/devices/plug-1/command", { body: { command: "relay_toggle", command_id: "toggle-1" }, token: owner.token });
    expect((await again.json()).status).toBe("queued");
    expect(plug.received).toHaveLength(0);

    restoreInternet();
    await eventually(async () => plug.received.length, (n) => n === 1, "queued command delivered on reconnect", 15_000);
    expect(plug.relay()).toBe(true);
    const done = await eventually(
      async () => (await cloud!.api("/devices/plug-1/command", { body: { command: "relay_toggle", command_id: "toggle-1" }, token: owner.token })).json(),
      (b) => b.status === "confirmed",
      "result reported",
    );
    expect(done.relay_state).toBe(true);
    // Asked once more after it ran: the stored result; the plug saw one toggle in all.
    await new Promise((r) => setTimeout(r, 500));
    expect(plug.received).toHaveLength(1);
  });

  it("F13: a result lost with the link is not run again when the cloud redelivers; the hub answers from its record", async () => {
    const { owner, plug } = await setup({ confirmDelayMs: 800 });
    const pending = cloud!.api("/devices/plug-1/command", { body: { command: "relay_toggle", command_id: "lost-result" }, token: owner.token });
    await eventually(async () => plug.received.length, (n) => n === 1, "plug got the toggle");
    // The link dies while the plug is still confirming: the hub's result cannot reach the cloud.
    proxy!.linkDown = true;
    proxy!.dropConnections();
    const first = await (await pending).json();
    expect(["sent", "timeout"]).toContain(first.status);
    await new Promise((r) => setTimeout(r, 1000));
    restoreInternet();
    const done = await eventually(
      async () => (await cloud!.api("/devices/plug-1/command", { body: { command: "relay_toggle", command_id: "lost-result" }, token: owner.token })).json(),
      (b) => b.status === "confirmed",
      "redelivered and answered",
      15_000,
    );
    expect(done.relay_state).toBe(true);
    expect(plug.received).toHaveLength(1);
    expect(plug.relay()).toBe(true);
  });

  it("F13/A19: an expired command is rejected on the hub with a status back and never reaches MQTT; a device the hub does not have is rejected", async () => {
    const { owner, plug } = await setup({ cloudEnv: { CLOUD_COMMAND_TTL_S: "5" } });
    await cutInternet();
    const res = await cloud!.api("/devices/plug-1/command", { body: { command: "relay_on", command_id: "too-late" }, token: owner.token });
    expect(res.status).toBe(202);
    await new Promise((r) => setTimeout(r, 5500));
    restoreInternet();
    try {
      await eventually(async () => hub!.hub.sync.link.connected, (c) => c, "link back", 15_000);
    } catch (err) {
      // What the hub's link was doing, to tell a slow cloud from a link that is not retrying.
      console.log(`link not back: hub link ${JSON.stringify(hub!.hub.sync.link.status)}; cloud /health ${JSON.stringify(await (await cloud!.api("/health", { token: null })).json())}`);
      throw err;
    }
    const late = await eventually(
      async () => (await cloud!.api("/devices/plug-1/command", { body: { command: "relay_on", command_id: "too-late" }, token: owner.token })).json(),
      (b) => b.status === "expired",
      "expired",
    );
    expect(late.status).toBe("expired");
    await new Promise((r) => setTimeout(r, 500));
    expect(plug.received).toHaveLength(0);

    // A device the cloud knows but this hub does not: unpaired on the hub while its uplink is down, so the
    // cloud still lists it (a device created in the cloud is delivered to the hub instead, issue 6 §5).
    await hub!.pair("ghost-1", { name: "Ghost" });
    await eventually(async () => (await cloud!.api("/devices/ghost-1", { token: owner.token })).status, (s) => s === 200, "ghost-1 in the cloud", 10_000);
    proxy!.fault = { kind: "down" };
    expect((await hub!.api("/devices/ghost-1", { method: "DELETE" })).status).toBe(204);
    const ghost = await cloud!.api("/devices/ghost-1/command", { body: { command: "relay_on" }, token: owner.token });
    const body = await ghost.json();
    expect(body.status).toBe("rejected");
    expect(ghost.status).toBeGreaterThanOrEqual(400);
    expect(plug.received).toHaveLength(0);
  });
});
