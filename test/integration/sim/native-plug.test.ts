// The native plug simulator against a throwaway in-process aedes broker on port 0, over real sockets.
import { createServer, type AddressInfo, type Server } from "node:net";
import { Aedes, type ConnectPacket } from "aedes";
import { connect, type MqttClient } from "mqtt";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildTelemetry, createRng, sampleVoltage } from "../../sim/native-payloads.js";
import { startNativePlug, type NativePlug, type NativePlugOptions } from "../../sim/native-plug.js";

const PAIRING_CODE = "pair-code-0001";
const T0 = Date.UTC(2024, 0, 15, 10, 45, 30, 0);
const HOUR_MS = 3_600_000;

interface Seen {
  topic: string;
  body: unknown;
}

interface Harness {
  url: string;
  connects: ConnectPacket[];
  seen: Seen[];
  observer: MqttClient;
  close(): Promise<void>;
}

async function startHarness(): Promise<Harness> {
  const broker = await Aedes.createBroker();
  const connects: ConnectPacket[] = [];
  broker.preConnect = (_client, packet, done) => {
    connects.push(packet);
    done(null, true);
  };
  // Same rule as the hub: username is the device id and the password its pairing code.
  broker.authenticate = (client, username, password, done) => {
    const ok = username === client.id && password?.toString() === PAIRING_CODE;
    done(ok ? null : Object.assign(new Error("bad credentials"), { returnCode: 4 as const }), ok);
  };
  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const observer = connect(url, { clientId: "observer", username: "observer", password: PAIRING_CODE, reconnectPeriod: 0 });
  // The observer authenticates like a plug named "observer"; it only listens and sends commands.
  const seen: Seen[] = [];
  observer.on("message", (topic, payload) => seen.push({ topic, body: JSON.parse(payload.toString()) }));
  await new Promise<void>((resolve) => observer.once("connect", () => resolve()));
  await observer.subscribeAsync("smartplug/#", { qos: 1 });
  return {
    url,
    connects,
    seen,
    observer,
    async close() {
      await observer.endAsync(true);
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Retained messages as a fresh subscriber would get them. */
async function retainedBody(url: string, topic: string): Promise<unknown> {
  const c = connect(url, { clientId: "retained-reader", username: "retained-reader", password: PAIRING_CODE, reconnectPeriod: 0 });
  try {
    const got = new Promise<unknown>((resolve) => c.on("message", (_t, payload, packet) => packet.retain && resolve(JSON.parse(payload.toString()))));
    await c.subscribeAsync(topic, { qos: 1 });
    return await Promise.race([got, new Promise((r) => setTimeout(() => r("no retained message"), 1000))]);
  } finally {
    await c.endAsync(true);
  }
}

describe("native plug simulator (PROTOCOLS.md §1)", () => {
  let h: Harness;
  let clock: number;
  const plugs: NativePlug[] = [];

  const start = (extra: Partial<NativePlugOptions> = {}): NativePlug => {
    const plug = startNativePlug({
      url: h.url,
      deviceId: "p1",
      password: PAIRING_CODE,
      intervalMs: HOUR_MS, // readings are driven by hand unless a test says otherwise
      reconnect: false,
      now: () => clock,
      ...extra,
    });
    plugs.push(plug);
    return plug;
  };
  const onTopic = (topic: string): unknown[] => h.seen.filter((s) => s.topic === topic).map((s) => s.body);

  beforeEach(async () => {
    clock = T0;
    h = await startHarness();
  });

  afterEach(async () => {
    for (const p of plugs.splice(0)) p.kill();
    await h.close();
  });

  it("§1: connects as MQTT 3.1.1, clean session, id = username, with a retained offline will", async () => {
    const plug = start({ keepaliveSec: 17 });
    await plug.connected();
    const c = h.connects.find((p) => p.clientId === "p1")!;
    expect({
      protocolVersion: c.protocolVersion,
      clean: c.clean,
      keepalive: c.keepalive,
      username: c.username,
      password: c.password?.toString(),
      will: { topic: c.will?.topic, payload: c.will?.payload.toString(), qos: c.will?.qos, retain: c.will?.retain },
    }).toEqual({
      protocolVersion: 4,
      clean: true,
      keepalive: 17,
      username: "p1",
      password: PAIRING_CODE,
      will: { topic: "smartplug/p1/status", payload: '{"status":"offline"}', qos: 1, retain: true },
    });
  });

  it("§1: announces a retained online status after connecting", async () => {
    const plug = start({ firmware: "2.3.4", startRelay: false });
    await plug.connected();
    expect(await retainedBody(h.url, "smartplug/p1/status")).toEqual({ status: "online", relay_state: false, firmware_version: "2.3.4" });
  });

  it("§1: publishes telemetry whose energy integrates power over time; QoS 1 readings are acked", async () => {
    const plug = start({ energyWh: 100 });
    await plug.connected();
    clock += 60_000; // 60 W for one minute = 1 Wh
    await plug.publishReading();
    const rng = createRng("p1");
    const expected = buildTelemetry({ power: 60, voltage: sampleVoltage(rng), relayOn: true, energyWh: 101 }, clock);
    const [body] = await waitFor(() => (onTopic("smartplug/p1/telemetry").length ? onTopic("smartplug/p1/telemetry") : undefined), "telemetry");
    expect(body).toEqual(expected);
    expect(body).toMatchObject({ timestamp: "2024-01-15T10:46:30.000Z", power: 60, energy_wh: 101, relay_state: true });
    expect({ sent: plug.sent, acked: plug.acked, energyWh: plug.energyWh }).toEqual({ sent: 1, acked: 1, energyWh: 101 });
  });

  it("§1: follows the trace's power shape when one is given", async () => {
    const trace = { appliance: "ramp", stepSec: 10, watts: Array.from({ length: 8640 }, (_, i) => i) };
    const plug = start({ trace, timeOffsetSec: 1000 });
    await plug.connected();
    clock += 5_000; // trace second 1005: halfway between 100 W and 101 W
    await plug.publishReading();
    const [body] = await waitFor(() => (onTopic("smartplug/p1/telemetry").length ? onTopic("smartplug/p1/telemetry") : undefined), "telemetry");
    expect(body).toMatchObject({ power: 100.5 });
  });

  it("§1: publishes on its own every interval_ms, and a config message changes the cadence", async () => {
    const plug = start();
    await plug.connected();
    h.observer.publish("smartplug/p1/config", JSON.stringify({ interval_ms: 100 }), { qos: 1 });
    // Count what the observer received: a PUBACK can reach the plug before the broker forwards the message.
    await waitFor(() => (onTopic("smartplug/p1/telemetry").length >= 3 ? true : undefined), "three timed readings");
    expect(plug.sent).toBeGreaterThanOrEqual(3);
  });

  it("§1: obeys relay_off, echoes the command id in status, then sends telemetry with the new relay state", async () => {
    const plug = start();
    await plug.connected();
    h.observer.publish("smartplug/p1/control", JSON.stringify({ command: "relay_off", id: "cmd-00000001" }), { qos: 1 });
    const status = await waitFor(() => onTopic("smartplug/p1/status").find((b) => (b as { command_id?: string }).command_id), "command echo");
    expect(status).toEqual({ status: "online", relay_state: false, firmware_version: "1.0.0", command_id: "cmd-00000001" });
    const [telemetry] = await waitFor(() => (onTopic("smartplug/p1/telemetry").length ? onTopic("smartplug/p1/telemetry") : undefined), "telemetry");
    expect(telemetry).toMatchObject({ power: 0, current: 0, relay_state: false });
    expect(plug.relayOn).toBe(false);
    // The echo is retained, so a hub that restarts learns the current relay state.
    expect(await retainedBody(h.url, "smartplug/p1/status")).toEqual(status);
  });

  it("§1: toggles, and ignores unknown commands without answering", async () => {
    const plug = start();
    await plug.connected();
    h.observer.publish("smartplug/p1/control", JSON.stringify({ command: "self_destruct", id: "cmd-00000002" }), { qos: 1 });
    h.observer.publish("smartplug/p1/control", JSON.stringify({ command: "relay_toggle", id: "cmd-00000003" }), { qos: 1 });
    await waitFor(() => onTopic("smartplug/p1/status").find((b) => (b as { command_id?: string }).command_id), "command echo");
    const echoed = onTopic("smartplug/p1/status").flatMap((b) => (b as { command_id?: string }).command_id ?? []);
    expect({ echoed, relayOn: plug.relayOn }).toEqual({ echoed: ["cmd-00000003"], relayOn: false });
  });

  it("§1: the will publishes a retained offline status when the plug is killed", async () => {
    const plug = start();
    await plug.connected();
    plug.kill();
    await waitFor(() => onTopic("smartplug/p1/status").find((b) => (b as { status: string }).status === "offline"), "will");
    expect(await retainedBody(h.url, "smartplug/p1/status")).toEqual({ status: "offline" });
  });

  it("§5: reboot drops the link without DISCONNECT (will fires), comes back online and restarts energy at 0", async () => {
    const plug = start({ energyWh: 500 });
    await plug.connected();
    clock += HOUR_MS; // +60 Wh
    await plug.publishReading();
    expect(plug.energyWh).toBe(560);
    await plug.reboot();
    const statuses = await waitFor(() => {
      const s = onTopic("smartplug/p1/status") as Array<{ status: string }>;
      return s.length >= 3 ? s.map((x) => x.status) : undefined;
    }, "offline then online");
    expect(statuses).toEqual(["online", "offline", "online"]);
    clock += 60_000;
    await plug.publishReading();
    const readings = await waitFor(() => {
      const t = onTopic("smartplug/p1/telemetry") as Array<{ energy_wh: number }>;
      return t.length >= 2 ? t.map((x) => x.energy_wh) : undefined;
    }, "second reading");
    expect(readings).toEqual([560, 1]);
  });

  it("close() says offline and disconnects cleanly", async () => {
    const plug = start();
    await plug.connected();
    await plug.close();
    expect(await retainedBody(h.url, "smartplug/p1/status")).toEqual({ status: "offline" });
  });

  it("connected() rejects when the broker refuses the pairing code", async () => {
    const plug = start({ password: "wrong-code" });
    await expect(plug.connected()).rejects.toThrow(/Bad username or password/i);
  });
});
