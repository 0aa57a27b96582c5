// A fleet of native plugs for the kill/restart fault tests (RELIABILITY F1, F15), with exact client-side
// accounting: every reading a plug generated, every reading whose PUBACK arrived, and every PUBLISH it
// had to put on the wire again. `verifyStore` then compares that accounting with the hub's SQLite file.
//
// How "plugs resend unacked" holds with mqtt.js 5 (checked in node_modules/mqtt/build/lib/client.js):
// a QoS 1 PUBLISH sits in the client's outgoingStore until its PUBACK arrives. On an automatic reconnect
// (reconnectPeriod > 0) the store is kept, whatever `clean` says (it is replaced only after an explicit
// end()/reconnect()), and `_onConnect` re-sends everything in it, one packet per PUBACK, before it emits
// "connect". `clean` only decides whether the *broker* keeps a session; the hub's aedes keeps sessions in
// memory, so after a restart there is none either way. We therefore use clean: true (nothing for the
// broker to keep), and count the re-sent packets on the wire to show the resend actually happened.
// mqtt.js does not set DUP on those re-sends; the hub deduplicates by (ts, device), not by DUP.
// One gap: publishes made while the store is being re-sent are queued in memory and, if the connection
// drops again before they were written, their callbacks get "Connection closed" and they are not in
// the store. A real plug keeps unacked readings until they are acked, so the fleet re-publishes those
// (same reading, same timestamp) — that is the firmware behaviour the row assumes.
import mqtt, { type MqttClient } from "mqtt";
import Database from "better-sqlite3";
import { readFileSync } from "node:fs";
import { telemetry } from "./mqtt.js";
import { OWNER } from "./hub.js";

export interface FleetPlug {
  id: string;
  code: string;
}

interface Member extends FleetPlug {
  client: MqttClient;
  lastTs: number;
  timer: NodeJS.Timeout | null;
  sent: Set<number>;
  acked: Set<number>;
  onWire: Set<number>;
  connacks: number[];
}

export class PlugFleet {
  private readonly members: Member[] = [];
  private generating = false;
  private closed = false;
  /** PUBLISH packets carrying a reading that had been written to a socket before (resent, unacked). */
  wireResends = 0;
  /** Publish callbacks that failed (connection closed before the packet was stored); republished. */
  publishErrors = 0;
  /** Connection errors seen by plugs, by code (ECONNREFUSED while the hub is down, …). */
  readonly connectErrors = new Map<string, number>();

  constructor(
    private readonly o: { url: string; plugs: FleetPlug[]; ratePerSec: number; reconnectPeriodMs: number; keepaliveSec?: number; rng: () => number },
  ) {}

  /** Connects every plug (they keep reconnecting on their own) and starts publishing. */
  start(): void {
    this.generating = true;
    for (const p of this.o.plugs) {
      const client = mqtt.connect(this.o.url, {
        protocolVersion: 4,
        clientId: p.id,
        username: p.id,
        password: p.code,
        clean: true,
        reconnectPeriod: this.o.reconnectPeriodMs,
        connectTimeout: 5000,
        keepalive: this.o.keepaliveSec ?? 30,
        will: { topic: `smartplug/${p.id}/status`, payload: Buffer.from('{"status":"offline"}'), qos: 1, retain: true },
      });
      const m: Member = { ...p, client, lastTs: 0, timer: null, sent: new Set(), acked: new Set(), onWire: new Set(), connacks: [] };
      this.members.push(m);
      client.on("error", (err: Error & { code?: string | number }) => {
        const code = String(err.code ?? err.message);
        this.connectErrors.set(code, (this.connectErrors.get(code) ?? 0) + 1);
      });
      client.on("packetreceive", (packet) => {
        if (packet.cmd === "connack" && (packet.returnCode ?? 0) === 0) m.connacks.push(performance.now());
      });
      client.on("packetsend", (packet) => {
        if (packet.cmd !== "publish" || !packet.topic.endsWith("/telemetry")) return;
        const ts = Date.parse((JSON.parse(packet.payload.toString()) as { timestamp: string }).timestamp);
        if (m.onWire.has(ts)) this.wireResends++;
        else m.onWire.add(ts);
      });
      const period = 1000 / this.o.ratePerSec;
      const phase = setTimeout(() => {
        if (!this.generating) return;
        this.tick(m);
        m.timer = setInterval(() => this.tick(m), period);
      }, this.o.rng() * period);
      m.timer = phase;
    }
  }

  private tick(m: Member) {
    if (!this.generating) return;
    const ts = Math.max(Date.now(), m.lastTs + 1); // unique per plug: (ts, device) is the reading's key
    m.lastTs = ts;
    m.sent.add(ts);
    this.publish(m, ts);
  }

  private publish(m: Member, ts: number) {
    if (this.closed) return;
    m.client.publish(`smartplug/${m.id}/telemetry`, telemetry({ ts, power: 40 + (ts % 200) / 10 }), { qos: 1 }, (err) => {
      if (!err) {
        m.acked.add(ts);
        return;
      }
      this.publishErrors++;
      setTimeout(() => this.publish(m, ts), 100);
    });
  }

  /** performance.now() of each plug's first CONNACK in (t0, t1), or undefined for a plug not back in that window. */
  connackAfter(t0: number, t1 = Infinity): (number | undefined)[] {
    return this.members.map((m) => m.connacks.find((t) => t > t0 && t < t1));
  }

  /**
   * Resolves with every plug's first CONNACK after `since` once all are back; on timeout rejects with what
   * a failed CI run needs to be understood: who is missing, the plugs' connection errors, the hub's MQTT
   * health and its last log lines.
   */
  async allBack(since: number, what: string, hub: { httpPort: number; lines: string[] }, ms = 15_000): Promise<number[]> {
    const end = Date.now() + ms;
    for (;;) {
      const xs = this.connackAfter(since);
      if (xs.every((x) => x !== undefined)) return xs as number[];
      if (Date.now() > end) {
        const missing = this.members.filter((_, i) => xs[i] === undefined).map((m) => `${m.id}${m.client.connected ? "(connected?)" : ""}`);
        let health = "";
        try {
          health = JSON.stringify(((await (await fetch(`http://127.0.0.1:${hub.httpPort}/health`)).json()) as { components: unknown }).components);
        } catch (err) {
          health = `unavailable: ${(err as Error).message}`;
        }
        throw new Error(
          `timed out after ${ms} ms waiting for ${what}: missing ${missing.join(", ")}\n` +
            `plug connection errors: ${JSON.stringify(Object.fromEntries(this.connectErrors))}\nhub health: ${health}\n` +
            `hub log tail:\n${hub.lines.slice(-25).join("\n")}`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  get sent(): Map<string, Set<number>> {
    return new Map(this.members.map((m) => [m.id, m.sent]));
  }

  get acked(): Map<string, Set<number>> {
    return new Map(this.members.map((m) => [m.id, m.acked]));
  }

  get counts(): { sent: number; acked: number; outstanding: number } {
    let sent = 0;
    let acked = 0;
    for (const m of this.members) {
      sent += m.sent.size;
      acked += m.acked.size;
    }
    return { sent, acked, outstanding: sent - acked };
  }

  stopGenerating(): void {
    this.generating = false;
    for (const m of this.members) if (m.timer) clearInterval(m.timer);
  }

  /**
   * Waits until every generated reading is acked, or until acks stop coming for `stallMs`; returns how many
   * are still outstanding. A backlog drains slowly by design: mqtt.js re-sends its store one PUBLISH per
   * PUBACK, and the hub acks after its group commit, so each plug catches up at about one reading per
   * commit interval.
   */
  async drain(stallMs: number): Promise<number> {
    let last = this.counts.acked;
    let progressAt = Date.now();
    while (this.counts.outstanding > 0 && Date.now() - progressAt < stallMs) {
      await new Promise((r) => setTimeout(r, 50));
      const acked = this.counts.acked;
      if (acked !== last) {
        last = acked;
        progressAt = Date.now();
      }
    }
    return this.counts.outstanding;
  }

  async close(): Promise<void> {
    this.stopGenerating();
    this.closed = true;
    await Promise.all(this.members.map((m) => m.client.endAsync(true).catch(() => undefined)));
  }
}

/** Registers the owner on a fresh hub and pairs the plugs; returns their credentials. */
export async function pairPlugs(httpUrl: string, ids: string[]): Promise<FleetPlug[]> {
  const post = (path: string, body: unknown, token?: string) =>
    fetch(httpUrl + path, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  const reg = await post("/auth/register", OWNER);
  if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${await reg.text()}`);
  const login = await post("/auth/login", OWNER);
  if (login.status !== 200) throw new Error(`login failed: ${login.status} ${await login.text()}`);
  const token = ((await login.json()) as { access_token: string }).access_token;
  const plugs: FleetPlug[] = [];
  for (const id of ids) {
    const code = `code-${id}-secret`;
    const res = await post("/devices", { device_id: id, name: `Plug ${id}`, pairing_code: code }, token);
    if (res.status !== 201) throw new Error(`pairing ${id} failed: ${res.status} ${await res.text()}`);
    plugs.push({ id, code });
  }
  return plugs;
}

export interface StoreCheck {
  rows: number;
  distinctKeys: number;
  /** Acked readings not in the database. */
  lost: string[];
  /** Rows whose (device, ts) no plug ever sent. */
  unknown: string[];
  integrity: string;
}

/** Opens the hub's database read-only (the hub must be stopped) and compares it with the fleet's accounting. */
export function verifyStore(dbPath: string, sent: Map<string, Set<number>>, acked: Map<string, Set<number>>): StoreCheck {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const integrity = (db.pragma("integrity_check") as { integrity_check: string }[]).map((r) => r.integrity_check).join("; ");
    const { rows, distinctKeys } = db.prepare("SELECT COUNT(*) AS rows, COUNT(DISTINCT ts || ':' || device) AS distinctKeys FROM readings").get() as { rows: number; distinctKeys: number };
    const stored = new Map<string, Set<number>>();
    for (const r of db.prepare("SELECT d.device_id AS id, r.ts AS ts FROM readings r LEFT JOIN devices d ON d.idx = r.device").iterate() as Iterable<{ id: string | null; ts: number }>) {
      const id = r.id ?? "?";
      let s = stored.get(id);
      if (!s) stored.set(id, (s = new Set()));
      s.add(r.ts);
    }
    const lost: string[] = [];
    const unknown: string[] = [];
    for (const [id, set] of acked) for (const ts of set) if (!stored.get(id)?.has(ts)) lost.push(`${id}@${new Date(ts).toISOString()}`);
    for (const [id, set] of stored) {
      for (const ts of set) if (!sent.get(id)?.has(ts)) unknown.push(`${id}@${new Date(ts).toISOString()}`);
    }
    return { rows, distinctKeys, lost, unknown, integrity };
  } finally {
    db.close();
  }
}

/** A metric's value from the hub's /metrics (0 when absent). */
export async function scrapeMetric(httpUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{\\})? ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** Resident set size of a live process, KiB (Linux /proc). */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** A seed from the environment (printed by the caller), else the given default: runs are reproducible. */
export function seedFrom(envValue: string | undefined, fallback: string): string {
  return envValue && envValue.length > 0 ? envValue : fallback;
}

export function stats(xs: number[]): { n: number; min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, min: s[0] ?? NaN, median: s[Math.floor(s.length / 2)] ?? NaN, max: s[s.length - 1] ?? NaN };
}
