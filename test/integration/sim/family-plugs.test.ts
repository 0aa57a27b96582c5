// The Tasmota, Shelly Gen1 and Shelly Gen2 simulators on the wire, against a throwaway aedes broker on port 0:
// every PUBLISH a plug sends (and every will the broker fires for it) is recorded as the broker received it,
// with its QoS and retain flag; an observer client sends commands and RPC requests (PROTOCOLS.md §2–§4).
// The hub's view of the same plugs is in test/integration/hub/families/.
import { createServer, type AddressInfo, type Server } from "node:net";
import { Aedes, type ConnectPacket } from "aedes";
import { connect, type MqttClient } from "mqtt";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTasmotaPlug } from "../../sim/tasmota-plug.js";
import { startShellyGen1Plug } from "../../sim/shelly-gen1-plug.js";
import { startShellyGen2Plug } from "../../sim/shelly-gen2-plug.js";
import type { SimPlug } from "../../sim/sim-plug.js";

const CODE = "pair-code-0001";

interface Seen {
  /** Who published it (for a will: the plug that vanished). */
  from: string;
  topic: string;
  text: string;
  retain: boolean;
  qos: number;
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
  broker.authenticate = (client, username, password, done) => {
    const ok = username === client.id && password?.toString() === CODE;
    done(ok ? null : Object.assign(new Error("bad credentials"), { returnCode: 4 as const }), ok);
  };
  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const seen: Seen[] = [];
  // Called for every PUBLISH in the order it arrives (and for wills), before routing or retaining.
  broker.authorizePublish = (client, packet, done) => {
    if (client && client.id !== "observer") seen.push({ from: client.id, topic: packet.topic, text: packet.payload.toString(), retain: packet.retain, qos: packet.qos });
    done(null);
  };
  const observer = connect(url, { clientId: "observer", username: "observer", password: CODE, reconnectPeriod: 0 });
  await new Promise<void>((resolve) => observer.once("connect", () => resolve()));
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

let h: Harness;
const plugs: SimPlug[] = [];
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  for (const p of plugs.splice(0)) p.kill();
  await h.close();
});

const on = (topic: string) => h.seen.filter((s) => s.topic === topic);
const json = (s: Seen) => JSON.parse(s.text) as Record<string, unknown>;
const nth = (topic: string, n: number, what = topic) => waitFor(() => on(topic)[n], `${what} #${n + 1}`);
const will = (id: string) => {
  const c = h.connects.find((p) => p.clientId === id)!;
  return { clientId: c.clientId, username: c.username, protocolVersion: c.protocolVersion, will: c.will && { topic: c.will.topic, payload: c.will.payload.toString(), qos: c.will.qos, retain: c.will.retain } };
};

describe("Tasmota simulator on the wire (PROTOCOLS.md §2)", () => {
  const id = "tas-1";
  const start = (o: Partial<Parameters<typeof startTasmotaPlug>[0]> = {}) => {
    const p = startTasmotaPlug({ url: h.url, deviceId: id, password: CODE, loadW: 100, telePeriodSec: 0.3, tzOffsetMin: 60, energyWh: 6294, reconnect: false, ...o });
    plugs.push(p);
    return p;
  };

  it("connects as the firmware does: LWT will, LWT Online, the empty POWER query, INFO1–3, the relay state; then STATE + SENSOR every TelePeriod", async () => {
    const plug = start();
    await plug.connected();
    expect(will(id)).toEqual({ clientId: id, username: id, protocolVersion: 4, will: { topic: `tele/${id}/LWT`, payload: "Offline", qos: 1, retain: true } });
    await nth(`tele/${id}/SENSOR`, 1);
    const first = h.seen.slice(0, 7).map((s) => [s.topic, s.topic.includes("INFO") ? "…" : s.text, s.retain]);
    expect(first).toEqual([
      [`tele/${id}/LWT`, "Online", true],
      [`cmnd/${id}/POWER`, "", false],
      [`tele/${id}/INFO1`, "…", false],
      [`tele/${id}/INFO2`, "…", false],
      [`tele/${id}/INFO3`, "…", false],
      [`stat/${id}/RESULT`, '{"POWER":"ON"}', false],
      [`stat/${id}/POWER`, "ON", false],
    ]);
    expect(json(on(`tele/${id}/INFO1`)[0]!)).toEqual({ Info1: { Module: "Sonoff Pow R2", Version: "13.2.0(tasmota)", FallbackTopic: `cmnd/${id}_fb/`, GroupTopic: "cmnd/tasmotas/" } });
    expect(json(on(`tele/${id}/INFO3`)[0]!)).toEqual({ Info3: { RestartReason: "Power On", BootCount: 1 } });
    const state = json(on(`tele/${id}/STATE`)[0]!);
    expect(state).toMatchObject({ Uptime: "0T00:00:00", MqttCount: 1, POWER: "ON" });
    const sensor = json(on(`tele/${id}/SENSOR`)[1]!) as { Time: string; ENERGY: Record<string, number> };
    expect(sensor.Time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/); // device-local, no offset
    expect(Date.parse(`${sensor.Time}Z`) - Date.now()).toBeGreaterThan(50 * 60_000); // UTC+1 local time
    expect(sensor.ENERGY).toMatchObject({ Total: 6.294, Power: 100, Period: 0 });
    expect(Object.keys(sensor.ENERGY)).toEqual(["TotalStartTime", "Total", "Yesterday", "Today", "Period", "Power", "ApparentPower", "ReactivePower", "Factor", "Voltage", "Current"]);
    expect(h.seen.every((s) => s.qos === 0)).toBe(true); // PubSubClient publishes at QoS 0
  });

  it("answers Power, Status 10, Status 2, TelePeriod and unknown commands on stat/<t>/…", async () => {
    const plug = start({ telePeriodSec: 3600, timeWithOffset: true });
    await plug.connected();
    const cmd = (c: string, payload: string) => h.observer.publishAsync(`cmnd/${id}/${c}`, payload, { qos: 1 });
    await cmd("Power", "TOGGLE");
    await nth(`stat/${id}/POWER`, 1);
    expect([on(`stat/${id}/RESULT`)[1]!.text, on(`stat/${id}/POWER`)[1]!.text]).toEqual(['{"POWER":"OFF"}', "OFF"]);
    expect(plug.relayOn).toBe(false);
    await cmd("status", "10");
    const s10 = json(await nth(`stat/${id}/STATUS10`, 0)) as { StatusSNS: { Time: string; ENERGY: Record<string, unknown> } };
    expect(s10.StatusSNS.Time).toMatch(/\+01:00$/); // SetOption52
    expect(s10.StatusSNS.ENERGY).toMatchObject({ Power: 0, Current: 0, Total: 6.294 });
    expect(s10.StatusSNS.ENERGY).not.toHaveProperty("Period");
    await cmd("Status", "2");
    expect(json(await nth(`stat/${id}/STATUS2`, 0))).toMatchObject({ StatusFWR: { Version: "13.2.0(tasmota)" } });
    await cmd("TelePeriod", "1");
    await waitFor(() => on(`stat/${id}/RESULT`).find((s) => s.text === '{"TelePeriod":300}'), "TelePeriod result");
    await cmd("Explode", "now");
    await waitFor(() => on(`stat/${id}/RESULT`).find((s) => s.text === '{"Command":"Unknown"}'), "unknown command result");
  });

  it("keeps Total across a reboot; after a power cut the broker publishes the retained LWT Offline", async () => {
    const plug = start({ loadW: 3600, energyRes: 5 });
    await plug.connected();
    await nth(`tele/${id}/SENSOR`, 2);
    const before = plug.energyWh;
    await plug.reboot();
    await nth(`tele/${id}/INFO3`, 1);
    expect(json(on(`tele/${id}/INFO3`)[1]!)).toEqual({ Info3: { RestartReason: "Software/System restart", BootCount: 2 } });
    const n = on(`tele/${id}/SENSOR`).length;
    const after = json(await nth(`tele/${id}/SENSOR`, n)) as { ENERGY: { Total: number } };
    expect(after.ENERGY.Total * 1000).toBeGreaterThanOrEqual(before - 0.01);
    expect(on(`tele/${id}/LWT`).map((s) => [s.text, s.retain])).toEqual([
      ["Online", true],
      ["Offline", true], // the will of the first session
      ["Online", true],
    ]);
    plug.kill();
    await nth(`tele/${id}/LWT`, 3);
    expect([on(`tele/${id}/LWT`)[3]!.text, on(`tele/${id}/LWT`)[3]!.retain]).toEqual(["Offline", true]);
  });
});

describe("Shelly Gen1 simulator on the wire (PROTOCOLS.md §3)", () => {
  const id = "shellyplug-s-7AD2F1";
  const root = `shellies/${id}`;
  const start = (o: Partial<Parameters<typeof startShellyGen1Plug>[0]> = {}) => {
    const p = startShellyGen1Plug({ url: h.url, deviceId: id, password: CODE, loadW: 600, intervalMs: 200, reconnect: false, ...o });
    plugs.push(p);
    return p;
  };

  it("connects with the online will, announces, and re-publishes relay, power (text) and energy (watt-minutes)", async () => {
    const plug = start();
    await plug.connected();
    expect(will(id)).toEqual({ clientId: id, username: id, protocolVersion: 4, will: { topic: `${root}/online`, payload: "false", qos: 0, retain: true } });
    await nth(`${root}/relay/0/energy`, 3);
    expect(h.seen.slice(0, 6).map((s) => [s.topic, s.retain])).toEqual([
      [`${root}/online`, true],
      ["shellies/announce", false],
      [`${root}/announce`, false],
      [`${root}/relay/0`, false],
      [`${root}/relay/0/power`, false],
      [`${root}/relay/0/energy`, false],
    ]);
    expect(json(on("shellies/announce")[0]!)).toEqual({ id, mode: "relay", model: "SHPLG-S", mac: "A4CF127AD2F1", ip: expect.stringMatching(/^192\.168\.1\.\d+$/), new_fw: false, fw_ver: "20230913-114008/v1.14.0-gcb84623" });
    expect(on(`${root}/relay/0/power`).map((s) => s.text)).toContain("600.00");
    const wm = on(`${root}/relay/0/energy`).map((s) => Number(s.text));
    expect(wm.every((v, i) => Number.isInteger(v) && (i === 0 || v >= wm[i - 1]!))).toBe(true);
    expect(wm[3]).toBeGreaterThan(0); // 600 W = 10 Wh·min per second
  });

  it("obeys relay/0/command at once, answers shellies/command announce, trips on overpower, and restarts its counter at 0 on reboot", async () => {
    const plug = start({ intervalMs: 60_000 });
    await plug.connected();
    await h.observer.publishAsync(`${root}/relay/0/command`, "off", { qos: 1 });
    expect((await nth(`${root}/relay/0`, 1)).text).toBe("off");
    await h.observer.publishAsync("shellies/command", "announce", { qos: 1 });
    await nth("shellies/announce", 1);
    await h.observer.publishAsync(`${root}/relay/0/command`, "toggle", { qos: 1 });
    expect((await nth(`${root}/relay/0`, 2)).text).toBe("on");
    await new Promise((r) => setTimeout(r, 300));
    await plug.publishReading(); // the meter is read when the plug reports
    const counted = plug.wattMinutes;
    expect(counted).toBeGreaterThan(0);
    await plug.reboot();
    expect(Number((await nth(`${root}/relay/0/energy`, 3)).text)).toBeLessThan(counted); // 0 again (RAM counter)

    const big = startShellyGen1Plug({ url: h.url, deviceId: "shellyplug-s-BBBBBB", password: CODE, loadW: 3000, intervalMs: 100, reconnect: false });
    plugs.push(big);
    await big.connected();
    expect((await waitFor(() => on("shellies/shellyplug-s-BBBBBB/relay/0").find((s) => s.text === "overpower"), "overpower")).text).toBe("overpower");
    expect(big.relayOn).toBe(false);
  });
});

describe("Shelly Gen2 simulator on the wire (PROTOCOLS.md §4)", () => {
  const id = "shellyplusplugs-80646fd031f8";
  const start = (o: Partial<Parameters<typeof startShellyGen2Plug>[0]> = {}) => {
    const p = startShellyGen2Plug({ url: h.url, deviceId: id, password: CODE, loadW: 100, intervalMs: 200, energyWh: 152669.987, reconnect: false, ...o });
    plugs.push(p);
    return p;
  };
  const rpc = async (n: number, method: string, params?: Record<string, unknown>) => {
    const before = on("obs/hub/rpc").length;
    await h.observer.publishAsync(`${id}/rpc`, JSON.stringify({ id: n, src: "obs/hub", method, ...(params ? { params } : {}) }), { qos: 1 });
    return json(await nth("obs/hub/rpc", before, `reply to ${method}`));
  };

  it("connects with the online will, sends online true and NotifyFullStatus, then NotifyStatus with only the changed measurements", async () => {
    const plug = start();
    await plug.connected();
    expect(will(id)).toEqual({ clientId: id, username: id, protocolVersion: 4, will: { topic: `${id}/online`, payload: "false", qos: 1, retain: true } });
    expect(h.seen.slice(0, 2).map((s) => [s.topic, s.qos, s.retain])).toEqual([
      [`${id}/online`, 1, true],
      [`${id}/events/rpc`, 1, false],
    ]);
    expect(h.seen[0]!.text).toBe("true");
    const full = json(on(`${id}/events/rpc`)[0]!) as { method: string; dst: string; params: Record<string, unknown> & { ts: number } };
    expect(full.method).toBe("NotifyFullStatus");
    expect(full.dst).toBe(`${id}/events`);
    expect(Math.abs(full.params.ts * 1000 - Date.now())).toBeLessThan(5000);
    expect(full.params["switch:0"]).toMatchObject({ id: 0, source: "init", output: true, apower: 100, aenergy: { total: expect.closeTo(152669.987, 1) } });
    expect(full.params.sys).toMatchObject({ mac: "80646FD031F8" });
    await nth(`${id}/events/rpc`, 3);
    for (const s of on(`${id}/events/rpc`).slice(1)) {
      const f = json(s) as { method: string; params: Record<string, Record<string, unknown>> };
      expect(f.method).toBe("NotifyStatus");
      const keys = Object.keys(f.params["switch:0"]!);
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.every((k) => ["apower", "voltage", "current", "aenergy"].includes(k)), keys.join()).toBe(true);
      expect(keys).not.toContain("apower"); // a constant load: apower never changes
    }
  });

  it("answers RPC on <src>/rpc: Switch.Set/Toggle with was_on (then a NotifyStatus with output), GetStatus, and -114 for unknown methods", async () => {
    const plug = start({ intervalMs: 60_000 });
    await plug.connected();
    expect(await rpc(1, "Switch.Set", { id: 0, on: false })).toEqual({ id: 1, src: id, dst: "obs/hub", result: { was_on: true } });
    const n = await waitFor(() => on(`${id}/events/rpc`).map(json).find((f) => (f.params as Record<string, Record<string, unknown>>)["switch:0"]?.output === false), "NotifyStatus with output");
    expect((n.params as Record<string, unknown>)["switch:0"]).toMatchObject({ output: false, source: "MQTT", apower: 0, current: 0 });
    expect(await rpc(2, "Switch.Toggle", { id: 0 })).toEqual({ id: 2, src: id, dst: "obs/hub", result: { was_on: false } });
    expect(plug.relayOn).toBe(true);
    expect((await rpc(3, "Switch.GetStatus", { id: 0 })).result).toMatchObject({ id: 0, source: "MQTT", output: true, apower: 100, voltage: expect.any(Number), aenergy: { total: expect.any(Number) } });
    expect(Object.keys((await rpc(4, "Shelly.GetStatus")).result as object)).toEqual(["ble", "cloud", "mqtt", "switch:0", "sys", "wifi", "ws"]);
    expect(await rpc(5, "Switch.Explode")).toEqual({ id: 5, src: id, dst: "obs/hub", error: { code: -114, message: "Method Switch.Explode not found" } });
    expect(await rpc(6, "Switch.Set", { id: 3, on: true })).toEqual({ id: 6, src: id, dst: "obs/hub", error: { code: -105, message: "Argument 'id', value 3 not found!" } });
  });

  it("keeps aenergy.total across a reboot and sends a fresh NotifyFullStatus", async () => {
    const plug = start({ loadW: 3600 });
    await plug.connected();
    await nth(`${id}/events/rpc`, 2);
    const total = (s: Seen) => ((json(s).params as Record<string, { aenergy?: { total: number } }>)["switch:0"]?.aenergy?.total ?? NaN);
    const before = Math.max(...on(`${id}/events/rpc`).map(total).filter(Number.isFinite));
    await plug.reboot();
    const fulls = await waitFor(() => {
      const f = on(`${id}/events/rpc`).filter((s) => json(s).method === "NotifyFullStatus");
      return f.length === 2 ? f : undefined;
    }, "second NotifyFullStatus");
    expect(total(fulls[1]!)).toBeGreaterThanOrEqual(before);
    expect(((json(fulls[1]!).params as Record<string, { source: string }>)["switch:0"]!).source).toBe("init");
  });
});
