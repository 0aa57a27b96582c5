// The hub as it ships, for the issue 3 and issue 4 figures: `npm run build` once, then
// `node dist/hub/main.mjs` in its own process with HUB_* variables (hub/config.ts), so /proc/<pid>
// describes the hub alone. An owner is registered and signed in; pairing goes through POST /devices.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { Child, ROOT, freePort, sleep, tempDir } from "./procs.js";
import { metricSum, parsePrometheus, type PromSample } from "./stats.js";

export const DIST_MAIN = join(ROOT, "dist", "hub", "main.mjs");
export const OWNER = { email: "bench@example.com", password: "bench owner password" };

/** Builds dist/hub once per bench run unless it is newer than every hub source (BENCH_NO_BUILD=1 skips). */
export function buildHub(log: (s: string) => void): void {
  if (process.env.BENCH_NO_BUILD === "1" && existsSync(DIST_MAIN)) return;
  log(`    npm run build (${DIST_MAIN})`);
  execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
}

export interface DistHub {
  child: Child;
  pid: number;
  httpPort: number;
  mqttPort: number;
  dataDir: string;
  base: string;
  token: string;
  /** fetch with the owner's token; body as JSON. */
  api(path: string, init?: { method?: string; body?: unknown }): Promise<Response>;
  metrics(): Promise<PromSample[]>;
  metric(name: string): Promise<number>;
  stop(): Promise<number | null>;
}

/** Starts `node dist/hub/main.mjs` on free ports and a data dir (fresh unless given); waits for /health. */
export async function startDistHub(o: { env?: Record<string, string>; dataDir?: string; register?: boolean } = {}): Promise<DistHub> {
  const dataDir = o.dataDir ?? tempDir("bench-dist-hub-");
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    HUB_DATA_DIR: dataDir,
    HUB_HTTP_HOST: "127.0.0.1",
    HUB_HTTP_PORT: String(httpPort),
    HUB_MQTT_HOST: "127.0.0.1",
    HUB_MQTT_PORT: String(mqttPort),
    HUB_PUBLIC_HOST: "127.0.0.1",
    HUB_LOG_LEVEL: "warn",
    HUB_SNTP_PORT: "off",
    HUB_ACCESS_TOKEN_TTL_S: "3600",
    ...o.env,
  };
  const proc = spawn(process.execPath, [DIST_MAIN], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  const child = new Child("hub", proc);
  const base = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!child.alive) throw new Error(`hub exited during start:\n${child.tail.text()}`);
    try {
      const r = await fetch(`${base}/health`);
      await r.text();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`hub did not answer /health in 60 s:\n${child.tail.text()}`);
      await sleep(100);
    }
  }
  let token = "";
  const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(base + path, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: { ...(init.body === undefined ? {} : { "content-type": "application/json" }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
  if (o.register !== false) {
    const reg = await api("/auth/register", { body: OWNER });
    if (reg.status !== 201 && reg.status !== 409 && reg.status !== 403) throw new Error(`register: ${reg.status} ${await reg.text()}`);
    const login = await api("/auth/login", { body: OWNER });
    if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`);
    token = ((await login.json()) as { access_token: string }).access_token;
  }
  const metrics = async () => parsePrometheus(await (await fetch(`${base}/metrics`)).text());
  return {
    child,
    pid: child.pid,
    httpPort,
    mqttPort,
    dataDir,
    base,
    get token() {
      return token;
    },
    api,
    metrics,
    metric: async (name) => metricSum(await metrics(), name),
    stop: () => child.stop(15_000),
  };
}

/** Pairs plugs through POST /devices, `concurrency` at a time; returns the failures. */
export async function pairAll(hub: DistHub, plugs: { deviceId: string; family: string; code: string }[], concurrency = 4): Promise<string[]> {
  const failures: string[] = [];
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (i < plugs.length) {
        const p = plugs[i++]!;
        const r = await hub.api("/devices", { body: { device_id: p.deviceId, name: p.deviceId, pairing_code: p.code, family: p.family } });
        if (r.status !== 201) failures.push(`${p.deviceId}: ${r.status} ${await r.text()}`);
        else await r.arrayBuffer();
      }
    }),
  );
  return failures;
}

/** Database + WAL size, bytes. */
export function dbFileBytes(dataDir: string): number {
  let b = 0;
  for (const s of ["", "-wal", "-shm"]) {
    try {
      b += statSync(join(dataDir, "hub.sqlite" + s)).size;
    } catch {
      /* absent */
    }
  }
  return b;
}
