// What the per-family tests check, the way a user would: the local API (devices, telemetry, commands) and
// /metrics. Plugs are the family simulators (test/sim/*-plug.ts) or, for the attack rows, bare mqtt.js
// clients holding a plug's credentials.
import { expect } from "vitest";
import type { TestHub } from "../../../helpers/hub.js";
import { connectClient, eventually, type MqttClient } from "../../../helpers/mqtt.js";
import { simDeviceId, type SimFamily } from "../../../sim/sim-plug.js";

/** The hub as the family tests boot it (one per file): polling every 200 ms, commands confirmed within 1.5 s. */
export const FAMILY_HUB_ENV = { HUB_POLL_INTERVAL_MS: "200" };

let seq = 0;
/** A device id no other test in the file uses, shaped like the family's real ids (the tests share one hub). */
export function freshId(family: SimFamily): string {
  return simDeviceId(family, "t-", seq++);
}

export type Scrape = Map<string, number>;

export async function scrape(t: TestHub): Promise<Scrape> {
  const res = await t.api("/metrics", { token: null });
  expect(res.status).toBe(200);
  const out: Scrape = new Map();
  for (const line of (await res.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

export const refused = (reason: string) => `hub_mqtt_connections_refused_total{reason="${reason}"}`;
export const dropped = (reason: string) => `hub_messages_dropped_total{reason="${reason}"}`;
export const security = (kind: string) => `hub_security_events_total{kind="${kind}"}`;

/** Counter increases since `before` for the given series (missing series count as 0). */
export async function increases(t: TestHub, before: Scrape, keys: string[]): Promise<Record<string, number>> {
  const after = await scrape(t);
  return Object.fromEntries(keys.map((k) => [k, (after.get(k) ?? 0) - (before.get(k) ?? 0)]));
}

export interface RawReading {
  timestamp: string;
  power_avg?: number;
  voltage_avg?: number;
  current_avg?: number;
  /** The plug's energy counter as received, Wh (absent when the reading carried none). */
  energy_wh?: number;
}

/** Every stored raw reading of a device, oldest first (GET /devices/{id}/telemetry?interval=raw). */
export async function storedReadings(t: TestHub, id: string): Promise<RawReading[]> {
  const now = Date.now();
  const q = new URLSearchParams({ interval: "raw", start: new Date(now - 3_600_000).toISOString(), end: new Date(now + 3_600_000).toISOString() });
  const res = await t.api(`/devices/${id}/telemetry?${q.toString()}`);
  expect(res.status).toBe(200);
  return (await res.json()).data;
}

/** Energy the hub accounts for over the last hour, Wh, from the telemetry API (one 1 h bucket, 3 decimals). */
export async function hourEnergyWh(t: TestHub, id: string): Promise<number> {
  const end = Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 3_600_000;
  const q = new URLSearchParams({ interval: "1h", fields: "energy", start: new Date(end - 3 * 3_600_000).toISOString(), end: new Date(end).toISOString() });
  const res = await t.api(`/devices/${id}/telemetry?${q.toString()}`);
  expect(res.status).toBe(200);
  return ((await res.json()).data as { energy_wh: number }[]).reduce((a, p) => a + p.energy_wh, 0);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function device(t: TestHub, id: string): Promise<any> {
  const res = await t.api(`/devices/${id}`);
  expect(res.status).toBe(200);
  return res.json();
}

export function untilDevice<T>(t: TestHub, id: string, pick: (d: Record<string, unknown>) => T, pred: (v: T) => boolean, what: string, ms = 5000): Promise<T> {
  return eventually(async () => pick(await device(t, id)), pred, `${id}: ${what}`, ms);
}

/** Waits until at least `n` readings of the device are stored; returns them. */
export function untilReadings(t: TestHub, id: string, n: number, ms = 5000): Promise<RawReading[]> {
  return eventually(() => storedReadings(t, id), (r) => r.length >= n, `${id}: ${n} stored readings`, ms);
}

export async function command(t: TestHub, id: string, cmd: "relay_on" | "relay_off" | "relay_toggle"): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await t.api(`/devices/${id}/command`, { body: { command: cmd } });
  return { status: res.status, body: await res.json() };
}

/** A bare MQTT client holding a plug's credentials (client id = username = device id). Errors after CONNACK are expected. */
export async function connectAs(t: TestHub, id: string, code: string, clients: MqttClient[]): Promise<MqttClient> {
  const c = await connectClient(t.mqttUrl, { clientId: id, username: id, password: code });
  c.on("error", () => {});
  clients.push(c);
  return c;
}

/** Resolves when the broker drops this client; call it before the action that should cause that. */
export function closed(c: MqttClient): Promise<void> {
  return new Promise((resolve) => c.once("close", () => resolve()));
}

/** Publishes at QoS 1 and reports whether the broker acknowledged it before dropping the connection. */
export async function publishExpectingDisconnect(c: MqttClient, topic: string, payload: string): Promise<boolean> {
  let acked = false;
  const gone = closed(c);
  c.publish(topic, payload, { qos: 1 }, (err) => (acked = !err));
  await gone;
  return acked;
}

/** The SUBACK return code for one filter: 128 refused, else the granted QoS. */
export async function subackCode(c: MqttClient, filter: string): Promise<number> {
  try {
    const granted = await c.subscribeAsync(filter, { qos: 1 });
    return granted[0]!.qos;
  } catch (err) {
    // mqtt.js rejects a refused filter with the SUBACK packet attached: its return code is on the wire.
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw err;
    return granted[0]!;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Energy counters of stored readings, in order, skipping readings without one. */
export const counters = (rs: RawReading[]): number[] => rs.flatMap((r) => (r.energy_wh === undefined ? [] : [r.energy_wh]));

/** True when the values never decrease. */
export const nonDecreasing = (xs: number[]): boolean => xs.every((x, i) => i === 0 || x >= xs[i - 1]!);

/** Median gap between consecutive stored readings, ms. */
export function medianGapMs(rs: RawReading[]): number {
  const gaps = rs.slice(1).map((r, i) => Date.parse(r.timestamp) - Date.parse(rs[i]!.timestamp)).sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)] ?? NaN;
}

/** The largest decrease between consecutive values (0 when they never decrease). */
export const maxDrop = (xs: number[]): number => xs.reduce((m, x, i) => (i > 0 ? Math.max(m, xs[i - 1]! - x) : m), 0);
