// RELIABILITY F14: the plug's link dies silently (a TCP proxy between plug and hub stops forwarding in both
// directions without closing anything). The hub must notice through the MQTT keepalive alone and publish
// the plug offline within 1.5 × keepalive + 2 s — a protocol deadline (MQTT 3.1.1 §3.1.2.10: the server
// disconnects after 1.5 × keepalive without a packet), not a speed benchmark. A command caught by the dead
// link must come back as "timeout", and one sent after detection as "offline" (409) at once: never a hang.
//
// F14_SEED (default "f14") seeds when, within the plug's ping cycle, each link dies.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, eventually, type MqttClient } from "../../helpers/mqtt.js";
import { TcpProxy } from "../../helpers/tcp-proxy.js";
import { createRng } from "../../sim/native-payloads.js";

const KEEPALIVE_S = 2;
const DEADLINE_MS = 1.5 * KEEPALIVE_S * 1000 + 2000;
const TRIALS = 3;
const SEED = process.env.F14_SEED || "f14";

let t: TestHub;
const proxies: TcpProxy[] = [];
const plugs: MqttClient[] = [];
let ws: WebSocket | undefined;
beforeEach(async () => {
  t = await startTestHub();
});
afterEach(async () => {
  ws?.terminate();
  for (const p of plugs.splice(0)) p.end(true);
  for (const p of proxies.splice(0)) await p.close();
  await t.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The live socket, subscribed to every device; records when each status frame arrived. */
async function statusStream(token: string): Promise<{ socket: WebSocket; seen: { device_id: string; status: string; at: number }[] }> {
  const socket = new WebSocket(`ws://127.0.0.1:${t.hub.httpPort}/ws`, { headers: { authorization: `Bearer ${token}` } });
  const seen: { device_id: string; status: string; at: number }[] = [];
  const subscribed = new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.on("message", (data) => {
      const m = JSON.parse(data.toString()) as { type: string; device_id?: string; status?: string };
      if (m.type === "welcome") socket.send(JSON.stringify({ type: "subscribe", device_ids: "*" }));
      if (m.type === "subscribed") resolve();
      if (m.type === "status") seen.push({ device_id: m.device_id!, status: m.status!, at: performance.now() });
    });
  });
  await subscribed;
  return { socket, seen };
}

async function deviceStatus(id: string): Promise<string> {
  return ((await (await t.api(`/devices/${id}`)).json()) as { status: string }).status;
}

describe("fault matrix", () => {
  it(`F14: plug link dies silently — offline detected ≤ 1.5 × keepalive + 2 s (${DEADLINE_MS} ms at keepalive ${KEEPALIVE_S} s) and published; commands time out or answer offline, never hang`, async () => {
    const rng = createRng(SEED);
    console.log(`[F14] seed=${SEED} keepalive=${KEEPALIVE_S} s deadline=${DEADLINE_MS} ms trials=${TRIALS}`);
    const stream = await statusStream(await t.owner());
    ws = stream.socket;
    const detections: number[] = [];

    for (let trial = 1; trial <= TRIALS; trial++) {
      const id = `link-${trial}`;
      const code = await t.pair(id);
      const proxy = await TcpProxy.start(t.hub.mqttPort);
      proxies.push(proxy);
      const plug = await connectNativePlug(`mqtt://127.0.0.1:${proxy.port}`, id, code, { keepalive: KEEPALIVE_S });
      plug.on("error", () => undefined); // its own keepalive timeout, later; the plug simply stops
      plugs.push(plug);
      await plug.subscribeAsync(`smartplug/${id}/control`, { qos: 1 }); // so commands really travel down the link
      await eventually(() => deviceStatus(id), (s) => s === "online", `${id} online`);
      // Let the link die at a seeded moment within the plug's ping cycle (PINGREQ every keepalive).
      await sleep(KEEPALIVE_S * 1000 * rng());
      const holedAt = performance.now();
      proxy.blackhole();

      // A command caught by the dead link: the hub still believes the plug online, sends it, and reports a
      // timeout when no confirmation comes — a status back, not silence and not a hang.
      const inFlight = trial === 1 ? t.api(`/devices/${id}/command`, { body: { command: "relay_on", timeout_ms: 500 } }) : null;

      let restAt: number | undefined;
      const polling = eventually(
        () => deviceStatus(id),
        (s) => {
          if (s !== "offline") return false;
          restAt = performance.now();
          return true;
        },
        `${id} offline via GET /devices`,
        DEADLINE_MS + 5000,
      ).catch(() => undefined);
      const wsEvent = await eventually(
        () => stream.seen.find((e) => e.device_id === id && e.status === "offline"),
        (e) => e !== undefined,
        `${id} offline on /ws`,
        DEADLINE_MS + 5000,
      ).catch(() => undefined);
      await polling;
      const wsMs = wsEvent ? wsEvent.at - holedAt : Infinity;
      const restMs = restAt === undefined ? Infinity : restAt - holedAt;
      detections.push(wsMs);
      console.log(
        `[F14] trial ${trial}: link blackholed; hub published ${id} offline on /ws after ${wsMs.toFixed(0)} ms, GET /devices/${id} said offline after ${restMs.toFixed(0)} ms ` +
          `(deadline ${DEADLINE_MS} ms; bytes dropped to hub ${proxy.dropped.toTarget}, to plug ${proxy.dropped.toClient})`,
      );
      expect(wsMs).toBeLessThanOrEqual(DEADLINE_MS);
      expect(restMs).toBeLessThanOrEqual(DEADLINE_MS + 100); // one poll later at most

      if (inFlight) {
        const res = await inFlight;
        expect(proxy.dropped.toClient).toBeGreaterThan(0); // the command went into the dead link
        expect(res.status).toBe(504);
        expect(await res.json()).toMatchObject({ device_id: id, command: "relay_on", status: "timeout" });
        const askedAt = performance.now();
        const off = await t.api(`/devices/${id}/command`, { body: { command: "relay_off" } });
        const answerMs = performance.now() - askedAt;
        expect(off.status).toBe(409);
        expect(await off.json()).toMatchObject({ device_id: id, command: "relay_off", status: "offline" });
        console.log(`[F14] command during the dead link → 504 "timeout" after its 500 ms; command after detection → 409 "offline" in ${answerMs.toFixed(0)} ms`);
        expect(answerMs).toBeLessThan(1000);
      }
    }
    console.log(`[F14] detection ms (blackhole → offline on /ws): ${detections.map((d) => d.toFixed(0)).join(", ")}; max ${Math.max(...detections).toFixed(0)} of ${DEADLINE_MS} allowed`);
  }, 60_000);
});
