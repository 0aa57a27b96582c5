// Operations (issue 5 §2, §9): `npm run cloud` with only three variables, InfluxDB absent at start and
// retried writes, hub-registration limits, the OpenAPI document covering every route, CORS for every method,
// and deeply nested JSON (A15). Real InfluxDB, real PGlite and a real PostgreSQL 15 (both backends, issue 5 §1),
// a real child process for main.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import pg from "pg";
import { cpSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, startInflux, waitFor, type TestInflux } from "../../helpers/influx.js";
import { PG_MAJOR, startPostgres, type TestPostgres } from "../../helpers/postgres.js";
import { SERVICE_START_MS, pgliteTemplate, startTestCloud, type Backend, type TestCloud } from "../../helpers/cloud.js";
import { KEY_FILE } from "../../../cloud/auth/token-service.js";
import type { RollupPoint } from "../../../shared/schemas/rollups.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

let influx: TestInflux;
let postgres: TestPostgres;
beforeAll(async () => {
  [influx, postgres] = await Promise.all([startInflux(), startPostgres()]);
}, SERVICE_START_MS);
afterAll(async () => {
  await Promise.all([influx?.close(), postgres?.close()]);
});

const BACKENDS: Backend[] = ["pglite", "postgres"];

const point = (deviceId: string, ts: number, watts: number): RollupPoint => ({
  device_id: deviceId,
  level: "1m",
  ts,
  samples: 1,
  power_sum: watts,
  power_n: 1,
  power_min: watts,
  power_max: watts,
  voltage_sum: 230,
  voltage_n: 1,
  current_sum: watts / 230,
  current_n: 1,
  energy_wh: watts / 60,
  on_ms: 60_000,
});

const databases = async () => {
  const r = await fetch(`${influx.url}/query?${new URLSearchParams({ q: "SHOW DATABASES" })}`);
  const body = (await r.json()) as { results: { series?: { values: string[][] }[] }[] };
  return (body.results[0]!.series?.[0]?.values ?? []).map((v) => v[0]);
};

describe("npm run cloud (cloud/main.ts as a process)", () => {
  const dirs: string[] = [];
  const procs: ChildProcess[] = [];
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Runs `tsx cloud/main.ts` (what `npm run cloud` runs) with exactly `env` plus PATH. */
  function run(env: Record<string, string>) {
    const p = spawn(join(ROOT, "node_modules/.bin/tsx"), ["cloud/main.ts"], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    procs.push(p);
    let out = "";
    p.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => p.once("exit", (code) => r(code)));
    return { p, exited, output: () => out };
  }

  it("starts with only CLOUD_DATA_DIR, CLOUD_HTTP_PORT and CLOUD_INFLUX_URL; generates its signing key (0600) and keeps it across restarts", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "cloud-main-"));
    dirs.push(dataDir);
    cpSync(await pgliteTemplate(), join(dataDir, "pglite"), { recursive: true });
    const port = await freePort();
    const env = { CLOUD_DATA_DIR: dataDir, CLOUD_HTTP_PORT: String(port), CLOUD_INFLUX_URL: influx.url };
    const url = `http://127.0.0.1:${port}`;

    const first = run(env);
    await waitFor("cloud", async () => (await fetch(`${url}/health`)).status === 200, 60_000, first.output);
    const health = (await (await fetch(`${url}/health`)).json()) as { status: string; components: { database: unknown } };
    expect(health.status).toBe("healthy");
    expect(health.components.database).toEqual({ status: "healthy", backend: "pglite", last_error: null });
    const keyFile = join(dataDir, KEY_FILE);
    expect(existsSync(keyFile)).toBe(true);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(await databases()).toEqual(expect.arrayContaining(["smartplug_1m", "smartplug_1h", "smartplug_1d"]));

    const post = (path: string, body: unknown) => fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    expect((await post("/auth/register", { email: "main@example.com", password: "main-password-1" })).status).toBe(201);
    const tokens = (await (await post("/auth/login", { email: "main@example.com", password: "main-password-1" })).json()) as { access_token: string };
    first.p.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    // The same data dir: the same key, so tokens issued before the restart still verify.
    const second = run(env);
    await waitFor("cloud restart", async () => (await fetch(`${url}/health`)).status === 200, 60_000, second.output);
    const me = await fetch(`${url}/users/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { email: string }).email).toBe("main@example.com");
    second.p.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  }, 180_000);

  it("issue 5 §1: starts on a real PostgreSQL 15 given CLOUD_DATABASE_URL: migrates it, /health reports backend postgres", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "cloud-main-pg-"));
    dirs.push(dataDir);
    const databaseUrl = await postgres.createDatabase(`main_${process.pid}`);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const cloud = run({ CLOUD_DATA_DIR: dataDir, CLOUD_HTTP_PORT: String(port), CLOUD_INFLUX_URL: influx.url, CLOUD_INFLUX_DB_PREFIX: `main${process.pid}`, CLOUD_DATABASE_URL: databaseUrl });
    await waitFor("cloud on postgres", async () => (await fetch(`${url}/health`)).status === 200, 60_000, cloud.output);
    expect(await (await fetch(`${url}/health`)).json()).toEqual({
      status: "healthy",
      timestamp: expect.any(String),
      version: "0.1.0",
      uptime_s: expect.any(Number),
      components: {
        database: { status: "healthy", backend: "postgres", last_error: null },
        influxdb: { status: "healthy", last_error: null },
        link: { status: "healthy", connected_hubs: 0, hubs: { connected: 0, disconnected: 0, disconnected_over_24h: 0, unclaimed_connected: 0 } },
      },
    });
    const reg = await fetch(`${url}/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "pg@example.com", password: "pg-password-1" }) });
    expect(reg.status).toBe(201);
    // The user is in that PostgreSQL database, and nothing went to an embedded PGlite.
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    try {
      expect((await c.query<{ email: string }>("SELECT email FROM users")).rows).toEqual([{ email: "pg@example.com" }]);
      expect(Number((await c.query<{ server_version_num: string }>("SHOW server_version_num")).rows[0]!.server_version_num.slice(0, -4))).toBe(PG_MAJOR);
    } finally {
      await c.end();
    }
    expect(existsSync(join(dataDir, "pglite"))).toBe(false);
    cloud.p.kill("SIGTERM");
    expect(await cloud.exited).toBe(0);
  }, 180_000);

  it("exits 1 naming every bad variable, including a default or short signing key and InfluxDB secret, before touching anything", async () => {
    const dataDir = join(tmpdir(), `cloud-main-bad-${process.pid}`);
    const bad = run({ CLOUD_DATA_DIR: dataDir, CLOUD_HTTP_PORT: "eighty", CLOUD_INFLUX_URL: influx.url, CLOUD_JWT_PRIVATE_KEY: "changeme", CLOUD_INFLUX_TOKEN: "admin" });
    expect(await bad.exited).toBe(1);
    expect(bad.output()).toContain("invalid configuration");
    expect(bad.output()).toMatch(/CLOUD_HTTP_PORT: /);
    expect(bad.output()).toMatch(/CLOUD_JWT_PRIVATE_KEY: refusing a short or default value/);
    expect(bad.output()).toMatch(/CLOUD_INFLUX_TOKEN: refusing a short or default value/);
    expect(existsSync(dataDir)).toBe(false);
  }, 60_000);
});

describe.each(BACKENDS)("InfluxDB absent at start, on %s", (backend) => {
  it("the cloud starts anyway (degraded), answers 503 problem+json for history, and creates its databases on first use once InfluxDB is up", async () => {
    const own = await startInflux();
    await own.stop();
    const t = await startTestCloud({ influxUrl: own.url, backend, postgres });
    try {
      const ann = await t.user("ann");
      const hubId = (await t.hub(ann)).hub_id;
      await t.device(ann, hubId, "late-1");
      const h = await (await t.api("/health")).json();
      expect(h.status).toBe("degraded");
      const res = await t.api("/devices/late-1/telemetry?interval=1h", { token: ann.token });
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toBe("application/problem+json; charset=utf-8");
      expect(await res.json()).toEqual({
        type: "https://smartplug.dev/problems/storage-unavailable",
        title: "Storage is unavailable",
        status: 503,
        detail: "the time-series store (InfluxDB) is unavailable; try again later",
        instance: "/devices/late-1/telemetry",
      });

      await own.start();
      const ts = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000;
      expect(await t.cloud.rollups.writeRollups(hubId, [point("late-1", ts, 12)])).toEqual({ written: 1, droppedOld: 0 });
      const q = new URLSearchParams({ start: new Date(ts).toISOString(), end: new Date(ts + 60_000).toISOString(), interval: "1m", fields: "power" });
      const back = await t.api(`/devices/late-1/telemetry?${q}`, { token: ann.token });
      expect(back.status).toBe(200);
      expect((await back.json()).data).toEqual([{ timestamp: new Date(ts).toISOString(), samples: 1, power_avg: 12, power_min: 12, power_max: 12 }]);
      const r = await fetch(`${own.url}/query?${new URLSearchParams({ q: "SHOW DATABASES" })}`);
      expect(JSON.stringify(await r.json())).toContain(`${t.influxPrefix}_1d`);
      expect((await (await t.api("/health")).json()).status).toBe("healthy");
    } finally {
      await t.close();
      await own.close();
    }
  }, SERVICE_START_MS);
});

/**
 * An HTTP proxy in front of the real InfluxDB that fails the first `failures` writes: with 503, or by holding
 * the request past the client's timeout. Everything else passes through unchanged.
 */
async function faultyProxy(target: string, mode: "503" | "hang", failures: number): Promise<{ url: string; writes: () => number; close(): Promise<void> }> {
  let writes = 0;
  const held: import("node:http").ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    const isWrite = req.url?.startsWith("/write") ?? false;
    if (isWrite) writes++;
    if (isWrite && writes <= failures) {
      req.resume();
      if (mode === "503") {
        res.writeHead(503, { "content-type": "application/json" }).end('{"error":"overloaded"}');
      } else {
        held.push(res);
      }
      return;
    }
    const u = new URL(req.url ?? "/", target);
    const fwd = httpRequest(u, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    fwd.on("error", () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    writes: () => writes,
    close: () =>
      new Promise<void>((r) => {
        for (const res of held) res.destroy();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe.each(BACKENDS)("InfluxDB write retries (issue 5 §2), on %s", (backend) => {
  it.each(["503", "hang"] as const)("a write that meets %s is retried and lands once; the retry is counted", async (mode) => {
    const proxy = await faultyProxy(influx.url, mode, 1);
    const t = await startTestCloud({ influxUrl: proxy.url, backend, postgres, env: { CLOUD_INFLUX_TIMEOUT_MS: "500" }, options: { influxRetry: { attempts: 3, baseMs: 10, maxMs: 20 } } });
    try {
      const ann = await t.user("ann");
      const hubId = (await t.hub(ann)).hub_id;
      await t.device(ann, hubId, "retry-1");
      const ts = Math.floor(Date.now() / 60_000) * 60_000 - 3 * 60_000;
      expect(await t.cloud.rollups.writeRollups(hubId, [point("retry-1", ts, 40)])).toEqual({ written: 1, droppedOld: 0 });
      expect(proxy.writes()).toBe(2);
      expect((await t.cloud.metrics.influxRetries.get()).values[0]!.value).toBe(1);
      expect((await t.cloud.metrics.influxWrites.get()).values).toEqual([expect.objectContaining({ labels: { outcome: "retried" }, value: 1 })]);
      const q = new URLSearchParams({ start: new Date(ts).toISOString(), end: new Date(ts + 60_000).toISOString(), interval: "1m", fields: "power" });
      expect((await (await t.api(`/devices/retry-1/telemetry?${q}`, { token: ann.token })).json()).data).toEqual([
        { timestamp: new Date(ts).toISOString(), samples: 1, power_avg: 40, power_min: 40, power_max: 40 },
      ]);
    } finally {
      await t.close();
      await proxy.close();
    }
  }, SERVICE_START_MS);

  it("a write refused with 400 (bad data, not an outage) is not retried", async () => {
    const t = await startTestCloud({ influxUrl: influx.url, backend, postgres });
    try {
      await t.cloud.rollups.ensureDatabases();
      const hubId = "00000000-0000-4000-8000-000000000001";
      await t.cloud.rollups.writeRollups(hubId, [point("typed", Date.now() - 120_000, 1)]);
      // "samples" is an integer field; the same field as a float conflicts and InfluxDB answers 400.
      const line = `rollup,device=typed,hub=${hubId} samples=1.5 ${Date.now() - 60_000}`;
      const influxV1 = (t.cloud.rollups as unknown as { influx: { write(db: string, lines: string[]): Promise<unknown> } }).influx;
      await expect(influxV1.write(t.cloud.rollups.database("1m"), [line])).rejects.toThrow(/InfluxDB refused the write/);
      expect((await t.cloud.metrics.influxRetries.get()).values[0]?.value ?? 0).toBe(0);
    } finally {
      await t.close();
    }
  }, SERVICE_START_MS);
});

describe.each(BACKENDS)("API surface on %s", (backend) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ influxUrl: influx.url, backend, postgres, env: { CLOUD_HUB_REGISTRATIONS_PER_HOUR: "6", CLOUD_CORS_ORIGINS: "https://app.example" } });
  }, SERVICE_START_MS);
  afterAll(async () => {
    await t?.close();
  });

  it("documents every route it serves in /openapi.json, with its method", async () => {
    const { buildCloudApi } = await import("../../../cloud/api/app.js");
    // Routes are registered without touching the services; only these settings are read while building.
    // With hubSync, as startCloud builds it: POST /hub/sync is one of the routes (issue 6).
    const app = buildCloudApi({ corsOrigins: [], hubRegistrationsPerHour: 1, trustProxy: false, hubSync: {} } as unknown as Parameters<typeof buildCloudApi>[0]);
    const stack = (app as unknown as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } }).router.stack;
    const served = stack
      .filter((l) => l.route)
      .flatMap((l) => Object.keys(l.route!.methods).map((m) => `${m.toUpperCase()} ${l.route!.path.replace(/:(\w+)/g, "{$1}")}`))
      .filter((r) => !/ \/(openapi\.json|redoc)/.test(r));
    const doc = await (await t.api("/openapi.json")).json();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    expect(served.length).toBeGreaterThan(30);
    expect(served).toContain("POST /hub/sync");
    expect(served.filter((r) => !documented.includes(r))).toEqual([]);
    expect(documented.filter((r) => !served.includes(r))).toEqual([]);
  });

  it("limits unauthenticated hub registrations per address: 429 with Retry-After after the burst", async () => {
    const statuses: number[] = [];
    let last: Response | null = null;
    for (let i = 0; i < 12; i++) {
      last = await t.api("/hubs/register", { body: { mqtt_host: "hub.local", mqtt_port: 1883 } });
      statuses.push(last.status);
    }
    // 6 an hour with a burst of 10 (the floor), then one every 600 s.
    expect(statuses).toEqual([...Array(10).fill(201), 429, 429]);
    expect(last!.headers.get("retry-after")).toBe("600");
    expect(await last!.json()).toEqual({
      type: "https://smartplug.dev/problems/too-many-requests",
      title: "Too many requests",
      status: 429,
      detail: "too many hub registrations from this address",
      retry_after: 600,
      instance: "/hubs/register",
    });
  });

  it("CORS preflight allows every method the API uses, PUT included", async () => {
    const pre = await t.api("/hubs/x/tariff", { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "PUT" } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-methods")).toBe("GET, POST, PUT, PATCH, DELETE");
  });

  it("A15: deeply nested JSON is a 400 problem, and the process stays responsive", async () => {
    const u = await t.user("nested");
    const depth = 40_000; // 80 KB: under the body limit, so the parser and the schema see it
    const body = `{"name":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    const res = await t.api("/users/me", { method: "PATCH", body, token: u.token });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/problem+json; charset=utf-8");
    expect((await res.json()).type).toBe("https://smartplug.dev/problems/validation");
    const obj = `{"email":"a@example.com","password":"longenough1","x":${'{"a":'.repeat(15_000)}1${"}".repeat(15_000)}}`;
    const reg = await t.api("/auth/register", { body: obj });
    expect(reg.status).toBe(400);
    expect((await t.api("/health")).status).toBe(200);
    expect((await t.api("/users/me", { token: u.token })).status).toBe(200);
  });
});
