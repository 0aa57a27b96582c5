// Boots the real hub in-process on port 0 with a temporary data dir (SQLite, aedes, express, ws: all real).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadHubConfig } from "../../hub/config.js";
import { startHub, type Hub, type HubOptions } from "../../hub/hub.js";
import { createLogger } from "../../shared/logger.js";

/** scrypt at test cost: the production profiles are exercised by their own unit test. */
export const FAST_HASH = { N: 2 ** 10, r: 8, p: 1 };

/** A fetch Response whose json() is loosely typed: tests assert the whole body anyway. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ApiResponse = Omit<Response, "json"> & { json(): Promise<any> };

export interface TestHub {
  hub: Hub;
  url: string;
  mqttUrl: string;
  dataDir: string;
  /** fetch against the hub with JSON helpers. */
  api(path: string, init?: { method?: string; body?: unknown; token?: string | null; headers?: Record<string, string> }): Promise<ApiResponse>;
  /** Registers the owner (first user) and signs in; returns the access token. */
  owner(): Promise<string>;
  /** Pairs a native plug as the owner; returns its pairing code. */
  pair(deviceId: string, opts?: { name?: string; code?: string; family?: string }): Promise<string>;
  restart(env?: Record<string, string>): Promise<void>;
  close(opts?: { keepData?: boolean }): Promise<void>;
}

export const OWNER = { email: "owner@example.com", password: "correct horse battery" };

export async function startTestHub(opts: { env?: Record<string, string>; dataDir?: string; hubOptions?: Partial<HubOptions> } = {}): Promise<TestHub> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "hub-test-"));
  const boot = async (env: Record<string, string> = {}) => {
    const config = loadHubConfig({
      HUB_DATA_DIR: dataDir,
      HUB_HTTP_HOST: "127.0.0.1",
      HUB_HTTP_PORT: "0",
      HUB_MQTT_HOST: "127.0.0.1",
      HUB_MQTT_PORT: "0",
      HUB_PUBLIC_HOST: "127.0.0.1",
      HUB_COMMAND_TIMEOUT_MS: "1500",
      HUB_SNTP_PORT: "off",
      // Tests publish QoS 1 readings one after another; a 50 ms group-commit window keeps each PUBACK quick (the
      // default 1 s window trades ack latency for SD-card writes, which tests do not measure).
      HUB_COMMIT_INTERVAL_MS: "50",
      ...opts.env,
      ...env,
    });
    const log = createLogger({ app: "hub-test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
    return startHub(config, { log, passwordCost: FAST_HASH, secretCost: FAST_HASH, ...opts.hubOptions });
  };
  let hub = await boot();
  let ownerToken: string | null = null;

  const t: TestHub = {
    get hub() {
      return hub;
    },
    get url() {
      return `http://127.0.0.1:${hub.httpPort}`;
    },
    get mqttUrl() {
      return `mqtt://127.0.0.1:${hub.mqttPort}`;
    },
    dataDir,
    api(path, init = {}) {
      const headers: Record<string, string> = { ...init.headers };
      if (init.body !== undefined) headers["content-type"] ??= "application/json";
      const token = init.token === undefined ? ownerToken : init.token;
      if (token) headers.authorization = `Bearer ${token}`;
      return fetch(t.url + path, {
        method: init.method ?? (init.body === undefined ? "GET" : "POST"),
        headers,
        body: init.body === undefined ? undefined : typeof init.body === "string" ? init.body : JSON.stringify(init.body),
      });
    },
    async owner() {
      if (ownerToken) return ownerToken;
      const reg = await t.api("/auth/register", { body: OWNER, token: null });
      if (reg.status !== 201 && reg.status !== 401) throw new Error(`register failed: ${reg.status} ${await reg.text()}`);
      const res = await t.api("/auth/login", { body: OWNER, token: null });
      if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
      ownerToken = ((await res.json()) as { access_token: string }).access_token;
      return ownerToken;
    },
    async pair(deviceId, o = {}) {
      await t.owner();
      const code = o.code ?? `code-${deviceId}-secret`;
      const res = await t.api("/devices", { body: { device_id: deviceId, name: o.name ?? `Plug ${deviceId}`, pairing_code: code, ...(o.family ? { family: o.family } : {}) } });
      if (res.status !== 201) throw new Error(`pairing failed: ${res.status} ${await res.text()}`);
      return code;
    },
    async restart(env) {
      await hub.close();
      hub = await boot(env);
    },
    async close(o = {}) {
      await hub.close();
      if (!o.keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return t;
}
