// RELIABILITY F12: duplicate delivery from a plug, also across a hub restart. The PUBLISH is built by hand
// so the resend is exactly what a plug puts on the wire: the same packet, DUP flag set, same packet id.
// Each resend must be acked (or the plug resends forever), stored once, and counted as a duplicate.
// (The row's "one cloud point" half needs the hub's cloud sync, which this hub does not have yet.)
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { telemetry } from "../../helpers/mqtt.js";
import { publishPacket, rawConnect, TYPE, type RawMqtt } from "../../helpers/mqtt-raw.js";

let t: TestHub;
const sockets: RawMqtt[] = [];
beforeEach(async () => {
  t = await startTestHub();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await t.close();
});

async function plugSocket(id: string, code: string): Promise<RawMqtt> {
  const { client, returnCode } = await rawConnect(t.hub.mqttPort, { clientId: id, username: id, password: code });
  sockets.push(client);
  expect(returnCode).toBe(0);
  return client;
}

/** A QoS 1 PUBLISH; `dup` sets the DUP flag, as a plug does when it resends with the same packet id. */
const publish = (topic: string, payload: string, messageId: number, dup = false) => publishPacket({ topic, payload, qos: 1, messageId, dup });

/** The next packet, which must be a PUBACK; returns its packet id. */
async function puback(s: RawMqtt): Promise<number> {
  const p = await s.next();
  expect(p.type).toBe(TYPE.PUBACK);
  return p.body.readUInt16BE(0);
}

/** Stored raw readings of `id` with timestamp `ts`, through the API. */
async function rowsAt(id: string, ts: number): Promise<number> {
  const q = new URLSearchParams({ interval: "raw", start: new Date(ts - 60_000).toISOString(), end: new Date(ts + 60_000).toISOString() });
  const res = await t.api(`/devices/${id}/telemetry?${q}`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { timestamp: string }[] };
  return body.data.filter((d) => Date.parse(d.timestamp) === ts).length;
}

async function duplicatesTotal(): Promise<number> {
  const text = await (await t.api("/metrics", { token: null })).text();
  const m = /^hub_readings_duplicate_total (\d+)$/m.exec(text);
  if (!m) throw new Error("hub_readings_duplicate_total missing from /metrics");
  return Number(m[1]);
}

describe("fault matrix", () => {
  it("F12: duplicate delivery from a plug — a PUBLISH resent with DUP and the same packet id is acked, stored once and counted", async () => {
    const code = await t.pair("dup-1");
    const topic = "smartplug/dup-1/telemetry";
    const base = Date.now() - 10_000;
    expect(await duplicatesTotal()).toBe(0);

    // 1. Resent on the same connection after the PUBACK (the plug missed it).
    const a = await plugSocket("dup-1", code);
    const r1 = telemetry({ ts: base, power: 10 });
    a.send(publish(topic, r1, 7));
    expect(await puback(a)).toBe(7);
    a.send(publish(topic, r1, 7, true));
    expect(await puback(a)).toBe(7);
    expect(await rowsAt("dup-1", base)).toBe(1);
    expect(await duplicatesTotal()).toBe(1);

    // 2. Original and resend back to back, before any PUBACK: both acked, one row.
    const r2 = telemetry({ ts: base + 1000, power: 20 });
    a.send(Buffer.concat([publish(topic, r2, 8), publish(topic, r2, 8, true)]));
    expect([await puback(a), await puback(a)]).toEqual([8, 8]);
    expect(await rowsAt("dup-1", base + 1000)).toBe(1);
    expect(await duplicatesTotal()).toBe(2);

    // 3. The connection dies after the hub committed and acked, before the plug saw the PUBACK; the plug
    //    reconnects and resends with DUP (MQTT 3.1.1 §4.4).
    const r3 = telemetry({ ts: base + 2000, power: 30 });
    a.send(publish(topic, r3, 9));
    await puback(a); // the hub acked; this PUBACK is what the dying connection loses
    a.destroy();
    const b = await plugSocket("dup-1", code);
    b.send(publish(topic, r3, 9, true));
    expect(await puback(b)).toBe(9);
    expect(await rowsAt("dup-1", base + 2000)).toBe(1);
    expect(await duplicatesTotal()).toBe(3);

    // The first write wins and the rows are the ones sent: 3 readings, 3 rows.
    const q = new URLSearchParams({ interval: "raw", start: new Date(base - 1).toISOString(), end: new Date(base + 3000).toISOString() });
    const all = (await (await t.api(`/devices/dup-1/telemetry?${q}`)).json()) as { data: { timestamp: string; power_avg?: number }[] };
    expect(all.data.map((d) => [Date.parse(d.timestamp) - base, d.power_avg])).toEqual([
      [0, 10],
      [1000, 20],
      [2000, 30],
    ]);
  });

  it("F12: duplicate delivery across a hub restart — the reading resent to the restarted hub is acked, stored once and counted", async () => {
    const code = await t.pair("dup-2");
    const topic = "smartplug/dup-2/telemetry";
    const ts = Date.now() - 5000;
    const reading = telemetry({ ts, power: 42 });
    const a = await plugSocket("dup-2", code);
    a.send(publish(topic, reading, 1));
    expect(await puback(a)).toBe(1);
    expect(await rowsAt("dup-2", ts)).toBe(1);

    await t.restart(); // same data dir; a new broker on a new port, with no memory of the plug's session
    expect(await duplicatesTotal()).toBe(0);
    const b = await plugSocket("dup-2", code);
    b.send(publish(topic, reading, 1, true));
    expect(await puback(b)).toBe(1);
    expect(await rowsAt("dup-2", ts)).toBe(1);
    expect(await duplicatesTotal()).toBe(1);
  });
});
