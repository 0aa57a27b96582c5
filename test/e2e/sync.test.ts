// Hub ↔ cloud end to end (issue 6): the real hub (SQLite, aedes, its uplink and link) in this process, the real
// cloud (PGlite, express, ws) and a real InfluxDB, with a fault-injecting HTTP proxy between hub and cloud
// for the rows of RELIABILITY F4–F8. Every check is what a user would see: the cloud's API and InfluxDB
// holding exactly the hub's rollups, the hub's /cloud, /health and /metrics.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
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
  async function setup(minutes: number, env: Record<string, string> = {}) {
    cloud = await startTestCloud({ influxUrl: influx.url });
    const c = cloud;
    proxy = await CloudFaultProxy.start(() => c.cloud.httpPort);
    const dataDir = mkdtempSync(join(tmpdir(), "hub-e2e-"));
    const from = Math.floor(Date.now() / MIN) * MIN - (minutes + 3) * MIN;
    seedHistory(dataDir, ["fridge-1", "kettle-1"], from, minutes);
    hub = await startTestHub({ dataDir, env: { HUB_CLOUD_URL: proxy.url, ...FAST_SYNC, ...env } });
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

    const health = await (await hub!.api("/health")).json();
    expect(health.components.sync).toMatchObject({ status: "healthy", hub_id: hubId, queue_depth: 0, dead_lettered: 0 });
    const metrics = await (await hub!.api("/metrics")).text();
    expect(metrics).toMatch(/hub_sync_batches_total\{outcome="acked"\} [1-9]/);
    expect((await hub!.api("/cloud", { token })).status).toBe(200);
  });

  it("F5 cloud 503s, F6 429 + Retry-After, F8 answer lost after commit, F4 hang: backs off, waits, retries once in flight, and the cloud ends with each rollup exactly once", async () => {
    const { owner } = await setup(30);
    const p = proxy!;
    const { hubId } = await claim(hub!, cloud!, owner);
    await drained(hub!);
    const rename = async (name: string) => {
      const token = await hub!.owner();
      expect((await hub!.api("/devices/fridge-1", { method: "PATCH", token, body: { name } })).status).toBe(200);
    };

    // F5: three 503s, then through. Full-jitter backoff spaces the attempts out.
    p.fault = { kind: "status", status: 503, times: 3 };
    let mark = p.syncRequests.length;
    await rename("Fridge (F5)");
    await eventually(async () => (await cloud!.api("/devices/fridge-1", { token: owner.token })).json(), (d) => d.name === "Fridge (F5)", "rename after 503s", 15_000);
    const f5 = p.syncRequests.slice(mark);
    expect(f5.slice(0, 3).map((r) => r.outcome)).toEqual(["status 503", "status 503", "status 503"]);
    expect(f5[3]!.outcome).toBe("forwarded");
    expect(await (await hub!.api("/metrics")).text()).toContain('hub_sync_batches_total{outcome="http_503"} 3');

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

    // F4: the cloud hangs; the hub gives up after its request timeout and tries again, one request at a time.
    p.fault = { kind: "hang" };
    mark = p.syncRequests.length;
    await rename("Fridge (F4)");
    await eventually(async () => p.syncRequests.length, (n) => n >= mark + 2, "retried after the timeout", 15_000);
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
});
