// Boots the real cloud in-process on port 0: PGlite in a temporary data dir (or a fresh database on a real
// PostgreSQL), a real InfluxDB with a per-instance database prefix, express and ws — all real.
import { createHash, randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCloudConfig } from "../../cloud/config.js";
import { startCloud, type Cloud, type CloudOptions } from "../../cloud/cloud.js";
import { openCloudDb, MIGRATIONS_DIR } from "../../cloud/db/open-db.js";
import { createLogger } from "../../shared/logger.js";
import type { TestPostgres } from "./postgres.js";

/**
 * Hook timeout for starting InfluxDB/PostgreSQL and the first PGlite template: on a fresh machine the helpers
 * apt-get install the servers first, and PGlite's first initdb takes ~10 s (more on a loaded 2-core machine).
 */
export const SERVICE_START_MS = 300_000;

/** scrypt at test cost: the production profiles are exercised by the hub's unit test of the same code. */
export const FAST_HASH = { N: 2 ** 10, r: 8, p: 1 };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ApiResponse = Omit<Response, "json"> & { json(): Promise<any> };

export type Backend = "pglite" | "postgres";

export interface TestUser {
  id: string;
  email: string;
  password: string;
  token: string;
  refresh: string;
}

export interface TestCloud {
  cloud: Cloud;
  url: string;
  dataDir: string;
  influxPrefix: string;
  api(path: string, init?: { method?: string; body?: unknown; token?: string | null; headers?: Record<string, string> }): Promise<ApiResponse>;
  /** Registers and signs in a user. */
  user(name: string): Promise<TestUser>;
  /** Registers a hub (as the hub would) and claims it for `owner`; returns its id and credential. */
  hub(owner: TestUser, name?: string): Promise<{ hub_id: string; hub_secret: string }>;
  /** Pairs a device on a hub as its owner. */
  device(owner: TestUser, hubId: string, deviceId: string, name?: string): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

const log = () => createLogger({ app: "cloud-test", level: process.env.TEST_LOG_LEVEL ?? "silent" });

/**
 * A migrated PGlite data dir, built once per machine and migration set and copied for each test cloud:
 * PGlite's first start (initdb in WebAssembly) takes ~10 s, a copy ~1 s.
 */
export async function pgliteTemplate(): Promise<string> {
  const journal = readFileSync(join(MIGRATIONS_DIR, "meta", "_journal.json"));
  const pkg = readFileSync(new URL("../../node_modules/@electric-sql/pglite/package.json", import.meta.url));
  const key = createHash("sha256").update(journal).update(pkg).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), `smartplug-pglite-template-${key}`);
  if (existsSync(dir)) return dir;
  const build = mkdtempSync(join(tmpdir(), "pglite-build-"));
  const db = await openCloudDb({ dataDir: build, databaseUrl: null }, log());
  await db.close();
  try {
    renameSync(join(build, "pglite"), dir);
  } catch {
    // Another worker won the race; its template is as good as ours.
  }
  rmSync(build, { recursive: true, force: true });
  return dir;
}

export async function startTestCloud(o: {
  influxUrl: string;
  backend?: Backend;
  postgres?: TestPostgres;
  env?: Record<string, string>;
  options?: Partial<CloudOptions>;
}): Promise<TestCloud> {
  const backend = o.backend ?? "pglite";
  const dataDir = mkdtempSync(join(tmpdir(), "cloud-test-"));
  const suffix = randomBytes(6).toString("hex");
  const influxPrefix = `t${suffix}`;
  let databaseUrl: string | null = null;
  if (backend === "postgres") {
    if (!o.postgres) throw new Error("backend 'postgres' needs a TestPostgres");
    databaseUrl = await o.postgres.createDatabase(`cloud_${suffix}`);
  } else {
    cpSync(await pgliteTemplate(), join(dataDir, "pglite"), { recursive: true });
  }
  const boot = () => {
    const config = loadCloudConfig({
      CLOUD_DATA_DIR: dataDir,
      CLOUD_HTTP_HOST: "127.0.0.1",
      CLOUD_HTTP_PORT: "0",
      CLOUD_INFLUX_URL: o.influxUrl,
      CLOUD_INFLUX_DB_PREFIX: influxPrefix,
      CLOUD_INFLUX_TIMEOUT_MS: "2000",
      CLOUD_HUB_REGISTRATIONS_PER_HOUR: "100000",
      ...(databaseUrl ? { CLOUD_DATABASE_URL: databaseUrl } : {}),
      ...o.env,
    });
    return startCloud(config, { log: log(), passwordCost: FAST_HASH, secretCost: FAST_HASH, influxRetry: { attempts: 2, baseMs: 20, maxMs: 50 }, ...o.options });
  };
  let cloud = await boot();
  let seq = 0;

  const t: TestCloud = {
    get cloud() {
      return cloud;
    },
    get url() {
      return `http://127.0.0.1:${cloud.httpPort}`;
    },
    dataDir,
    influxPrefix,
    api(path, init = {}) {
      const headers: Record<string, string> = { ...init.headers };
      if (init.body !== undefined) headers["content-type"] ??= "application/json";
      if (init.token) headers.authorization = `Bearer ${init.token}`;
      return fetch(t.url + path, {
        method: init.method ?? (init.body === undefined ? "GET" : "POST"),
        headers,
        body: init.body === undefined ? undefined : typeof init.body === "string" ? init.body : JSON.stringify(init.body),
      });
    },
    async user(name) {
      const email = `${name}@example.com`;
      const password = `password-of-${name}`;
      const reg = await t.api("/auth/register", { body: { email, password, name } });
      if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${await reg.text()}`);
      const id = (await reg.json()).id as string;
      const res = await t.api("/auth/login", { body: { email, password } });
      if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
      const tok = await res.json();
      return { id, email, password, token: tok.access_token, refresh: tok.refresh_token };
    },
    async hub(owner, name) {
      const reg = await t.api("/hubs/register", { body: { name: name ?? `Hub ${++seq}`, mqtt_host: "hub.local", mqtt_port: 1883 } });
      if (reg.status !== 201) throw new Error(`hub register failed: ${reg.status} ${await reg.text()}`);
      const cred = await reg.json();
      const claim = await t.api("/hubs/claim", { body: { claim_code: cred.claim_code }, token: owner.token });
      if (claim.status !== 200) throw new Error(`claim failed: ${claim.status} ${await claim.text()}`);
      return { hub_id: cred.hub_id, hub_secret: cred.hub_secret };
    },
    async device(owner, hubId, deviceId, name) {
      const res = await t.api("/devices", { body: { hub_id: hubId, device_id: deviceId, name: name ?? `Plug ${deviceId}`, pairing_code: `code-${deviceId}-secret` }, token: owner.token });
      if (res.status !== 201) throw new Error(`device create failed: ${res.status} ${await res.text()}`);
    },
    async restart() {
      await cloud.close();
      cloud = await boot();
    },
    async close() {
      await cloud.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return t;
}

/** Basic credential header of a registered hub. */
export const hubAuth = (hub: { hub_id: string; hub_secret: string }) => ({ authorization: `Basic ${Buffer.from(`${hub.hub_id}:${hub.hub_secret}`).toString("base64")}` });
