// The authenticated read path answers from short-lived in-process answers (cloud/auth/bounded-cache.ts): verified
// tokens, "user exists and sign-in not revoked", (user, device) access and the latest state. Every change this
// process makes must take effect on the very next request, with the answer warm beforehand; a change made by
// another process (two clouds on one PostgreSQL) within `recheckMs`. Both metadata backends, real InfluxDB.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInflux, type TestInflux } from "../../helpers/influx.js";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";
import { SERVICE_START_MS, startTestCloud, hubAuth, type Backend, type TestCloud, type TestUser } from "../../helpers/cloud.js";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { startCloud, type Cloud } from "../../../cloud/cloud.js";
import { cloudRequestListener } from "../../../cloud/api/app.js";
import { loadCloudConfig } from "../../../cloud/config.js";
import { createLogger } from "../../../shared/logger.js";

let influx: TestInflux;
let postgres: TestPostgres;
beforeAll(async () => {
  [influx, postgres] = await Promise.all([startInflux(), startPostgres()]);
}, SERVICE_START_MS);
afterAll(async () => {
  await Promise.all([influx?.close(), postgres?.close()]);
});

describe.each<Backend>(["pglite", "postgres"])("read-path caches on %s: this process's changes apply at once", (backend) => {
  let t: TestCloud;
  let owner: TestUser;
  let n = 0;
  beforeAll(async () => {
    // A long recheck: nothing below may pass because an answer happened to expire.
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres, options: { recheckMs: 600_000 } });
    owner = await t.user("owner");
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  const latest = (id: string, u: { token: string }) => t.api(`/devices/${id}/telemetry/latest`, { token: u.token });
  /** Reads twice, so the answers are cached when the change comes. */
  const warm = async (id: string, u: { token: string }) => {
    for (let i = 0; i < 2; i++) expect((await latest(id, u)).status).toBe(200);
  };
  /** A10: the 404 must be the one a device that never existed gets. */
  const expectMissing = async (id: string, u: { token: string }) => {
    const res = await latest(id, u);
    expect(res.status).toBe(404);
    const none = await latest(`never-${n}`, u);
    const norm = (b: unknown, x: string) => JSON.parse(JSON.stringify(b).split(x).join("ID"));
    expect(norm(await res.json(), id)).toEqual(norm(await none.json(), `never-${n}`));
  };
  async function device(via?: { u: TestUser; share: "device" | "hub" }) {
    const hub = await t.hub(owner);
    const id = `cached-${++n}`;
    await t.device(owner, hub.hub_id, id);
    await t.cloud.devices.setLatest(hub.hub_id, { device_id: id, ts: Date.now(), power: 5, voltage: 230, current: 0.02, energy_wh: 1, relay_state: false });
    if (via) {
      const path = via.share === "device" ? `/devices/${id}/shares` : `/hubs/${hub.hub_id}/shares`;
      expect((await t.api(path, { body: { email: via.u.email, role: "viewer" }, token: owner.token })).status).toBe(201);
    }
    return { id, hub };
  }

  it("logout: the sign-in's access token is 401 on the next request", async () => {
    const u = await t.user(`logout-${++n}`);
    const { id } = await device({ u, share: "device" });
    await warm(id, u);
    expect((await t.api("/auth/logout", { body: { refresh_token: u.refresh } })).status).toBe(204);
    const res = await latest(id, u);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it("A13: refresh reuse: every access token of the family is 401 on the next request", async () => {
    const u = await t.user(`reuse-${++n}`);
    const { id } = await device({ u, share: "device" });
    const rotated = await (await t.api("/auth/refresh", { body: { refresh_token: u.refresh } })).json();
    await warm(id, u);
    await warm(id, { token: rotated.access_token });
    expect((await t.api("/auth/refresh", { body: { refresh_token: u.refresh } })).status).toBe(401);
    expect((await latest(id, u)).status).toBe(401);
    expect((await latest(id, { token: rotated.access_token })).status).toBe(401);
  });

  it("a password change: the user's other sign-ins are 401 on the next request, this one stays", async () => {
    const u = await t.user(`password-${++n}`);
    const { id } = await device({ u, share: "device" });
    const other = await (await t.api("/auth/login", { body: { email: u.email, password: u.password } })).json();
    await warm(id, u);
    await warm(id, { token: other.access_token });
    expect((await t.api("/users/me/password", { body: { current_password: u.password, new_password: "a-brand-new-password" }, token: u.token })).status).toBe(204);
    expect((await latest(id, { token: other.access_token })).status).toBe(401);
    expect((await latest(id, u)).status).toBe(200);
  });

  for (const share of ["device", "hub"] as const) {
    it(`A10: a ${share} share revoked: the device is the missing-device 404 on the next request`, async () => {
      const u = await t.user(`unshare-${share}-${++n}`);
      const { id, hub } = await device({ u, share });
      await warm(id, u);
      expect((await t.api(`/devices/${id}/telemetry?interval=1h`, { token: u.token })).status).toBe(200);
      const path = share === "device" ? `/devices/${id}/shares/${u.id}` : `/hubs/${hub.hub_id}/shares/${u.id}`;
      expect((await t.api(path, { method: "DELETE", token: owner.token })).status).toBe(204);
      await expectMissing(id, u);
      expect((await t.api(`/devices/${id}/telemetry?interval=1h`, { token: u.token })).status).toBe(404);
      expect((await t.api(`/devices/${id}/energy`, { token: u.token })).status).toBe(404);
      expect((await t.api(`/devices/${id}`, { token: u.token })).status).toBe(404);
    });
  }

  it("A10: a device removed by its owner is 404 on the next request, for the owner and those it was shared with", async () => {
    const u = await t.user(`removed-${++n}`);
    const { id } = await device({ u, share: "hub" });
    await warm(id, u);
    await warm(id, owner);
    expect((await t.api(`/devices/${id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
    await expectMissing(id, u);
    await expectMissing(id, owner);
  });

  it("A10: a device the hub deleted (POST /hub/sync) is 404 on the next request", async () => {
    const u = await t.user(`hub-deleted-${++n}`);
    const { id, hub } = await device({ u, share: "device" });
    await warm(id, u);
    await warm(id, owner);
    const row = { seq: 1, kind: "device", device_id: id, deleted: true, name: null, family: null, channel: null, version: Date.now() + 60_000 };
    const res = await fetch(`${t.url}/hub/sync`, { method: "POST", headers: { ...hubAuth(hub), "content-type": "application/json" }, body: JSON.stringify({ rows: [row] }) });
    expect(res.status).toBe(200);
    await expectMissing(id, u);
    await expectMissing(id, owner);
  });

  it("A10: a removed hub's devices are 404 on the next request", async () => {
    const u = await t.user(`hub-removed-${++n}`);
    const { id, hub } = await device({ u, share: "hub" });
    await warm(id, u);
    await warm(id, owner);
    expect((await t.api(`/hubs/${hub.hub_id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
    await expectMissing(id, u);
    await expectMissing(id, owner);
  });

  it("a new latest state (link report or a synced relay change) is served on the next request", async () => {
    const { id, hub } = await device();
    await warm(id, owner);
    const ts = Date.now() + 1000;
    await t.cloud.devices.setLatest(hub.hub_id, { device_id: id, ts, power: 42.5, voltage: 231.5, current: 0.185, energy_wh: 12.3456, relay_state: true });
    expect(await (await latest(id, owner)).json()).toEqual({ device_id: id, timestamp: new Date(ts).toISOString(), voltage: 231.5, current: 0.185, power: 42.5, energy_wh: 12.346, relay_state: true });
    const relay = { seq: 1, kind: "relay", device_id: id, ts: ts + 1000, relay_state: false, source: "plug" };
    const res = await fetch(`${t.url}/hub/sync`, { method: "POST", headers: { ...hubAuth(hub), "content-type": "application/json" }, body: JSON.stringify({ rows: [relay] }) });
    expect(res.status).toBe(200);
    expect((await (await latest(id, owner)).json()).relay_state).toBe(false);
  });

  it("a device id that becomes ambiguous (the same id paired on another of your hubs) is 409 on the next request", async () => {
    const { id } = await device();
    await warm(id, owner);
    const other = await t.hub(owner);
    await t.device(owner, other.hub_id, id);
    const res = await latest(id, owner);
    expect(res.status).toBe(409);
    expect((await res.json()).candidates).toHaveLength(2);
  });

  it("a hub claimed: its devices are readable on the next request", async () => {
    const claimer = await t.user(`claimer-${++n}`);
    const reg = await (await t.api("/hubs/register", { body: { name: "Late hub", mqtt_host: "hub.local", mqtt_port: 1883 } })).json();
    const id = `claimed-${n}`;
    const sync = await fetch(`${t.url}/hub/sync`, {
      method: "POST",
      headers: { ...hubAuth(reg), "content-type": "application/json" },
      body: JSON.stringify({ rows: [{ seq: 1, kind: "device", device_id: id, deleted: false, name: "Plug", family: "native", channel: 0, version: 1 }] }),
    });
    expect(sync.status).toBe(200);
    await t.cloud.devices.setLatest(reg.hub_id, { device_id: id, ts: Date.now(), power: 1, voltage: 230, current: 0.01, energy_wh: 1, relay_state: true });
    expect((await latest(id, claimer)).status).toBe(404);
    expect((await t.api("/hubs/claim", { body: { claim_code: reg.claim_code }, token: claimer.token })).status).toBe(200);
    expect((await latest(id, claimer)).status).toBe(200);
  });
});

describe.each<Backend>(["pglite", "postgres"])("GET /devices/{id}/telemetry/latest answered from memory on %s", (backend) => {
  let t: TestCloud;
  let owner: TestUser;
  let hubId: string;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres });
    owner = await t.user("owner");
    hubId = (await t.hub(owner)).hub_id;
    for (const id of ["m1", "m2"]) await t.device(owner, hubId, id);
    await t.cloud.devices.setLatest(hubId, { device_id: "m1", ts: Date.now(), power: 42.5, voltage: 230.1, current: 0.185, energy_wh: 1234.5678, relay_state: true });
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  it("answers the plain request with express's bytes and headers (but Date)", async () => {
    const get = (path: string) => t.api(path, { token: owner.token });
    await get("/devices/m1/telemetry/latest"); // warms the answers
    const viaMemory = await get("/devices/m1/telemetry/latest");
    const viaExpress = await get("/devices/m1/telemetry/latest?via=express"); // a query string always goes to express
    const shape = async (r: Response) => ({ status: r.status, headers: [...r.headers].filter(([k]) => k !== "date"), body: await r.text() });
    expect(await shape(viaMemory)).toEqual(await shape(viaExpress));
    expect(viaMemory.headers.get("etag")).toMatch(/^W\/"/);
  });

  describe("which requests it answers, and which it leaves to express", () => {
    // The listener in front of an express app that answers every request it is given with 599: what the cloud's
    // own app would have handled shows as 599.
    let server: Server;
    let url: string;
    beforeAll(async () => {
      const fallback = express();
      fallback.use((_req, res) => void res.status(599).end());
      server = createServer(cloudRequestListener(fallback, t.cloud));
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    const via = async (path: string, init: { method?: string; headers?: Record<string, string> } = {}) => (await fetch(url + path, { method: init.method ?? "GET", headers: { authorization: `Bearer ${owner.token}`, ...init.headers } })).status;

    it("a request it cannot answer from memory alone goes to express; then the same request is answered", async () => {
      const u = await t.user(`cold-${Date.now()}`);
      expect((await t.api(`/devices/m1/shares`, { body: { email: u.email, role: "viewer" }, token: owner.token })).status).toBe(201);
      const get = () => fetch(`${url}/devices/m1/telemetry/latest`, { headers: { authorization: `Bearer ${u.token}` } });
      expect((await get()).status).toBe(599); // nothing of this user's is known yet
      expect((await t.api("/devices/m1/telemetry/latest", { token: u.token })).status).toBe(200); // the cloud's own answer fills it
      expect((await get()).status).toBe(200);
      expect((await t.api(`/devices/m1/shares/${u.id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
      expect((await get()).status).toBe(599); // revoked: express decides (404)
      expect((await t.api("/devices/m1/telemetry/latest", { token: u.token })).status).toBe(404);
    });

    it("anything but the plain GET with a known bearer token goes to express", async () => {
      expect((await t.api("/devices/m1/telemetry/latest", { token: owner.token })).status).toBe(200);
      expect(await via("/devices/m1/telemetry/latest")).toBe(200);
      expect(await via("/devices/m1/telemetry/latest?x=1")).toBe(599);
      expect(await via("/devices/m1/telemetry/latest/")).toBe(599);
      expect(await via("/DEVICES/m1/telemetry/latest")).toBe(599);
      expect(await via("/devices/m%31/telemetry/latest")).toBe(599);
      expect(await via("/devices/m1/telemetry/latest", { method: "HEAD" })).toBe(599);
      expect(await via("/devices/m1/telemetry/latest", { headers: { origin: "https://app.example" } })).toBe(599); // CORS
      expect(await via("/devices/m1/telemetry/latest", { headers: { "if-none-match": '"x"' } })).toBe(599); // 304s
      expect(await via("/devices/m1/telemetry/latest", { headers: { "if-modified-since": new Date().toUTCString() } })).toBe(599);
      expect(await via("/devices/m1/telemetry/latest", { headers: { authorization: `bearer ${owner.token}` } })).toBe(599);
      expect(await via("/devices/m1/telemetry/latest", { headers: { authorization: `Bearer ${owner.token}x` } })).toBe(599);
      expect(await via("/devices/m1/telemetry/latest", { headers: { authorization: "" } })).toBe(599);
      expect(await via("/devices/m2/telemetry/latest")).toBe(599); // no reading yet: express answers the 404
      expect(await via("/devices/never/telemetry/latest")).toBe(599);
      expect(await via("/devices/m1/telemetry")).toBe(599);
    });
  });
});

describe("read-path caches across two cloud processes on one PostgreSQL: the bound is recheckMs", () => {
  const RECHECK_MS = 1_500;
  let a: TestCloud;
  let b: Cloud;
  let bUrl: string;
  beforeAll(async () => {
    const databaseUrl = await postgres.createDatabase("cross_process_cache");
    a = await startTestCloud({ influxUrl: influx.url, backend: "postgres", postgres, env: { CLOUD_DATABASE_URL: databaseUrl }, options: { recheckMs: RECHECK_MS } });
    // A second process: the same database and signing key (the same data dir holds it), its own caches.
    const config = loadCloudConfig({
      CLOUD_DATA_DIR: a.dataDir,
      CLOUD_HTTP_HOST: "127.0.0.1",
      CLOUD_HTTP_PORT: "0",
      CLOUD_INFLUX_URL: influx.url,
      CLOUD_INFLUX_DB_PREFIX: a.influxPrefix,
      CLOUD_DATABASE_URL: databaseUrl,
    });
    b = await startCloud(config, { log: createLogger({ app: "cloud-test-b", level: "silent" }), recheckMs: RECHECK_MS });
    bUrl = `http://127.0.0.1:${b.httpPort}`;
  }, SERVICE_START_MS);
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  /** Polls B until `done`; returns how long after `since` it became true. */
  async function until(since: number, probe: () => Promise<boolean>): Promise<number> {
    for (;;) {
      if (await probe()) return Date.now() - since;
      if (Date.now() - since > 10 * RECHECK_MS) throw new Error("not within 10 × recheckMs");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it(`a logout in one process ends the sign-in in the other within recheckMs (${RECHECK_MS} ms)`, async () => {
    const u = await a.user("cross-logout");
    const hub = await a.hub(u);
    await a.device(u, hub.hub_id, "x1");
    await a.cloud.devices.setLatest(hub.hub_id, { device_id: "x1", ts: Date.now(), power: 1, voltage: 230, current: 0.01, energy_wh: 1, relay_state: true });
    const get = () => fetch(`${bUrl}/devices/x1/telemetry/latest`, { headers: { authorization: `Bearer ${u.token}` } });
    expect((await get()).status).toBe(200);
    const at = Date.now();
    expect((await a.api("/auth/logout", { body: { refresh_token: u.refresh } })).status).toBe(204);
    expect((await a.api("/users/me", { token: u.token })).status).toBe(401); // at once where it happened
    const took = await until(at, async () => (await get()).status === 401);
    expect(took).toBeLessThanOrEqual(RECHECK_MS + 500);
  });

  it(`A10: a share revoked in one process is the missing-device 404 in the other within recheckMs (${RECHECK_MS} ms)`, async () => {
    const o = await a.user("cross-owner");
    const v = await a.user("cross-viewer");
    const hub = await a.hub(o);
    await a.device(o, hub.hub_id, "x2");
    await a.cloud.devices.setLatest(hub.hub_id, { device_id: "x2", ts: Date.now(), power: 1, voltage: 230, current: 0.01, energy_wh: 1, relay_state: true });
    expect((await a.api("/devices/x2/shares", { body: { email: v.email, role: "viewer" }, token: o.token })).status).toBe(201);
    const get = () => fetch(`${bUrl}/devices/x2/telemetry/latest`, { headers: { authorization: `Bearer ${v.token}` } });
    expect((await get()).status).toBe(200);
    const at = Date.now();
    expect((await a.api(`/devices/x2/shares/${v.id}`, { method: "DELETE", token: o.token })).status).toBe(204);
    const took = await until(at, async () => (await get()).status === 404);
    expect(took).toBeLessThanOrEqual(RECHECK_MS + 500);
  });
});
