// A plug's TCP link is reset (a router reboot, a Wi-Fi roam): the plug sees ECONNRESET, reconnects, and
// resends what was not acknowledged; the hub acks it and stores every reading once. This is also the path the
// F9 tests depend on (the hub drops a refused plug's link, which is often a reset): a test plug that stopped
// reconnecting after its first socket error once made F9 fail in a loaded CI run.
import { afterEach, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, eventually, telemetry, type MqttClient } from "../../helpers/mqtt.js";
import { TcpProxy } from "../../helpers/tcp-proxy.js";

let t: TestHub;
let proxy: TcpProxy | undefined;
let plug: MqttClient | undefined;
afterEach(async () => {
  plug?.end(true);
  await proxy?.close();
  await t.close();
  plug = proxy = undefined;
});

it("a plug whose link is reset reconnects and resends; every reading is acked and stored once", async () => {
  t = await startTestHub();
  await t.owner();
  const code = await t.pair("rst");
  proxy = await TcpProxy.start(t.hub.mqttPort);
  const p = (plug = await connectNativePlug(`mqtt://127.0.0.1:${proxy.port}`, "rst", code, { reconnectPeriod: 200, keepalive: 5 }));
  const errors: string[] = [];
  p.on("error", (err) => errors.push((err as NodeJS.ErrnoException).code ?? err.message));
  let reconnected = 0;
  p.on("connect", () => reconnected++);

  const base = Date.now() - 60_000;
  const acked = new Set<number>();
  const send = (i: number) =>
    p.publish("smartplug/rst/telemetry", telemetry({ ts: base + i * 1000, power: 10 + i }), { qos: 1 }, (err) => {
      if (!err) acked.add(i);
    });
  for (let i = 0; i < 20; i++) send(i);
  await eventually(() => acked.size, (n) => n === 20, "first 20 acked");

  proxy.reset();
  for (let i = 20; i < 40; i++) send(i); // while the link is going down and after: kept by the plug, resent
  await eventually(() => acked.size, (n) => n === 40, "all 40 acked after the reset", 15_000);
  expect(errors).toContain("ECONNRESET"); // the reset was a socket error on the plug, not a clean close
  expect(reconnected).toBeGreaterThanOrEqual(1);

  const q = new URLSearchParams({ interval: "raw", start: new Date(base - 1000).toISOString(), end: new Date(base + 60_000).toISOString() });
  const res = await t.api(`/devices/rst/telemetry?${q}`);
  expect(res.status).toBe(200);
  const stored = ((await res.json()).data as { timestamp: string }[]).map((r) => (Date.parse(r.timestamp) - base) / 1000);
  expect(stored).toEqual(Array.from({ length: 40 }, (_, i) => i));
});
