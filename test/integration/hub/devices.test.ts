import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, eventually, telemetry, type MqttClient } from "../../helpers/mqtt.js";

let t: TestHub;
const plugs: MqttClient[] = [];
beforeEach(async () => {
  t = await startTestHub();
});
afterEach(async () => {
  for (const p of plugs.splice(0)) p.end(true);
  await t.close();
});

/** A plug that obeys control messages the way PROTOCOLS.md §1 says, echoing the command id. */
async function obedientPlug(id: string, code: string, relay = true): Promise<MqttClient> {
  const p = await connectNativePlug(t.mqttUrl, id, code);
  plugs.push(p);
  let state = relay;
  await p.subscribeAsync(`smartplug/${id}/control`, { qos: 1 });
  p.on("message", (_topic, payload) => {
    const m = JSON.parse(payload.toString()) as { command: string; id: string };
    state = m.command === "relay_on" ? true : m.command === "relay_off" ? false : !state;
    p.publish(`smartplug/${id}/status`, JSON.stringify({ status: "online", relay_state: state, firmware_version: "1.2.3", command_id: m.id }), { qos: 1 });
  });
  await p.publishAsync(`smartplug/${id}/status`, JSON.stringify({ status: "online", relay_state: relay, firmware_version: "1.2.3" }), { qos: 1, retain: true });
  return p;
}

describe("pairing and devices", () => {
  it("pairs a native plug and answers with exactly what to configure on it", async () => {
    await t.owner();
    const res = await t.api("/devices", { body: { device_id: "kitchen-1", name: "Kettle", pairing_code: "s3cret-code" } });
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body).toEqual({
      device_id: "kitchen-1",
      name: "Kettle",
      family: "native",
      channel: 0,
      status: "offline",
      relay_state: null,
      firmware_version: null,
      last_seen: null,
      power: null,
      energy_kwh: 0,
      created_at: expect.any(String),
      mqtt: { host: "127.0.0.1", port: t.hub.mqttPort, client_id: "kitchen-1", username: "kitchen-1", password: "s3cret-code", topic: "smartplug/kitchen-1" },
    });
    const again = await t.api("/devices", { body: { device_id: "kitchen-1", name: "Kettle", pairing_code: "s3cret-code" } });
    expect(again.status).toBe(409);
    expect(again.headers.get("content-type")).toContain("application/problem+json");
  });

  it("shows a reporting plug online with firmware, relay, power and energy; offline when its will fires", async () => {
    const code = await t.pair("p1");
    const plug = await obedientPlug("p1", code);
    const now = Date.now();
    await plug.publishAsync("smartplug/p1/telemetry", telemetry({ ts: now - 2000, power: 100, energyWh: 1000 }), { qos: 1 });
    await plug.publishAsync("smartplug/p1/telemetry", telemetry({ ts: now - 1000, power: 120, energyWh: 1002.5 }), { qos: 1 });
    const dev = await (await t.api("/devices/p1")).json();
    expect(dev).toMatchObject({ device_id: "p1", status: "online", relay_state: true, firmware_version: "1.2.3", power: 120, energy_kwh: 0.003 });
    expect(Date.parse(dev.last_seen)).toBeGreaterThan(now - 5000);

    // Abrupt loss (no DISCONNECT): the will and the dropped session mark it offline.
    plug.stream.destroy();
    await eventually(async () => (await (await t.api("/devices/p1")).json()).status, (s) => s === "offline", "offline status");
  });

  it("renames and removes; removal revokes the credentials and drops the session", async () => {
    const code = await t.pair("p2");
    const plug = await obedientPlug("p2", code);
    const renamed = await t.api("/devices/p2", { method: "PATCH", body: { name: "Lamp" } });
    expect((await renamed.json()).name).toBe("Lamp");
    const closed = new Promise<void>((r) => plug.once("close", () => r()));
    expect((await t.api("/devices/p2", { method: "DELETE" })).status).toBe(204);
    await closed;
    await expect(connectNativePlug(t.mqttUrl, "p2", code)).rejects.toThrow(/Bad username or password|Not authorized/);
    const gone = await t.api("/devices/p2");
    expect(gone.status).toBe(404);
    expect(await gone.json()).toEqual({ type: "https://smartplug.dev/problems/not-found", title: "Not found", status: 404, detail: "no device 'p2'", instance: "/devices/p2" });
  });
});

describe("relay control", () => {
  it("switches the relay and returns the plug-confirmed state with the seed's fields", async () => {
    const code = await t.pair("r1");
    await obedientPlug("r1", code, true);
    await eventually(async () => (await (await t.api("/devices/r1")).json()).status, (s) => s === "online", "online");
    const res = await t.api("/devices/r1/command", { body: { command: "relay_off" } });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toEqual({ command_id: expect.any(String), device_id: "r1", command: "relay_off", status: "confirmed", relay_state: false, timestamp: expect.any(String) });
    const toggled = await (await t.api("/devices/r1/command", { body: { command: "relay_toggle" } })).json();
    expect(toggled).toMatchObject({ status: "confirmed", relay_state: true });
  });

  it("never executes a command id twice", async () => {
    const code = await t.pair("r2");
    const plug = await obedientPlug("r2", code, false);
    let received = 0;
    plug.on("message", () => received++);
    const body = { command: "relay_toggle", command_id: "cmd-0000000001" };
    const [a, b] = await Promise.all([t.api("/devices/r2/command", { body }), t.api("/devices/r2/command", { body })]);
    const c = await t.api("/devices/r2/command", { body });
    const [ja, jb, jc] = [await a.json(), await b.json(), await c.json()];
    expect(ja).toMatchObject({ command_id: "cmd-0000000001", status: "confirmed", relay_state: true });
    expect(jb).toEqual(ja);
    expect(jc).toMatchObject({ command_id: "cmd-0000000001", status: "confirmed", relay_state: true });
    expect(received).toBe(1);
  });

  it("answers offline (409) without sending, and timeout (504) when the plug does not confirm", async () => {
    await t.pair("r3");
    const off = await t.api("/devices/r3/command", { body: { command: "relay_on" } });
    expect(off.status).toBe(409);
    expect(await off.json()).toMatchObject({ device_id: "r3", command: "relay_on", status: "offline", relay_state: null });

    const code = await t.pair("r4");
    const mute = await connectNativePlug(t.mqttUrl, "r4", code); // connected, never answers
    plugs.push(mute);
    await eventually(async () => (await (await t.api("/devices/r4")).json()).status, (s) => s === "online", "online");
    const slow = await t.api("/devices/r4/command", { body: { command: "relay_on", timeout_ms: 300 } });
    expect(slow.status).toBe(504);
    expect(await slow.json()).toMatchObject({ device_id: "r4", status: "timeout" });
  });
});
