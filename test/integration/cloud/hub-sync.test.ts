// POST /hub/sync (issue 6): the hub's uplink into a real InfluxDB and the metadata database (PGlite and a real
// PostgreSQL). The hub here is a real HTTP client sending gzip SyncBatch bodies as shared/schemas/sync.ts says.
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import { startInflux, type TestInflux } from "../../helpers/influx.js";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";
import { SERVICE_START_MS, hubAuth, startTestCloud, type ApiResponse, type Backend, type TestCloud } from "../../helpers/cloud.js";
import type { RollupPoint } from "../../../shared/schemas/rollups.js";
import { hubs, schedules } from "../../../cloud/db/schema.js";

let influx: TestInflux;
let postgres: TestPostgres;
beforeAll(async () => {
  [influx, postgres] = await Promise.all([startInflux(), startPostgres()]);
}, SERVICE_START_MS);
afterAll(async () => {
  await Promise.all([influx?.close(), postgres?.close()]);
});

type Cred = { hub_id: string; hub_secret: string };

const point = (deviceId: string, ts: number, watts = 100): RollupPoint => ({
  device_id: deviceId,
  level: "1m",
  ts,
  samples: 6,
  power_sum: watts * 6,
  power_n: 6,
  power_min: watts,
  power_max: watts,
  voltage_sum: 230 * 6,
  voltage_n: 6,
  current_sum: (watts / 230) * 6,
  current_n: 6,
  energy_wh: watts / 60,
  on_ms: 60_000,
});

function sync(t: TestCloud, cred: Cred, rows: unknown[], o: { gzip?: boolean; raw?: Buffer } = {}): Promise<ApiResponse> {
  const json = Buffer.from(JSON.stringify({ rows }));
  const gz = o.gzip ?? true;
  return fetch(`${t.url}/hub/sync`, {
    method: "POST",
    headers: { ...hubAuth(cred), "content-type": "application/json", ...(gz ? { "content-encoding": "gzip" } : {}) },
    body: o.raw ?? (gz ? gzipSync(json) : json),
  });
}

async function register(t: TestCloud): Promise<Cred & { claim_code: string }> {
  const reg = await t.api("/hubs/register", { body: { name: "Sync hub", mqtt_host: "hub.local", mqtt_port: 1883 } });
  expect(reg.status).toBe(201);
  return reg.json();
}

/** How many 1m points InfluxDB holds for this hub and device. */
async function countPoints(t: TestCloud, hubId: string, deviceId: string): Promise<number> {
  const q = `SELECT count("samples") FROM "rollup" WHERE "hub" = '${hubId}' AND "device" = '${deviceId}'`;
  const r = await fetch(`${influx.url}/query?${new URLSearchParams({ db: `${t.influxPrefix}_1m`, q })}`);
  const body = (await r.json()) as { results: { series?: { values: [string, number][] }[] }[] };
  return body.results[0]?.series?.[0]?.values[0]?.[1] ?? 0;
}

const deviceRow = (seq: number, deviceId: string, name: string | null, version: number, deleted = false) => ({
  seq,
  kind: "device",
  device_id: deviceId,
  deleted,
  name,
  family: "tasmota",
  channel: 0,
  version,
});

describe.each<Backend>(["pglite", "postgres"])("POST /hub/sync on %s", (backend) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres });
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  it("stores a gzip batch: rollups in InfluxDB, devices, relay, alerts and schedules in the database; acks the highest seq", async () => {
    const ann = await t.user("ann");
    const cred = await t.hub(ann);
    const base = Math.floor(Date.now() / 60_000) * 60_000 - 30 * 60_000;
    const rows = [
      deviceRow(1, "kettle", "Kettle", 1000),
      { seq: 2, kind: "rollup", point: point("kettle", base) },
      { seq: 3, kind: "rollup", point: point("kettle", base + 60_000, 200) },
      { seq: 4, kind: "relay", device_id: "kettle", ts: base + 90_000, relay_state: true, source: "plug" },
      { seq: 5, kind: "alert", alert_id: "a-1", device_id: "kettle", alert_kind: "power_above", message: "above 150 W", started_at: base + 60_000, resolved_at: null, acknowledged_at: null },
      { seq: 6, kind: "schedule", schedule_id: "s-1", device_id: "kettle", deleted: false, rule: { type: "weekly", days: [1, 2], at: "07:00", action: "on" }, version: 1000 },
    ];
    const res = await sync(t, cred, rows);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ acked_seq: 6, stored: 6 });
    expect(await countPoints(t, cred.hub_id, "kettle")).toBe(2);

    const dev = await (await t.api("/devices/kettle", { token: ann.token })).json();
    expect(dev).toEqual({
      device_id: "kettle",
      name: "Kettle",
      family: "tasmota",
      channel: 0,
      status: "offline",
      relay_state: true,
      firmware_version: null,
      last_seen: null,
      power: null,
      energy_kwh: 0,
      created_at: expect.any(String),
    });
    const [hub] = await t.cloud.db.orm.select().from(hubs).where(eq(hubs.id, cred.hub_id));
    expect(hub!.syncedSeq).toBe(6);
    expect(hub!.lastSyncAt).toBeInstanceOf(Date);
    const metrics = await (await t.api("/metrics")).text();
    expect(metrics).toMatch(/cloud_sync_rows_total\{kind="rollup"\} 2/);
    expect(metrics).toMatch(/cloud_sync_rows_total\{kind="schedule"\} 1/);
  });

  it("F8: the same batch twice (response lost, hub retries) stores each rollup once and acks the same seq", async () => {
    const ann = await t.user("ann-f8");
    const cred = await t.hub(ann);
    const base = Math.floor(Date.now() / 60_000) * 60_000 - 20 * 60_000;
    const rows = [deviceRow(10, "f8", "F8 plug", 1), ...[0, 1, 2, 3].map((i) => ({ seq: 11 + i, kind: "rollup", point: point("f8", base + i * 60_000, 50 + i) }))];
    const first = await sync(t, cred, rows);
    expect(await first.json()).toEqual({ acked_seq: 14, stored: 5 });
    const again = await sync(t, cred, rows);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ acked_seq: 14, stored: 0 });
    expect(await countPoints(t, cred.hub_id, "f8")).toBe(4);
    // An uncompressed batch is accepted too, and an older batch acks what is stored.
    const older = await sync(t, cred, rows.slice(0, 2), { gzip: false });
    expect(await older.json()).toEqual({ acked_seq: 14, stored: 0 });
  });

  it("F7: a batch with one invalid row is refused with 422 naming that row, and nothing is written", async () => {
    const ann = await t.user("ann-f7");
    const cred = await t.hub(ann);
    const base = Math.floor(Date.now() / 60_000) * 60_000 - 20 * 60_000;
    const rows = [deviceRow(1, "f7", "F7 plug", 1), { seq: 2, kind: "rollup", point: point("f7", base) }, { seq: 3, kind: "rollup", point: { ...point("f7", base + 60_000), samples: -1 } }, { seq: 4, kind: "relay", device_id: "f7", ts: base, relay_state: true, source: "plug" }];
    const res = await sync(t, cred, rows);
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toEqual({
      type: "https://smartplug.dev/problems/sync-rows-rejected",
      title: "Some rows of the batch are invalid",
      status: 422,
      detail: "1 of 4 rows are invalid; nothing was stored",
      instance: "/hub/sync",
      rejected: [{ seq: 3, index: 2, reason: expect.stringContaining("point.samples") }],
    });
    expect(await countPoints(t, cred.hub_id, "f7")).toBe(0);
    expect((await t.api("/devices/f7", { token: ann.token })).status).toBe(404);
    const [hub] = await t.cloud.db.orm.select().from(hubs).where(eq(hubs.id, cred.hub_id));
    expect(hub!.syncedSeq).toBe(0);
    // Unknown kinds and schedules with a rule the hub could not have made are rejected the same way.
    const bad = await sync(t, cred, [{ seq: 5, kind: "nope" }, { seq: 6, kind: "schedule", schedule_id: "x", device_id: "f7", deleted: false, rule: { type: "weekly" }, version: 1 }]);
    expect(bad.status).toBe(422);
    expect((await bad.json()).rejected.map((r: { seq: number; index: number }) => [r.seq, r.index])).toEqual([
      [5, 0],
      [6, 1],
    ]);
    expect(await (await t.api("/metrics")).text()).toMatch(/cloud_sync_rejected_rows_total [3-9]/);
  });

  it("refuses a bad hub credential with 401 problem+json, a batch over 8 MB inflated with 413, and a non-batch with 422", async () => {
    const ann = await t.user("ann-401");
    const cred = await t.hub(ann);
    const res = await sync(t, { ...cred, hub_secret: "x".repeat(43) }, [deviceRow(1, "x", "X", 1)]);
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toEqual({ type: "https://smartplug.dev/problems/unauthorized", title: "Authentication required", status: 401, detail: "hub credential is invalid", instance: "/hub/sync" });
    const none = await fetch(`${t.url}/hub/sync`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(none.status).toBe(401);

    // 9 MB of JSON compresses to a few KB: the limit counts inflated bytes.
    const huge = gzipSync(Buffer.from(JSON.stringify({ rows: [{ seq: 1, kind: "alert", message: "x".repeat(9 * 1024 * 1024) }] })));
    const big = await sync(t, cred, [], { raw: huge });
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({
      type: "https://smartplug.dev/problems/payload-too-large",
      title: "Body is too large",
      status: 413,
      detail: "a sync batch must be at most 8388608 bytes (8 MB) after inflating; send fewer rows",
      instance: "/hub/sync",
      limit_bytes: 8388608,
    });
    const empty = await sync(t, cred, []);
    expect(empty.status).toBe(422);
    expect((await empty.json()).rejected).toEqual([]);
  });

  it("an unclaimed hub syncs; its devices appear in the owner's GET /devices once claimed", async () => {
    const cred = await register(t);
    const res = await sync(t, cred, [deviceRow(1, "early-1", "Early one", 5), deviceRow(2, "early-2", null, 5)]);
    expect(await res.json()).toEqual({ acked_seq: 2, stored: 2 });
    const cy = await t.user("cy");
    expect(await (await t.api("/devices", { token: cy.token })).json()).toEqual([]);
    expect((await t.api("/hubs/claim", { body: { claim_code: cred.claim_code }, token: cy.token })).status).toBe(200);
    const list = (await (await t.api("/devices", { token: cy.token })).json()) as { device_id: string; name: string; family: string }[];
    expect(list.map((d) => [d.device_id, d.name, d.family])).toEqual([
      ["early-1", "Early one", "tasmota"],
      ["early-2", "early-2", "tasmota"],
    ]);
    // Paired later: appears with the next batch; unpaired: gone.
    await sync(t, cred, [deviceRow(3, "later", "Later", 6), deviceRow(4, "early-2", null, 7, true)]);
    const after = (await (await t.api("/devices", { token: cy.token })).json()) as { device_id: string }[];
    expect(after.map((d) => d.device_id)).toEqual(["early-1", "later"]);
  });

  it("device names: last writer wins by version, in both orders; at a tie the hub's row wins (issue 6 §5 conflict rule)", async () => {
    const ann = await t.user("ann-lww");
    const cred = await t.hub(ann);
    // Newer first, then older: the older one loses.
    await sync(t, cred, [deviceRow(1, "lww-a", "Newer", 200), deviceRow(2, "lww-a", "Older", 100)]);
    expect((await (await t.api("/devices/lww-a", { token: ann.token })).json()).name).toBe("Newer");
    // Older first, then newer: the newer one wins.
    await sync(t, cred, [deviceRow(3, "lww-b", "Older", 100), deviceRow(4, "lww-b", "Newer", 200)]);
    expect((await (await t.api("/devices/lww-b", { token: ann.token })).json()).name).toBe("Newer");
    // Same version: the hub is the authority, its name is taken (the hub keeps its own at a tie too, so both end equal).
    await sync(t, cred, [deviceRow(5, "lww-b", "Tie", 200)]);
    expect((await (await t.api("/devices/lww-b", { token: ann.token })).json()).name).toBe("Tie");

    // A cloud rename is a newer version: a hub edit older than it loses, a later one wins.
    const renamed = await t.api("/devices/lww-a", { method: "PATCH", body: { name: "From the app" }, token: ann.token });
    expect(renamed.status).toBe(200);
    await sync(t, cred, [deviceRow(6, "lww-a", "Stale hub edit", 300)]);
    expect((await (await t.api("/devices/lww-a", { token: ann.token })).json()).name).toBe("From the app");
    await sync(t, cred, [deviceRow(7, "lww-a", "Hub edit after", Date.now() + 60_000)]);
    expect((await (await t.api("/devices/lww-a", { token: ann.token })).json()).name).toBe("Hub edit after");
  });

  it("schedules: last writer wins by version, and a deletion's tombstone is never resurrected by a stale upsert", async () => {
    const ann = await t.user("ann-sched");
    const cred = await t.hub(ann);
    const rule = (at: string) => ({ type: "weekly", days: [1], at, action: "on" });
    const row = (seq: number, version: number, at: string | null, deleted = false) => ({ seq, kind: "schedule", schedule_id: "sch-1", device_id: "sp", deleted, rule: at ? rule(at) : null, version });
    await sync(t, cred, [deviceRow(1, "sp", "Plug", 1), row(2, 100, "07:00"), row(3, 300, "09:00"), row(4, 200, "08:00")]);
    const read = async () => (await t.cloud.db.orm.select().from(schedules).where(and(eq(schedules.hubId, cred.hub_id), eq(schedules.id, "sch-1"))))[0]!;
    expect(await read()).toMatchObject({ version: 300, deleted: false, rule: rule("09:00") });
    await sync(t, cred, [row(5, 400, null, true)]);
    await sync(t, cred, [row(6, 350, "10:00"), row(7, 500, "11:00")]);
    expect(await read()).toMatchObject({ deleted: true, version: 400 });
  });

  it("answers 503 with Retry-After while InfluxDB is down and stores nothing; the retry succeeds", async () => {
    const ann = await t.user("ann-503");
    const cred = await t.hub(ann);
    const base = Math.floor(Date.now() / 60_000) * 60_000 - 20 * 60_000;
    const rows = [deviceRow(1, "d503", "Plug", 1), { seq: 2, kind: "rollup", point: point("d503", base) }];
    await influx.stop();
    try {
      const res = await sync(t, cred, rows);
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("10");
      expect(await res.json()).toEqual({
        type: "https://smartplug.dev/problems/storage-unavailable",
        title: "Storage is unavailable",
        status: 503,
        detail: "the time-series store (InfluxDB) is unavailable; retry the same batch later",
        instance: "/hub/sync",
        retry_after: 10,
      });
      expect((await t.api("/devices/d503", { token: ann.token })).status).toBe(404);
    } finally {
      await influx.start();
    }
    expect(await (await sync(t, cred, rows)).json()).toEqual({ acked_seq: 2, stored: 2 });
    expect(await countPoints(t, cred.hub_id, "d503")).toBe(1);
  });
});
