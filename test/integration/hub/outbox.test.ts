// The sync outbox on the real hub (real SQLite, triggers, the writer thread), with the cloud unreachable:
// what is queued and in which order, what the bounds drop (only rollups, oldest 1-minute first, counted
// where the user can see it), and that the hub's own API goes on working without the cloud (F3's local half).
import { afterEach, describe, expect, it } from "vitest";
import { createServer } from "node:net";
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

  it("over its byte budget drops the oldest 1-minute rollups first, never relay changes, schedules, devices or alerts; drops are counted in /health, /metrics and /cloud", async () => {
    let now = Date.parse("2026-06-01T12:00:00Z");
    t = await startTestHub({
      env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000", HUB_OUTBOX_MAX_MB: "1", HUB_ROLLUP_INTERVAL_MS: "3600000" },
      hubOptions: { clock: { now: () => now } },
    });
    const token = await t.owner();
    await t.pair("fridge-1");
    const dev = (t.hub.db.sqlite.prepare("SELECT idx FROM devices WHERE device_id = 'fridge-1'").get() as { idx: number }).idx;
    t.hub.alerts.raise({ deviceId: "fridge-1", kind: "power_above", message: "above 2000 W" });
    await t.api("/devices/fridge-1/schedules", { method: "POST", token, body: { type: "window", from: "18:00", to: "23:30" } });
    // 6,000 one-minute rollups (~1.6 MB in the outbox's accounting) and a handful of hourly ones, via the triggers.
    const put1m = t.hub.db.sqlite.prepare(
      "INSERT INTO rollup_1m (bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms) VALUES (?, ?, 60, 600, 60, 10, 10, 138000, 60, 2600, 60, 0.1, 60000)",
    );
    const start = now - 6000 * MIN;
    t.hub.db.sqlite.transaction(() => {
      for (let i = 0; i < 6000; i++) put1m.run(start + i * MIN, dev);
    })();
    t.hub.db.sqlite
      .prepare("INSERT INTO rollup_1h (bucket, device, samples, power_sum, power_n, power_min, power_max, voltage_sum, voltage_n, current_sum, current_n, energy_wh, on_ms) VALUES (?, ?, 3600, 36000, 3600, 10, 10, 0, 0, 0, 0, 1, 0)")
      .run(now - 3_600_000, dev);
    const before = rows();
    const kept = before.filter((r) => r.kind !== "rollup_1m");
    expect(kept.map((r) => r.kind)).toEqual(["device", "alert", "schedule", "rollup_1h"]);

    await t.hub.sync.outbox.enforceLimits();
    const after = rows();
    const minutes = after.filter((r) => r.kind === "rollup_1m");
    // Within budget now, newest minutes kept, oldest gone; everything else untouched.
    expect(t.hub.sync.outbox.stats().bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(minutes.length).toBeGreaterThan(3000);
    expect(minutes.length).toBeLessThan(6000);
    expect(minutes[minutes.length - 1]!.ts).toBe(start + 5999 * MIN);
    expect(minutes[0]!.ts).toBe(start + (6000 - minutes.length) * MIN);
    expect(after.filter((r) => r.kind !== "rollup_1m")).toEqual(kept);
    const dropped = 6000 - minutes.length;

    const cloud = await (await t.api("/cloud", { token })).json();
    expect(cloud.outbox.dropped).toEqual({ full_rollup_1m: dropped });
    const health = await (await t.api("/health")).json();
    expect(health.components.sync).toMatchObject({ status: "degraded", dropped: { full_rollup_1m: dropped }, queue_depth: after.length });
    const metrics = await (await t.api("/metrics")).text();
    expect(metrics).toContain(`hub_outbox_dropped_total{reason="full_rollup_1m"} ${dropped}`);

    // Seven days later the remaining minutes are past the age limit; the rest still waits.
    now += 7 * DAY + 6000 * MIN;
    await t.hub.sync.outbox.enforceLimits();
    expect(rows().map((r) => r.kind)).toEqual(["device", "alert", "schedule", "rollup_1h"]);
    expect((await (await t.api("/cloud", { token })).json()).outbox.dropped).toEqual({ full_rollup_1m: dropped, max_age: minutes.length });
  });
});
