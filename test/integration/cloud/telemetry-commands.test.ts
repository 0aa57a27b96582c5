// Telemetry through a real InfluxDB (v1 HTTP API), the latest state in the metadata database, commands, and
// InfluxDB going down and coming back; on both metadata backends (PGlite and a real PostgreSQL 15, issue 5 §1).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { startInflux, type TestInflux } from "../../helpers/influx.js";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";
import { SERVICE_START_MS, startTestCloud, type Backend, type TestCloud, type TestUser } from "../../helpers/cloud.js";
import type { RollupPoint } from "../../../shared/schemas/rollups.js";
import { commands } from "../../../cloud/db/schema.js";

let influx: TestInflux;
let postgres: TestPostgres;
beforeAll(async () => {
  [influx, postgres] = await Promise.all([startInflux(), startPostgres()]);
}, SERVICE_START_MS);
afterAll(async () => {
  await Promise.all([influx?.close(), postgres?.close()]);
});

const H = 3_600_000;
const rollup = (deviceId: string, level: RollupPoint["level"], ts: number, watts: number[], energyWh: number): RollupPoint => ({
  device_id: deviceId,
  level,
  ts,
  samples: watts.length,
  power_sum: watts.reduce((a, b) => a + b, 0),
  power_n: watts.length,
  power_min: Math.min(...watts),
  power_max: Math.max(...watts),
  voltage_sum: 230 * watts.length,
  voltage_n: watts.length,
  current_sum: watts.reduce((a, b) => a + b / 230, 0),
  current_n: watts.length,
  energy_wh: energyWh,
  on_ms: watts.length * 10_000,
});

describe.each<Backend>(["pglite", "postgres"])("on %s", (backend) => {
  let t: TestCloud;
  let ann: TestUser;
  let hubId: string;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres });
    ann = await t.user("ann");
    hubId = (await t.hub(ann)).hub_id;
    for (const id of ["t1", "t2", "c1", "down1"]) await t.device(ann, hubId, id);
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  describe("telemetry history from InfluxDB", () => {
    it("creates one database per level with its retention policy at start", async () => {
      const q = async (db: string) => {
        const r = await fetch(`${influx.url}/query?${new URLSearchParams({ q: `SHOW RETENTION POLICIES ON "${db}"` })}`);
        return ((await r.json()) as { results: { series: { values: unknown[][] }[] }[] }).results[0]!.series[0]!.values.map((v) => [v[0], v[1], v[4]]);
      };
      expect(await q(`${t.influxPrefix}_1m`)).toContainEqual(["rollups", "720h0m0s", true]);
      expect(await q(`${t.influxPrefix}_1h`)).toContainEqual(["rollups", "8760h0m0s", true]);
      expect(await q(`${t.influxPrefix}_1d`)).toContainEqual(["rollups", "43800h0m0s", true]);
    });

    it("answers the seed's shape at 1m, re-aggregates 5m exactly, and reads 1h and 1d from their own levels", async () => {
      const base = Math.floor(Date.now() / H) * H - 3 * H;
      const points = [
        rollup("t1", "1m", base, [100, 200], 2),
        rollup("t1", "1m", base + 60_000, [50], 1),
        rollup("t1", "1m", base + 5 * 60_000, [10, 30], 0.5),
        rollup("t1", "1h", base, [100, 200, 50, 10, 30], 3.5),
        rollup("t1", "1d", base - 86_400_000, [40], 24),
        rollup("t2", "1m", base, [999], 9),
      ];
      const res = await t.cloud.rollups.writeRollups(hubId, points);
      expect(res).toEqual({ written: 6, droppedOld: 0 });
      // Redelivery of the same batch overwrites itself: each rollup is held once.
      await t.cloud.rollups.writeRollups(hubId, points);

      const q = new URLSearchParams({ start: new Date(base).toISOString(), end: new Date(base + 10 * 60_000).toISOString(), interval: "1m" });
      const r1 = await t.api(`/devices/t1/telemetry?${q}`, { token: ann.token });
      expect(r1.status).toBe(200);
      expect(await r1.json()).toEqual({
        device_id: "t1",
        start: new Date(base).toISOString(),
        end: new Date(base + 10 * 60_000).toISOString(),
        interval: "1m",
        fields: ["power", "voltage", "current", "energy", "on"],
        data: [
          { timestamp: new Date(base).toISOString(), samples: 2, power_avg: 150, power_min: 100, power_max: 200, voltage_avg: 230, current_avg: 0.6522, energy_wh: 2, on_seconds: 20 },
          { timestamp: new Date(base + 60_000).toISOString(), samples: 1, power_avg: 50, power_min: 50, power_max: 50, voltage_avg: 230, current_avg: 0.2174, energy_wh: 1, on_seconds: 10 },
          { timestamp: new Date(base + 300_000).toISOString(), samples: 2, power_avg: 20, power_min: 10, power_max: 30, voltage_avg: 230, current_avg: 0.087, energy_wh: 0.5, on_seconds: 20 },
        ],
        total_points: 3,
      });

      q.set("interval", "5m");
      q.set("fields", "power,energy");
      const r5 = await (await t.api(`/devices/t1/telemetry?${q}`, { token: ann.token })).json();
      expect(r5.data).toEqual([
        { timestamp: new Date(base).toISOString(), samples: 3, power_avg: 116.67, power_min: 50, power_max: 200, energy_wh: 3 },
        { timestamp: new Date(base + 300_000).toISOString(), samples: 2, power_avg: 20, power_min: 10, power_max: 30, energy_wh: 0.5 },
      ]);

      const hq = new URLSearchParams({ start: new Date(base - 2 * 86_400_000).toISOString(), end: new Date(base + H).toISOString(), interval: "1h", fields: "power" });
      expect((await (await t.api(`/devices/t1/telemetry?${hq}`, { token: ann.token })).json()).data).toEqual([
        { timestamp: new Date(base).toISOString(), samples: 5, power_avg: 78, power_min: 10, power_max: 200 },
      ]);
      hq.set("interval", "1d");
      expect((await (await t.api(`/devices/t1/telemetry?${hq}`, { token: ann.token })).json()).data).toEqual([
        { timestamp: new Date(base - 86_400_000).toISOString(), samples: 1, power_avg: 40, power_min: 40, power_max: 40 },
      ]);
      // Defaults: the last 24 hours at 1h.
      const def = await (await t.api("/devices/t1/telemetry", { token: ann.token })).json();
      expect(def.interval).toBe("1h");
      expect(Date.parse(def.end) - Date.parse(def.start)).toBe(24 * H);
      expect(def.total_points).toBe(1);
    });

    it("A16: refuses a range with too many points, raw samples and bad parameters, with problem+json", async () => {
      const tenYears = new URLSearchParams({ start: "2016-01-01T00:00:00Z", end: "2026-01-01T00:00:00Z", interval: "1m" });
      const res = await t.api(`/devices/t1/telemetry?${tenYears}`, { token: ann.token });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({
        type: "https://smartplug.dev/problems/validation",
        title: "Request is invalid",
        status: 400,
        detail: "range of 5260320 1m buckets exceeds 10000; use a coarser interval or a shorter range",
        max_points: 10_000,
        instance: "/devices/t1/telemetry",
      });
      const raw = await t.api("/devices/t1/telemetry?interval=raw", { token: ann.token });
      expect(raw.status).toBe(400);
      for (const bad of ["interval=1s", "fields=power,secrets", "start=yesterday", "limit=99999999", "start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z"]) {
        const r = await t.api(`/devices/t1/telemetry?${bad}`, { token: ann.token });
        expect(r.status, bad).toBe(400);
      }
    });

    it("GET /telemetry/latest answers the seed's shape from the latest state the hub reported; older reports never win", async () => {
      expect((await t.api("/devices/t2/telemetry/latest", { token: ann.token })).status).toBe(404);
      const ts = Date.now() - 5000;
      await t.cloud.devices.setLatest(hubId, { device_id: "t2", ts, online: true, firmware_version: "1.2.3", power: 42.5, voltage: 230.1, current: 0.185, energy_wh: 1234.5678, relay_state: true });
      expect(await t.cloud.devices.setLatest(hubId, { device_id: "t2", ts: ts - 60_000, power: 1, voltage: 1, current: 1, energy_wh: 1, relay_state: false })).toBe(false);
      expect(await (await t.api("/devices/t2/telemetry/latest", { token: ann.token })).json()).toEqual({
        device_id: "t2",
        timestamp: new Date(ts).toISOString(),
        voltage: 230.1,
        current: 0.185,
        power: 42.5,
        energy_wh: 1234.568,
        relay_state: true,
      });
      expect(await (await t.api("/devices/t2", { token: ann.token })).json()).toEqual({
        device_id: "t2",
        name: "Plug t2",
        family: "native",
        channel: 0,
        status: "online",
        relay_state: true,
        firmware_version: "1.2.3",
        last_seen: new Date(ts).toISOString(),
        power: 42.5,
        energy_kwh: 1.235,
        created_at: expect.any(String),
      });
    });
  });

  describe("energy and cost", () => {
    it("answers energy and cost per local day from the 1h level, priced at the hub's time-of-use tariff, like the hub", async () => {
      const owner = await t.user("energy");
      const reg = await (await t.api("/hubs/register", { body: { name: "Berlin", mqtt_host: "hub.local", mqtt_port: 1883, time_zone: "Europe/Berlin" } })).json();
      await t.api("/hubs/claim", { body: { claim_code: reg.claim_code }, token: owner.token });
      await t.device(owner, reg.hub_id, "e1");
      expect((await t.api(`/hubs/${reg.hub_id}/tariff`, { token: owner.token })).status).toBe(404);
      const tariff = { type: "time_of_use", currency: "EUR", default_price_per_kwh: 0.3, windows: [{ days: [1, 2, 3, 4, 5, 6, 7], from: "22:00", to: "06:00", price_per_kwh: 0.1 }] };
      const put = await t.api(`/hubs/${reg.hub_id}/tariff`, { method: "PUT", body: tariff, token: owner.token });
      expect(put.status).toBe(200);
      expect(await put.json()).toEqual(tariff);
      // 2026-03-10 in Berlin (UTC+1): 1 kWh at 23:00 local (night price), 2 kWh at 12:00 local (day price).
      const night = Date.parse("2026-03-10T22:00:00Z");
      const noon = Date.parse("2026-03-10T11:00:00Z");
      await t.cloud.rollups.writeRollups(reg.hub_id, [rollup("e1", "1h", noon, [2000], 2000), rollup("e1", "1h", night, [1000], 1000)]);
      const q = new URLSearchParams({ period: "day", start: "2026-03-10T00:00:00+01:00", end: "2026-03-11T00:00:00+01:00" });
      const res = await t.api(`/devices/e1/energy?${q}`, { token: owner.token });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        device_id: "e1",
        period: "day",
        time_zone: "Europe/Berlin",
        currency: "EUR",
        data: [{ start: "2026-03-09T23:00:00.000Z", end: "2026-03-10T23:00:00.000Z", energy_kwh: 3, cost: 0.7 }],
        total_kwh: 3,
        total_cost: 0.7,
      });
    });
  });

  describe("commands", () => {
    it("stores the command with an id and expiry and answers 202 queued while no hub link is connected", async () => {
      const res = await t.api("/devices/c1/command", { body: { command: "relay_on", command_id: "cmd-00000001" }, token: ann.token });
      expect(res.status).toBe(202);
      const body = await res.json();
      expect(body).toEqual({ command_id: "cmd-00000001", device_id: "c1", command: "relay_on", status: "queued", relay_state: null, timestamp: expect.any(String), expires_at: expect.any(String) });
      expect(Date.parse(body.expires_at) - Date.parse(body.timestamp)).toBe(300_000);
      const again = await t.api("/devices/c1/command", { body: { command: "relay_off", command_id: "cmd-00000001" }, token: ann.token });
      expect(again.status).toBe(202);
      expect(await again.json()).toEqual(body);
      const rows = await t.cloud.db.orm.select().from(commands).where(eq(commands.commandId, "cmd-00000001"));
      expect(rows.map((r) => [r.command, r.status])).toEqual([["relay_on", "queued"]]);

      const generated = await (await t.api("/devices/c1/command", { body: { command: "relay_toggle" }, token: ann.token })).json();
      expect(generated.command_id).toMatch(/^[0-9a-f-]{36}$/);
      expect((await t.api("/devices/c1/command", { body: { command: "explode" }, token: ann.token })).status).toBe(400);
    });

    it("a queued command past its expiry reports expired, never sent", async () => {
      await t.api("/devices/c1/command", { body: { command: "relay_off", command_id: "cmd-expiring" }, token: ann.token });
      await t.cloud.db.orm.update(commands).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(commands.commandId, "cmd-expiring"));
      const res = await t.api("/devices/c1/command", { body: { command: "relay_off", command_id: "cmd-expiring" }, token: ann.token });
      expect(res.status).toBe(410);
      expect((await res.json()).status).toBe("expired");
    });
  });

  describe("InfluxDB down and back", () => {
    it("answers problem+json 503 while InfluxDB is down, reports it in /health, and works again once it is back", async () => {
      const base = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
      await t.cloud.rollups.writeRollups(hubId, [rollup("down1", "1m", base, [7], 1)]);
      const q = new URLSearchParams({ start: new Date(base).toISOString(), end: new Date(base + 60_000).toISOString(), interval: "1m", fields: "power" });
      await influx.stop();
      try {
        const res = await t.api(`/devices/down1/telemetry?${q}`, { token: ann.token });
        expect(res.status).toBe(503);
        expect(await res.json()).toEqual({
          type: "https://smartplug.dev/problems/storage-unavailable",
          title: "Storage is unavailable",
          status: 503,
          detail: "the time-series store (InfluxDB) is unavailable; try again later",
          instance: "/devices/down1/telemetry",
        });
        await expect(t.cloud.rollups.writeRollups(hubId, [rollup("down1", "1m", base + 60_000, [8], 1)])).rejects.toMatchObject({ status: 503 });
        const h = await (await t.api("/health")).json();
        expect(h.status).toBe("degraded");
        expect(h.components.influxdb).toEqual({ status: "degraded", last_error: expect.any(String) });
        // Everything that does not need InfluxDB keeps working.
        expect((await t.api("/devices/down1", { token: ann.token })).status).toBe(200);
      } finally {
        await influx.start();
      }
      const back = await t.api(`/devices/down1/telemetry?${q}`, { token: ann.token });
      expect(back.status).toBe(200);
      expect((await back.json()).data).toEqual([{ timestamp: new Date(base).toISOString(), samples: 1, power_avg: 7, power_min: 7, power_max: 7 }]);
      await t.cloud.rollups.writeRollups(hubId, [rollup("down1", "1m", base + 60_000, [8], 1)]);
      expect((await (await t.api("/health")).json()).components.influxdb).toEqual({ status: "healthy", last_error: null });
    });
  });
});
