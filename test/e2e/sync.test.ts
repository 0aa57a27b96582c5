// Hub ↔ cloud end to end (issue 6): the real hub (SQLite, aedes, its uplink and link) in this process, the real
// cloud (PGlite, express, ws) and a real InfluxDB, with a fault-injecting HTTP proxy between hub and cloud
// for the rows of RELIABILITY F4–F8. Every check is what a user would see: the cloud's API and InfluxDB
// holding exactly the hub's rollups, the hub's /cloud, /health and /metrics.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { SERVICE_START_MS, startTestCloud, type TestCloud, type TestUser } from "../helpers/cloud.js";
import { startTestHub, type TestHub } from "../helpers/hub.js";
import { eventually } from "../helpers/mqtt.js";
import { CloudFaultProxy } from "../helpers/cloud-fault-proxy.js";
import { MIN, cloudRollups, hubRollups, sameRollups, seedHistory } from "./sync-helpers.js";

let influx: TestInflux;
beforeAll(async () => {
  influx = await startInflux();
}, SERVICE_START_MS);
afterAll(async () => {
  await influx?.close();
});

const FAST_SYNC = {
  HUB_SYNC_INTERVAL_MS: "200",
  HUB_ROLLUP_INTERVAL_MS: "300",
  HUB_SYNC_BACKOFF_BASE_MS: "100",
  HUB_SYNC_BACKOFF_MAX_S: "2",
  HUB_SYNC_TIMEOUT_MS: "1500",
  HUB_LINK_STATE_MS: "100",
};

describe("hub ↔ cloud sync, end to end", () => {
  let cloud: TestCloud | undefined;
  let hub: TestHub | undefined;
  let proxy: CloudFaultProxy | undefined;
  afterEach(async () => {
    await hub?.close();
    await proxy?.close();
    await cloud?.close();
    hub = proxy = cloud = undefined;
  });

  /** A hub with `minutes` of history on two plugs, pointed at the cloud through the fault proxy. */
  async function setup(minutes: number, env: Record<string, string> = {}, hubOptions?: NonNullable<Parameters<typeof startTestHub>[0]>["hubOptions"]) {
    cloud = await startTestCloud({ influxUrl: influx.url });
    const c = cloud;
    proxy = await CloudFaultProxy.start(() => c.cloud.httpPort);
    const dataDir = mkdtempSync(join(tmpdir(), "hub-e2e-"));
    const from = Math.floor(Date.now() / MIN) * MIN - (minutes + 3) * MIN;
    seedHistory(dataDir, ["fridge-1", "kettle-1"], from, minutes);
    hub = await startTestHub({ dataDir, env: { HUB_CLOUD_URL: proxy.url, ...FAST_SYNC, ...env }, hubOptions });
    const owner = await cloud.user("alice");
    return { owner, from };
  }

  async function claim(h: TestHub, c: TestCloud, owner: TestUser) {
    const token = await h.owner();
    const st = await eventually(async () => (await h.api("/cloud", { token })).json(), (s) => s.registered && typeof s.claim_code === "string", "hub registered with a claim code");
    expect(st.claim_code).toMatch(/^[0-9A-Z]{5}-[0-9A-Z]{5}$/);
    const res = await c.api("/hubs/claim", { body: { claim_code: st.claim_code }, token: owner.token });
    expect(res.status).toBe(200);
    return { token, hubId: st.hub_id as string };
  }

  /**
   * Queues, in one transaction and so in one run of sequences, `rollups` 1-minute rollups of a paired plug
   * (through the real triggers) with a relay change of fridge-1 after every `relayEvery`-th, and optionally a
   * poison relay row (a device id the cloud's schema refuses) in the middle. Synchronous: no request of the
   * uplink can start between the rows. Returns what was queued.
   */
  function queueBulk(h: TestHub, deviceId: string, o: { rollups: number; relayEvery: number; poison?: boolean; fromMs: number }) {
    const sqlite = h.hub.db.sqlite;
    const idx = (sqlite.prepare("SELECT idx FROM devices WHERE device_id = ?").get(deviceId) as { idx: number }).idx;
    const put1m = sqlite.prepare(
      "INSERT INTO rollup_1m (bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms) VALUES (?, ?, 6, ?, 6, 90, 110, 1380, 6, 2.6, 6, ?, 60000)",
    );
    const outbox = h.hub.sync.outbox;
    const queue = (kind: string, ref: string, ts: number, payload: string) => {
      const op = outbox.insertOp(kind, ref, ts, payload);
      return Number(sqlite.prepare(op.sql).run(...op.params).lastInsertRowid);
    };
    let relays = 0;
    let lastRelay: boolean | null = null;
    let poisonSeq: number | null = null;
    const relayTs = Date.now() + relayClock++ * 100_000;
    sqlite.transaction(() => {
      for (let i = 0; i < o.rollups; i++) {
        put1m.run(o.fromMs + i * MIN, idx, 600 + (i % 7), 0.01 * (i % 13));
        if (o.poison && i === Math.floor(o.rollups / 2)) poisonSeq = queue("relay", "bad id with spaces", relayTs, JSON.stringify({ relay_state: true, source: null }));
        if (i % o.relayEvery === 0) {
          lastRelay = relays % 2 === 0;
          queue("relay", "fridge-1", relayTs + relays, JSON.stringify({ relay_state: lastRelay, source: "plug" }));
          relays++;
        }
      }
    })();
    return { relays, lastRelay, poisonSeq };
  }

  let relayClock = 0;

  /** Outbox rows of a kind the cloud has stored, redeliveries not counted (its cloud_sync_rows_total). */
  async function cloudStored(c: TestCloud, kind: string): Promise<number> {
    const m = await c.cloud.metrics.registry.getSingleMetric("cloud_sync_rows_total")?.get();
    return m?.values.find((v) => v.labels.kind === kind)?.value ?? 0;
  }

  const deadLetters = (h: TestHub) => h.hub.db.sqlite.prepare("SELECT seq, kind, ref, reason FROM sync_dead_letters ORDER BY seq").all() as { seq: number; kind: string; ref: string; reason: string }[];

  async function drained(h: TestHub) {
    await eventually(
      async () => h.hub.sync.status(),
      (s) => s.outbox.depth === 0 && s.uplink.last_success_at !== null && h.hub.rollups.until1m >= Math.floor((Date.now() - 5000) / MIN) * MIN - MIN,
      "outbox drained",
      20_000,
    );
  }

  it("claims end to end; the hub's devices and exact rollups reach the cloud once; a device paired later appears within seconds", async () => {
    const { owner } = await setup(90);
    const { token, hubId } = await claim(hub!, cloud!, owner);
    await drained(hub!);

    const devices = await eventually(async () => (await cloud!.api("/devices", { token: owner.token })).json(), (d) => d.length === 2, "devices in the owner's account");
    expect(devices.map((d: { device_id: string; name: string }) => [d.device_id, d.name]).sort()).toEqual([
      ["fridge-1", "Plug fridge-1"],
      ["kettle-1", "Plug kettle-1"],
    ]);
    for (const level of ["1m", "1h"] as const) {
      const want = hubRollups(hub!.hub.db.sqlite, level);
      expect(want.size).toBeGreaterThan(level === "1m" ? 170 : 1);
      const diff = sameRollups(want, await cloudRollups(influx.url, cloud!.influxPrefix, hubId, level));
      expect(diff, `${level} rollups`).toEqual({ missing: [], extra: [], different: [] });
    }
    // The cloud's history API answers from them.
    const tele = await (await cloud!.api(`/devices/fridge-1/telemetry?interval=1h&start=${new Date(Date.now() - 4 * 3_600_000).toISOString()}`, { token: owner.token })).json();
    expect(tele.total_points).toBeGreaterThan(0);

    const t0 = Date.now();
    await hub!.pair("lamp-9", { name: "Desk lamp" });
    await eventually(async () => (await cloud!.api("/devices/lamp-9", { token: owner.token })).status, (s) => s === 200, "paired device appears in the cloud", 5000);
    console.log(`[sync] device paired on the hub visible in the cloud after ${Date.now() - t0} ms`);

    // A scrape on its own (no /health before it) has the live sync gauges (issue 6 §8).
    await drained(hub!);
    await eventually(async () => hub!.hub.sync.link.connected, (c) => c, "link connected", 15_000);
    const metrics = await (await hub!.api("/metrics")).text();
    expect(metrics).toMatch(/hub_sync_batches_total\{outcome="acked"\} [1-9]/);
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    expect([gauge("hub_outbox_rows"), gauge("hub_outbox_bytes"), gauge("hub_link_connected"), gauge("hub_sync_dead_lettered_total")]).toEqual([0, 0, 1, 0]);
    expect(gauge("hub_sync_last_success_timestamp_seconds")).toBeCloseTo(hub!.hub.sync.status().uplink.last_success_at! / 1000, 0);
    const health = await (await hub!.api("/health")).json();
    expect(health.components.sync).toMatchObject({ status: "healthy", hub_id: hubId, queue_depth: 0, dead_lettered: 0 });
    expect((await hub!.api("/cloud", { token })).status).toBe(200);
  });

  it("F5 cloud 503s, F6 429 + Retry-After, F8 answer lost after commit, F4 hang: backs off, waits, retries once in flight, and the cloud ends with each rollup exactly once", async () => {
    const { owner, from } = await setup(30);
    const p = proxy!;
    const { hubId } = await claim(hub!, cloud!, owner);
    await drained(hub!);
    const rename = async (name: string) => {
      const token = await hub!.owner();
      expect((await hub!.api("/devices/fridge-1", { method: "PATCH", token, body: { name } })).status).toBe(200);
    };

    // F5: three 503s, then through. Full-jitter backoff spaces the attempts out. Rows produced during the faults
    // (rollups and relay changes, before the first 503 and between the 503s) reach the cloud once each.
    await hub!.pair("f5-bulk");
    await drained(hub!);
    const relaysBefore = await cloudStored(cloud!, "relay");
    p.fault = { kind: "status", status: 503, times: 3 };
    let mark = p.syncRequests.length;
    const during1 = queueBulk(hub!, "f5-bulk", { rollups: 1500, relayEvery: 10, fromMs: from - 3 * 86_400_000 });
    await rename("Fridge (F5)");
    await eventually(async () => p.syncRequests.slice(mark).length, (n) => n >= 1, "first 503");
    const during2 = queueBulk(hub!, "f5-bulk", { rollups: 1500, relayEvery: 10, fromMs: from - 3 * 86_400_000 + 1500 * MIN });
    await eventually(async () => (await cloud!.api("/devices/fridge-1", { token: owner.token })).json(), (d) => d.name === "Fridge (F5)", "rename after 503s", 15_000);
    await drained(hub!);
    const f5 = p.syncRequests.slice(mark);
    expect(f5.slice(0, 3).map((r) => r.outcome)).toEqual(["status 503", "status 503", "status 503"]);
    expect(f5[3]!.outcome).toBe("forwarded");
    expect(await (await hub!.api("/metrics")).text()).toContain('hub_sync_batches_total{outcome="http_503"} 3');
    const f5Rollups = new Map([...hubRollups(hub!.hub.db.sqlite, "1m")].filter(([k]) => k.startsWith("f5-bulk@")));
    expect(f5Rollups.size).toBe(3000);
    const f5Cloud = (await cloudRollups(influx.url, cloud!.influxPrefix, hubId, "1m")).filter((c) => c.device === "f5-bulk");
    expect(sameRollups(f5Rollups, f5Cloud), "F5: rollups produced during the 503s, once each").toEqual({ missing: [], extra: [], different: [] });
    expect((await cloudStored(cloud!, "relay")) - relaysBefore, "F5: relay changes produced during the 503s, once each").toBe(during1.relays + during2.relays);
    expect(hub!.hub.db.sqlite.prepare("SELECT count(*) AS n FROM sync_dead_letters").get()).toEqual({ n: 0 });

    // F6: 429 with Retry-After: 2 → nothing before 2 s.
    p.fault = { kind: "status", status: 429, times: 1, retryAfter: "2" };
    mark = p.syncRequests.length;
    await rename("Fridge (F6)");
    await eventually(async () => (await cloud!.api("/devices/fridge-1", { token: owner.token })).json(), (d) => d.name === "Fridge (F6)", "rename after 429", 15_000);
    const f6 = p.syncRequests.slice(mark);
    expect(f6[0]!.outcome).toBe("status 429");
    expect(f6[1]!.at - f6[0]!.at).toBeGreaterThanOrEqual(1990);

    // F8: the cloud commits, the answer is lost; the retry is stored once.
    p.fault = { kind: "drop-after-commit", times: 1 };
    mark = p.syncRequests.length;
    await rename("Fridge (F8)");
    await eventually(async () => hub!.hub.sync.status(), (s) => s.outbox.depth === 0 && p.syncRequests.length >= mark + 2, "acked after the lost answer", 15_000);
    expect(p.syncRequests.slice(mark, mark + 2).map((r) => r.outcome)).toEqual(["committed, answer dropped", "forwarded"]);

    // F4: the cloud hangs; the hub gives up after its request timeout and tries again, one request at a time,
    // each time preparing a full batch (5,000 rows: rollups and relay changes, materialized and gzipped) — and
    // its event loop stays responsive meanwhile (p99 delay < 50 ms, the hub's own /metrics).
    await hub!.pair("f4-bulk");
    p.fault = { kind: "hang" };
    mark = p.syncRequests.length;
    queueBulk(hub!, "f4-bulk", { rollups: 6000, relayEvery: 20, fromMs: from - 5 * 86_400_000 });
    await rename("Fridge (F4)");
    const lagP99 = async () => Number(/^hub_nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(await (await hub!.api("/metrics")).text())?.[1]);
    await lagP99(); // a scrape resets the hub's event-loop delay histogram: what follows covers the hang only
    await eventually(async () => p.syncRequests.length, (n) => n >= mark + 3, "retried after the timeout", 15_000);
    const p99 = await lagP99();
    console.log(`[F4] event-loop delay p99 during the hang: ${(p99 * 1000).toFixed(1)} ms`);
    expect(p99).toBeLessThan(0.05);
    const f4 = p.syncRequests.slice(mark);
    expect(f4[1]!.at - f4[0]!.at).toBeGreaterThanOrEqual(1400);
    expect(hub!.hub.sync.status().uplink.last_error).toMatch(/no answer within 1500 ms/);
    p.fault = { kind: "none" };
    await eventually(async () => (await cloud!.api("/devices/fridge-1", { token: owner.token })).json(), (d) => d.name === "Fridge (F4)", "rename after the hang", 15_000);

    expect(p.syncRequests.every((r) => r.concurrent === 0), "one batch in flight").toBe(true);
    const diff = sameRollups(hubRollups(hub!.hub.db.sqlite, "1m"), await cloudRollups(influx.url, cloud!.influxPrefix, hubId, "1m"));
    expect(diff).toEqual({ missing: [], extra: [], different: [] });
  });

  it("F7: a row the cloud refuses is dead-lettered with its reason; rows after it are delivered; nothing blocks", async () => {
    const { owner } = await setup(10);
    await claim(hub!, cloud!, owner);
    await drained(hub!);
    // A poison row (a device id the cloud's schema refuses) between good ones.
    hub!.hub.db.sqlite.prepare("INSERT INTO sync_outbox (kind, ref, ts, payload, bytes) VALUES ('relay', 'bad id with spaces', ?, ?, 120)").run(Date.now(), JSON.stringify({ relay_state: true, source: null }));
    await hub!.pair("after-poison", { name: "After the poison row" });
    await eventually(async () => (await cloud!.api("/devices/after-poison", { token: owner.token })).status, (s) => s === 200, "row after the poison delivered", 15_000);
    const dead = hub!.hub.db.sqlite.prepare("SELECT kind, ref, reason FROM sync_dead_letters").all() as { kind: string; ref: string; reason: string }[];
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ kind: "relay", ref: "bad id with spaces" });
    expect(dead[0]!.reason).toMatch(/device_id/);
    await eventually(async () => hub!.hub.sync.status().outbox, (o) => o.depth === 0 && o.dead_lettered === 1, "outbox drained around the dead letter");
    expect(await (await hub!.api("/metrics")).text()).toContain("hub_sync_dead_lettered_total 1");
  });

  it("F7: a poison row buried in a batch of 3,000 rollups and relay changes is dead-lettered alone, from the cloud's rejected[]; an endpoint answering 404 meanwhile dead-letters nothing and shows endpoint_refused", async () => {
    const { owner, from } = await setup(10);
    const { hubId } = await claim(hub!, cloud!, owner);
    await drained(hub!);
    const p = proxy!;
    const relaysBefore = await cloudStored(cloud!, "relay");

    // A wrong URL or a proxy in the way: every sync request answers 404.
    await hub!.pair("bulk-1");
    p.fault = { kind: "status", status: 404, times: 1e9 };
    let mark = p.syncRequests.length;
    const bulk = queueBulk(hub!, "bulk-1", { rollups: 2700, relayEvery: 9, poison: true, fromMs: from - 3 * 86_400_000 });
    const queued = hub!.hub.sync.status().outbox.depth;
    expect(queued).toBeGreaterThanOrEqual(3000);
    // Read between two attempts (the proxy logs a request before the hub has its answer; a retry shows "sending").
    const st = await eventually(async () => hub!.hub.sync.status(), (s) => p.syncRequests.length - mark >= 3 && s.uplink.state === "endpoint_refused", "three 404s, paused between attempts", 15_000);
    expect(st.uplink).toMatchObject({ state: "endpoint_refused", acked_seq: expect.any(Number) });
    expect(st.uplink.last_error).toMatch(/refused the sync request \(HTTP 404\); nothing dead-lettered/);
    expect(st.outbox).toMatchObject({ depth: queued, dead_lettered: 0 });
    expect(deadLetters(hub!)).toEqual([]);
    expect(p.syncRequests.slice(mark).every((r) => r.outcome === "status 404")).toBe(true);
    const health = await eventually(async () => (await hub!.api("/health")).json(), (h) => h.components.sync.uplink !== "sending", "/health between two attempts", 15_000);
    expect(health.components.sync).toMatchObject({ status: "degraded", uplink: "endpoint_refused", dead_lettered: 0, queue_depth: queued });
    // It backs off (full jitter, capped at 2 s here) instead of hammering: far fewer requests than 0-delay retries.
    const metrics = await (await hub!.api("/metrics")).text();
    expect(metrics).toMatch(/hub_sync_batches_total\{outcome="http_404"\} \d+/);
    expect(metrics).toContain("hub_sync_dead_lettered_total 0");

    // The endpoint is fixed: one batch holds all of it; the cloud's 422 names the poison row, which alone is
    // dead-lettered, and the rest goes straight back up — no bisecting.
    p.fault = { kind: "none" };
    mark = p.syncRequests.length;
    await eventually(async () => hub!.hub.sync.status().outbox, (o) => o.depth === 0 && o.dead_lettered === 1, "drained around the poison row", 20_000);
    expect(deadLetters(hub!)).toEqual([{ seq: bulk.poisonSeq, kind: "relay", ref: "bad id with spaces", reason: expect.stringMatching(/device_id/) }]);
    expect(p.syncRequests.length - mark, "the refused batch and its resend").toBeLessThanOrEqual(3);
    expect(await (await hub!.api("/metrics")).text()).toContain('hub_sync_batches_total{outcome="http_422"} 1');
    const diff = sameRollups(hubRollups(hub!.hub.db.sqlite, "1m"), await cloudRollups(influx.url, cloud!.influxPrefix, hubId, "1m"));
    expect(diff).toEqual({ missing: [], extra: [], different: [] });
    expect((await cloudStored(cloud!, "relay")) - relaysBefore).toBe(bulk.relays);
    const fridge = await (await cloud!.api("/devices/fridge-1", { token: owner.token })).json();
    expect(fridge.relay_state).toBe(bulk.lastRelay);
  });

  it("F7 behind a proxy: a 413 halves the batch (full batches again an hour later); a blanket 400 that names no row dead-letters nothing; a WAF that 400s one row is bisected down to that row, which alone is dead-lettered once a known-good row goes through and it is refused again; a refusal that stops in between dead-letters nothing", async () => {
    let shift = 0; // the hub's clock, moved an hour on at the end
    const { owner, from } = await setup(10, {}, { clock: { now: () => Date.now() + shift } });
    const { hubId } = await claim(hub!, cloud!, owner);
    await drained(hub!);
    const p = proxy!;

    // 413 from a proxy with a small body limit: the batch is halved (twice here), nothing is dead-lettered.
    await hub!.pair("bulk-1");
    const mark = p.syncRequests.length;
    let firstBatchRows = 0;
    let refused413 = 0;
    p.fault = {
      kind: "hook",
      onSync: async (body) => {
        if (refused413 >= 2) return "forward";
        const rows = (JSON.parse(gunzipSync(body).toString()) as { rows: unknown[] }).rows.length;
        if (refused413++ === 0) firstBatchRows = rows;
        return { status: 413 };
      },
    };
    queueBulk(hub!, "bulk-1", { rollups: 800, relayEvery: 50, fromMs: from - 3 * 86_400_000 });
    await eventually(async () => hub!.hub.sync.status().outbox.depth, (d) => d === 0, "drained after two 413s", 15_000);
    expect(p.syncRequests.slice(mark, mark + 3).map((r) => r.outcome)).toEqual(["status 413", "status 413", "forward"]);
    expect(hub!.hub.sync.status().outbox.dead_lettered).toBe(0);
    expect(await (await hub!.api("/metrics")).text()).toContain('hub_sync_batches_total{outcome="http_413"} 2');

    // Every request refused with a bare 400: bisecting reaches one row, the probe is refused too → pause.
    await hub!.pair("bulk-2");
    p.fault = { kind: "status", status: 400, times: 1e9 };
    queueBulk(hub!, "bulk-2", { rollups: 600, relayEvery: 50, fromMs: from - 2 * 86_400_000 });
    const queued = hub!.hub.sync.status().outbox.depth;
    await eventually(async () => hub!.hub.sync.status().uplink, (u) => u.state === "endpoint_refused", "paused after bisecting", 15_000);
    expect(hub!.hub.sync.status().uplink.last_error).toMatch(/refuses every batch \(HTTP 400/);
    expect(hub!.hub.sync.status().outbox).toMatchObject({ depth: queued, dead_lettered: 0 });
    expect(await (await hub!.api("/metrics")).text()).toContain('hub_sync_batches_total{outcome="probe_refused"}');

    // A WAF that blocks any batch carrying "<script>" (a device renamed so on the hub), with an HTML 400. The hub's
    // first device, whose record would otherwise be the probe: the probe is another device's record.
    const token = await hub!.owner();
    expect((await hub!.api("/devices/fridge-1", { method: "PATCH", token, body: { name: "<script>alert(1)</script>" } })).status).toBe(200);
    await hub!.pair("bulk-3");
    queueBulk(hub!, "bulk-3", { rollups: 300, relayEvery: 50, fromMs: from - 86_400_000 });
    const renameSeq = (hub!.hub.db.sqlite.prepare("SELECT seq FROM sync_outbox WHERE kind = 'device' AND ref = 'fridge-1'").get() as { seq: number }).seq;
    p.fault = { kind: "hook", onSync: async (body) => (gunzipSync(body).toString().includes("<script>") ? { status: 400 } : "forward") };
    await eventually(async () => hub!.hub.sync.status().outbox, (o) => o.depth === 0, "drained around the blocked row", 20_000);
    expect(deadLetters(hub!)).toEqual([{ seq: renameSeq, kind: "device", ref: "fridge-1", reason: "HTTP 400" }]);
    expect(await (await hub!.api("/metrics")).text()).toContain('hub_sync_batches_total{outcome="probe_accepted"} 1');

    // A refusal that ends between the lone row and the probe (a proxy that stops blocking) dead-letters nothing: the
    // row is sent alone once more after the known-good row went through, and goes through too.
    expect((await hub!.api("/devices/kettle-1", { method: "PATCH", token, body: { name: "<script>again</script>" } })).status).toBe(200);
    await hub!.pair("bulk-4");
    queueBulk(hub!, "bulk-4", { rollups: 300, relayEvery: 50, fromMs: from - 86_400_000 / 2 });
    let alone = 0;
    p.fault = {
      kind: "hook",
      onSync: async (body) => {
        const rows = (JSON.parse(gunzipSync(body).toString()) as { rows: unknown[] }).rows;
        if (!JSON.stringify(rows).includes("<script>again")) return "forward";
        return rows.length > 1 || alone++ === 0 ? { status: 400 } : "forward";
      },
    };
    await eventually(async () => hub!.hub.sync.status().outbox, (o) => o.depth === 0, "drained after a refusal that stopped", 20_000);
    expect(alone, "the lone row was sent twice: refused, then accepted").toBe(2);
    expect(deadLetters(hub!)).toEqual([{ seq: renameSeq, kind: "device", ref: "fridge-1", reason: "HTTP 400" }]);
    expect(await (await hub!.api("/metrics")).text()).toContain('hub_sync_batches_total{outcome="probe_accepted"} 2');
    const kettle = await (await cloud!.api("/devices/kettle-1", { token: owner.token })).json();
    expect(kettle.name).toBe("<script>again</script>");

    // Batches stay at most half the refused size while the 413 is recent, and grow back to full size an hour later.
    const capped = Math.ceil(Math.ceil(firstBatchRows / 2) / 2);
    expect(capped).toBeGreaterThan(100);
    const sizes: number[] = [];
    p.fault = { kind: "hook", onSync: async (body) => (sizes.push((JSON.parse(gunzipSync(body).toString()) as { rows: unknown[] }).rows.length), "forward") };
    await hub!.pair("bulk-5");
    queueBulk(hub!, "bulk-5", { rollups: 1000, relayEvery: 1000, fromMs: from - 86_400_000 / 4 });
    await eventually(async () => hub!.hub.sync.status().outbox.depth, (d) => d === 0, "drained at the lowered size", 20_000);
    expect(Math.max(...sizes), "while the 413 is recent").toBeLessThanOrEqual(capped);
    shift = 3_600_000 + 1000;
    sizes.length = 0;
    await hub!.pair("bulk-6");
    queueBulk(hub!, "bulk-6", { rollups: 3000, relayEvery: 1000, fromMs: from - 86_400_000 / 8 });
    await eventually(async () => hub!.hub.sync.status().outbox.depth, (d) => d === 0, "drained after an hour", 20_000);
    expect(Math.max(...sizes), "an hour after the last 413").toBeGreaterThan(capped);
    const diff = sameRollups(hubRollups(hub!.hub.db.sqlite, "1m"), await cloudRollups(influx.url, cloud!.influxPrefix, hubId, "1m"));
    expect(diff).toEqual({ missing: [], extra: [], different: [] });
  });
});
