// The sync outbox on the real hub (real SQLite, triggers, the writer thread), with the cloud unreachable:
// what is queued and in which order, what the bounds drop (only rollups, oldest 1-minute first, counted
// where the user can see it), and that the hub's own API goes on working without the cloud (F3's local half).
import { afterEach, describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { outboxRowBytes } from "../../../hub/sync/outbox.js";
import { openHubDb } from "../../../hub/db/open-db.js";
import { createLogger } from "../../../shared/logger.js";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, telemetry, eventually } from "../../helpers/mqtt.js";

const MIN = 60_000;
const DAY = 86_400_000;

/** A loopback port nothing listens on: the cloud is down. */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface OutRow {
  seq: number;
  kind: string;
  ref: string;
  ts: number;
}

describe("sync outbox (issue 6 §1)", () => {
  let t: TestHub | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  const put1m = (): import("better-sqlite3").Statement =>
    t!.hub.db.sqlite.prepare(
      "INSERT INTO rollup_1m (bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms) VALUES (?, ?, 60, 600, 60, 10, 10, 138000, 60, 2600, 60, 0.1, 60000)",
    );
  const rows = (): OutRow[] => t!.hub.db.sqlite.prepare("SELECT seq, kind, ref, ts FROM sync_outbox ORDER BY seq").all() as OutRow[];

  it("stays off without HUB_CLOUD_URL: nothing is queued and /cloud says disabled", async () => {
    t = await startTestHub();
    const token = await t.owner();
    await t.pair("quiet-1");
    expect(rows()).toEqual([]);
    const res = await t.api("/cloud", { token });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ enabled: false, registered: false, hub_id: null, outbox: { depth: 0 } });
    expect((await (await t.api("/health")).json()).components.sync).toBeUndefined();
  });

  it("queues devices, renames, removals, schedules, alerts and relay changes in order, with monotonic sequences", async () => {
    t = await startTestHub({ env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000" } });
    const token = await t.owner();
    const code = await t.pair("kettle-1", { name: "Kettle" });
    await t.pair("lamp-1", { name: "Lamp" });
    expect(rows().map((r) => [r.kind, r.ref])).toEqual([
      ["device", "kettle-1"],
      ["device", "lamp-1"],
    ]);
    const v0 = (t.hub.db.sqlite.prepare("SELECT name_version FROM devices WHERE device_id = 'kettle-1'").get() as { name_version: number }).name_version;
    expect(v0).toBeGreaterThan(0);

    expect((await t.api("/devices/kettle-1", { method: "PATCH", token, body: { name: "Big kettle" } })).status).toBe(200);
    const v1 = (t.hub.db.sqlite.prepare("SELECT name_version FROM devices WHERE device_id = 'kettle-1'").get() as { name_version: number }).name_version;
    expect(v1).toBeGreaterThan(v0);

    const sched = await (await t.api("/devices/kettle-1/schedules", { method: "POST", token, body: { type: "weekly", days: [1, 2, 3], at: "06:30", action: "on" } })).json();
    expect((await t.api(`/schedules/${sched.id}`, { method: "DELETE", token })).status).toBe(204);
    expect((await t.api("/devices/lamp-1", { method: "DELETE", token })).status).toBe(204);

    // A relay change reported by the plug goes through the bus and the group commit.
    const plug = await connectNativePlug(t.mqttUrl, "kettle-1", code);
    await plug.publishAsync("smartplug/kettle-1/telemetry", telemetry({ power: 5, relay: true }), { qos: 1 });
    await eventually(() => rows(), (r) => r.some((x) => x.kind === "relay"), "relay row queued");
    await plug.endAsync();

    const all = rows();
    expect(all.map((r) => [r.kind, r.ref])).toEqual([
      ["device", "kettle-1"],
      ["device", "lamp-1"],
      ["device", "kettle-1"],
      ["schedule", sched.id],
      ["schedule", sched.id],
      ["device", "lamp-1"],
      ["relay", "kettle-1"],
    ]);
    for (let i = 1; i < all.length; i++) expect(all[i]!.seq).toBeGreaterThan(all[i - 1]!.seq);

    // What would go up: the current content, a tombstone for what is gone.
    const wire = all.map((r) => t!.hub.sync.outbox.materialize({ ...r, payload: (t!.hub.db.sqlite.prepare("SELECT payload FROM sync_outbox WHERE seq = ?").get(r.seq) as { payload: string | null }).payload, bytes: 0 }));
    expect(wire[2]).toMatchObject({ kind: "device", device_id: "kettle-1", deleted: false, name: "Big kettle", family: "native", channel: 0, version: v1 });
    expect(wire[3]).toMatchObject({ kind: "schedule", schedule_id: sched.id, deleted: true, rule: null });
    expect(wire[5]).toMatchObject({ kind: "device", device_id: "lamp-1", deleted: true, name: null });
    expect(wire[6]).toMatchObject({ kind: "relay", device_id: "kettle-1", relay_state: true });

    // The local API works with the cloud down; the cloud problem shows as degraded sync, not a dead hub.
    const st = await (await t.api("/cloud", { token })).json();
    expect(st).toMatchObject({ enabled: true, registered: false, claimed: false, outbox: { depth: 7, dead_lettered: 0 } });
    expect((await t.api("/devices/kettle-1", { token })).status).toBe(200);
  });

  it("reads a batch as JSON in one statement exactly as row-by-row materializing would: rollups of every level, a purged rollup, devices, schedules, relay changes", async () => {
    t = await startTestHub({ env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000", HUB_ROLLUP_INTERVAL_MS: "3600000" } });
    const token = await t.owner();
    const code = await t.pair("mix-1");
    await t.pair("mix-2");
    const idx = (id: string) => (t!.hub.db.sqlite.prepare("SELECT idx FROM devices WHERE device_id = ?").get(id) as { idx: number }).idx;
    const base = Math.floor(Date.now() / DAY) * DAY - DAY;
    const cols = "(bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms)";
    for (const [table, bucket, device, min] of [
      ["rollup_1m", base, idx("mix-1"), 10],
      ["rollup_1m", base + MIN, idx("mix-2"), null],
      ["rollup_1h", base, idx("mix-1"), 7],
      ["rollup_1d", base, idx("mix-2"), 3],
      ["rollup_1m", base + 2 * MIN, idx("mix-1"), 12],
    ] as const) {
      // Energy as a float sum leaves it (2/3 Wh): sent to the µWh.
      t.hub.db.sqlite.prepare(`INSERT INTO ${table} ${cols} VALUES (?, ?, 6, 617, 6, ?, ?, 13801, 6, 2613, 6, ?, 45000)`).run(bucket, device, min, min === null ? null : min + 100, 2 / 3);
    }
    // A rollup that retention purged before it was sent: it goes as nothing, and is acked with its batch.
    t.hub.db.sqlite.prepare("DELETE FROM rollup_1m WHERE bucket = ?").run(base + 2 * MIN);
    await t.api("/devices/mix-2/schedules", { method: "POST", token, body: { type: "weekly", days: [1], at: "07:00", action: "on" } });
    const plug = await connectNativePlug(t.mqttUrl, "mix-1", code);
    await plug.publishAsync("smartplug/mix-1/telemetry", telemetry({ power: 5, relay: true }), { qos: 1 });
    await eventually(() => rows(), (r) => r.some((x) => x.kind === "relay"), "relay row queued");
    await plug.endAsync();

    const outbox = t.hub.sync.outbox;
    const oneByOne = outbox.head(0, 100).map((row) => ({ row, wire: outbox.materialize(row) }));
    expect(oneByOne.map((x) => x.row.kind)).toEqual(["device", "device", "rollup_1m", "rollup_1m", "rollup_1h", "rollup_1d", "rollup_1m", "schedule", "relay"]);
    expect(oneByOne[6]!.wire).toBeNull();
    expect(oneByOne[3]!.wire).toMatchObject({ kind: "rollup", point: { device_id: "mix-2", level: "1m", power_min: null, power_max: null } });
    expect(oneByOne[2]!.wire).toEqual({
      seq: oneByOne[2]!.row.seq,
      kind: "rollup",
      point: { device_id: "mix-1", level: "1m", ts: base, samples: 6, power_sum: 61.7, power_n: 6, power_min: 1, power_max: 11, voltage_sum: 1380.1, voltage_n: 6, current_sum: 2.613, current_n: 6, energy_wh: 0.666667, on_ms: 45000 },
    });
    const parsed = (rows: { row: unknown; json: string | null }[]) => rows.map(({ row, json }) => ({ row, wire: json === null ? null : (JSON.parse(json) as unknown) }));
    expect(parsed(outbox.headWire(0, 100))).toEqual(oneByOne);
    // Paging from the middle and with a small limit reads the same rows.
    expect(parsed(outbox.headWire(oneByOne[1]!.row.seq, 3))).toEqual(oneByOne.slice(2, 5));
  });

  it("over its byte budget drops the oldest 1-minute rollups first, never relay changes, schedules, devices or alerts; drops are counted in /health, /metrics and /cloud, and still are after a restart", async () => {
    let now = Date.parse("2026-06-01T12:00:00Z");
    const dataDir = mkdtempSync(join(tmpdir(), "hub-outbox-"));
    t = await startTestHub({
      dataDir,
      env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000", HUB_OUTBOX_MAX_MB: "1", HUB_ROLLUP_INTERVAL_MS: "3600000" },
      hubOptions: { clock: { now: () => now } },
    });
    const token = await t.owner();
    await t.pair("fridge-1");
    await t.pair("fridge-2");
    await t.pair("fridge-3");
    const idx = (id: string) => (t!.hub.db.sqlite.prepare("SELECT idx FROM devices WHERE device_id = ?").get(id) as { idx: number }).idx;
    const dev = idx("fridge-1");
    const devs = [dev, idx("fridge-2"), idx("fridge-3")];
    t.hub.alerts.raise({ deviceId: "fridge-1", kind: "power_above", message: "above 2000 W" });
    await t.api("/devices/fridge-1/schedules", { method: "POST", token, body: { type: "window", from: "18:00", to: "23:30" } });
    // Three plugs × 10,000 minutes (within the 7-day age limit): 30,000 one-minute rollups, ≈ 1.9 MB on disk in
    // the outbox, and an hourly one, via the triggers.
    const M = 10_000;
    const N = M * devs.length;
    const start = now - M * MIN;
    const ins = put1m();
    t.hub.db.sqlite.transaction(() => {
      for (let i = 0; i < M; i++) for (const d of devs) ins.run(start + i * MIN, d);
    })();
    t.hub.db.sqlite
      .prepare("INSERT INTO rollup_1h (bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms) VALUES (?, ?, 3600, 36000, 3600, 10, 10, 0, 0, 0, 0, 1, 0)")
      .run(now - 3_600_000, dev);
    const before = rows();
    const kept = before.filter((r) => r.kind !== "rollup_1m");
    expect(kept.map((r) => r.kind)).toEqual(["device", "device", "device", "alert", "schedule", "rollup_1h"]);
    expect(t.hub.sync.outbox.stats().bytes).toBeGreaterThan(1024 * 1024);

    await t.hub.sync.outbox.enforceLimits();
    const after = rows();
    const minutes = after.filter((r) => r.kind === "rollup_1m");
    // Within budget now, newest minutes kept, oldest gone; everything else untouched.
    const { bytes } = t.hub.sync.outbox.stats();
    expect(bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(bytes).toBeGreaterThan(1024 * 1024 - 100);
    expect(minutes.length).toBeGreaterThan(15_000);
    expect(minutes.length).toBeLessThan(N);
    // Oldest first: what is left is the newest stretch, in order.
    expect(minutes[minutes.length - 1]!.ts).toBe(start + (M - 1) * MIN);
    expect(minutes.map((r) => r.seq)).toEqual(before.filter((r) => r.kind === "rollup_1m").slice(N - minutes.length).map((r) => r.seq));
    expect(after.filter((r) => r.kind !== "rollup_1m")).toEqual(kept);
    const dropped = N - minutes.length;

    const shown = async () => ({
      cloud: (await (await t!.api("/cloud", { token })).json()).outbox,
      health: (await (await t!.api("/health")).json()).components.sync,
      metrics: await (await t!.api("/metrics")).text(),
    });
    let s = await shown();
    expect(s.cloud).toMatchObject({ dropped: { full_rollup_1m: dropped }, last_dropped_at: now, depth: after.length });
    expect(s.health).toMatchObject({ status: "degraded", dropped: { full_rollup_1m: dropped }, queue_depth: after.length });
    expect(s.metrics).toContain(`hub_outbox_dropped_total{reason="full_rollup_1m"} ${dropped}`);

    // Seven days later the remaining minutes are past the age limit; the rest still waits.
    now += 7 * DAY + M * MIN;
    await t.hub.sync.outbox.enforceLimits();
    expect(rows().map((r) => r.kind)).toEqual(["device", "device", "device", "alert", "schedule", "rollup_1h"]);
    expect((await (await t.api("/cloud", { token })).json()).outbox.dropped).toEqual({ full_rollup_1m: dropped, max_age: minutes.length });

    // Issue 6 §1: the counts are kept in the database, so a restart does not hide them.
    await t.restart();
    s = await shown();
    expect(s.cloud.dropped).toEqual({ full_rollup_1m: dropped, max_age: minutes.length });
    expect(s.health).toMatchObject({ status: "degraded", dropped: { full_rollup_1m: dropped, max_age: minutes.length } });
    expect(s.metrics).toContain(`hub_outbox_dropped_total{reason="full_rollup_1m"} ${dropped}`);
    expect(s.metrics).toContain(`hub_outbox_dropped_total{reason="max_age"} ${minutes.length}`);
    // A day after the latest drop the counts stay, and sync is no longer degraded by them.
    now += DAY + MIN;
    expect((await (await t.api("/health")).json()).components.sync).toMatchObject({ status: "healthy", dropped: { full_rollup_1m: dropped, max_age: minutes.length } });
  });

  it("counts what rows cost on disk: 50 plugs × 7 days of 1-minute rollups fit the default 64 MiB budget, and the count matches dbstat within 10 %", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hub-outbox-7d-"));
    const PLUGS = 50;
    const MINUTES = 7 * 1440 - 20; // inside the 7-day age limit when the hub starts
    const end = Math.floor(Date.now() / MIN) * MIN - 5 * MIN;
    const db = openHubDb(dataDir, createLogger({ app: "seed", level: "silent" }));
    try {
      const add = db.sqlite.prepare("INSERT INTO devices (device_id, name, family, mqtt_user, topic, channel, secret_hash, created_at, state_as_of) VALUES (?, ?, 'native', ?, ?, 0, 'scrypt$unusable', 0, 0)");
      const put = db.sqlite.prepare(
        "INSERT INTO rollup_1m (bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms) VALUES (?, ?, 6, 600, 6, 90, 110, 1380, 6, 2.6, 6, 0.1, 60000)",
      );
      db.sqlite.transaction(() => {
        const idx: number[] = [];
        for (let p = 0; p < PLUGS; p++) idx.push(Number(add.run(`plug-${p}`, `Plug ${p}`, `plug-${p}`, `smartplug/plug-${p}`).lastInsertRowid));
        for (let m = 0; m < MINUTES; m++) for (const d of idx) put.run(end - (MINUTES - m) * MIN, d);
      })();
    } finally {
      db.close();
    }
    t = await startTestHub({ dataDir, env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000", HUB_ROLLUP_INTERVAL_MS: "3600000" } });
    const st = t.hub.sync.outbox.stats();
    expect(st.depth).toBe(PLUGS + PLUGS * MINUTES);
    const onDisk = (t.hub.db.sqlite.prepare("SELECT sum(pgsize) AS b FROM dbstat WHERE name IN ('sync_outbox', 'sync_outbox_kind')").get() as { b: number }).b;
    console.log(`[outbox] ${st.depth} rows: counted ${(st.bytes / 1048576).toFixed(1)} MiB (${(st.bytes / st.depth).toFixed(1)} B/row), dbstat ${(onDisk / 1048576).toFixed(1)} MiB (${(onDisk / st.depth).toFixed(1)} B/row)`);
    expect(st.bytes / onDisk).toBeGreaterThan(0.9);
    expect(st.bytes / onDisk).toBeLessThan(1.1);
    expect(st.bytes).toBeLessThan(64 * 1024 * 1024);
    await t.hub.sync.outbox.enforceLimits();
    expect(t.hub.sync.outbox.stats()).toMatchObject({ depth: st.depth, dropped: {} });
  }, 120_000);

  it("enforces its limits within seconds when the outbox grows by a sixteenth of its budget, not only on the minute timer", async () => {
    const now = Date.parse("2026-06-01T12:00:00Z"); // frozen: the minute timer can never be what fires
    t = await startTestHub({
      env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000", HUB_OUTBOX_MAX_MB: "1", HUB_ROLLUP_INTERVAL_MS: "3600000" },
      hubOptions: { clock: { now: () => now } },
    });
    const devs: number[] = [];
    for (const id of ["fridge-1", "fridge-2", "fridge-3"]) {
      await t.pair(id);
      devs.push((t.hub.db.sqlite.prepare("SELECT idx FROM devices WHERE device_id = ?").get(id) as { idx: number }).idx);
    }
    await t.hub.sync.outbox.enforceLimits();
    const ins = put1m();
    t.hub.db.sqlite.transaction(() => {
      for (let i = 0; i < 8000; i++) for (const d of devs) ins.run(now - (8000 - i) * MIN, d);
    })();
    expect(t.hub.sync.outbox.stats().bytes).toBeGreaterThan(1024 * 1024);
    const o = await eventually(async () => t!.hub.sync.outbox.stats(), (st) => st.bytes <= 1024 * 1024, "limits enforced after the burst", 12_000);
    expect(o.dropped.full_rollup_1m).toBeGreaterThan(0);
  });

  it("a /metrics scrape alone (no /health before it) shows the outbox, link, last success, drops and dead letters as they are now", async () => {
    t = await startTestHub({ env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000", HUB_ROLLUP_INTERVAL_MS: "3600000" } });
    const scrape = async () => {
      const text = await (await t!.api("/metrics")).text();
      const get = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
      return { text, get };
    };
    let m = await scrape();
    expect([m.get("hub_outbox_rows"), m.get("hub_outbox_bytes"), m.get("hub_link_connected"), m.get("hub_sync_last_success_timestamp_seconds"), m.get("hub_sync_dead_lettered_total")]).toEqual([0, 0, 0, 0, 0]);

    await t.pair("kettle-1");
    await t.pair("lamp-1");
    const sqlite = t.hub.db.sqlite;
    const queued = sqlite.prepare("SELECT kind, ref, payload FROM sync_outbox").all() as { kind: string; ref: string; payload: string | null }[];
    expect(queued).toHaveLength(2);
    m = await scrape();
    expect(m.get("hub_outbox_rows")).toBe(2);
    expect(m.get("hub_outbox_bytes")).toBe(queued.reduce((n, r) => n + outboxRowBytes(r.kind, r.ref, r.payload), 0));
    expect(m.get("hub_outbox_oldest_age_seconds")).toBeGreaterThanOrEqual(0);

    // A dead letter and a drop, made without any /health call: the next scrape has them.
    const row = t.hub.sync.outbox.head(0, 1)[0]!;
    await t.hub.sync.outbox.deadLetter([{ row, wire: null, reason: "test" }]);
    sqlite.prepare("INSERT INTO sync_drops (reason, n, last_at) VALUES ('max_age', 7, ?)").run(Date.now());
    m = await scrape();
    expect(m.get("hub_outbox_rows")).toBe(1);
    expect(m.get("hub_sync_dead_lettered_total")).toBe(1);
    expect(m.text).toContain('hub_outbox_dropped_total{reason="max_age"} 7');
  });
});
