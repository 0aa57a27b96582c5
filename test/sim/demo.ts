// `npm start`: the hub with a handful of simulated plugs, a demo owner, and a banner saying how to try it.
// The hub runs as its own process (hub/main.ts, the composition root), exactly as `npm run hub` runs it.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SIM_FAMILIES, simDeviceId, startSimPlug, type SimPlug } from "./sim-plug.js";
import { loadTraces } from "./traces.js";
import { pairingCodeFor, familyAt } from "./cli.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const env = process.env;
const dataDir = resolve(env.HUB_DATA_DIR ?? join(ROOT, "data", "demo"));
const httpPort = Number(env.HUB_HTTP_PORT ?? 8080);
const mqttPort = Number(env.HUB_MQTT_PORT ?? 1883);
// A mix of every family, round-robin: the default 5 are 2 native, 1 Tasmota, 1 Shelly Gen1, 1 Shelly Gen2.
const plugCount = Number(env.DEMO_PLUGS ?? 5);
const api = `http://127.0.0.1:${httpPort}`;

async function main() {
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(dataDir, "hub.log");
  const hub = spawn(join(ROOT, "node_modules", ".bin", "tsx"), [join(ROOT, "hub", "main.ts")], {
    cwd: ROOT,
    env: { ...env, HUB_DATA_DIR: dataDir, HUB_HTTP_PORT: String(httpPort), HUB_MQTT_PORT: String(mqttPort), HUB_PUBLIC_HOST: env.HUB_PUBLIC_HOST ?? "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = createWriteStream(logFile, { flags: "a" });
  hub.stdout.pipe(log);
  hub.stderr.on("data", (c: Buffer) => process.stderr.write(c));
  const hubExit = new Promise<number | null>((r) => hub.once("exit", (code) => r(code)));
  void hubExit.then((code) => {
    if (!stopping) {
      console.error(`hub exited unexpectedly (code ${code}); see ${logFile}`);
      process.exit(1);
    }
  });

  let stopping = false;
  const plugs: SimPlug[] = [];
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log("\nstopping plugs and hub…");
    await Promise.allSettled(plugs.map((p) => p.close()));
    hub.kill("SIGTERM");
    const code = await hubExit;
    log.end();
    process.exit(code ?? 0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());

  await waitForHealth();
  const owner = await demoOwner();
  const token = await login(owner);
  const traces = loadTraces();
  for (let i = 0; i < plugCount; i++) {
    const family = familyAt("mix", i);
    const deviceId = simDeviceId(family, "demo-", i);
    const trace = traces[i % traces.length]!;
    const code = pairingCodeFor(deviceId);
    const res = await fetch(`${api}/devices`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ device_id: deviceId, name: `Demo ${trace.appliance}`, pairing_code: code, family }),
    });
    if (res.status !== 201 && res.status !== 409) throw new Error(`pairing ${deviceId} failed: ${res.status} ${await res.text()}`);
    // Each family at its firmware's own cadence (native 1 s, Tasmota TelePeriod 300 s polled by the hub, Gen1 30 s, Gen2 on change).
    const plug = startSimPlug(family, { url: `mqtt://127.0.0.1:${mqttPort}`, deviceId, password: code, trace });
    plugs.push(plug);
    await plug.connected();
  }
  const mix = SIM_FAMILIES.map((f) => [f, plugs.filter((p) => p.family === f).length] as const)
    .filter(([, n]) => n > 0)
    .map(([f, n]) => `${n} ${f}`)
    .join(", ");
  console.log(`
Smart Plug Hub is running with ${plugCount} simulated plugs: ${mix}
(real appliance traces from tracebase, ODbL).

  Local API     ${api}          (docs: ${api}/docs)
  MQTT broker   mqtt://127.0.0.1:${mqttPort}
  Demo owner    ${owner.email} / ${owner.password}   (saved in ${join(dataDir, "demo-owner.json")})
  Hub log       ${logFile}
  Plugs         ${plugs.map((p) => `${p.deviceId} (${p.family})`).join("\n                ")}

Try it:
  TOKEN=$(curl -s ${api}/auth/login -H 'content-type: application/json' \\
    -d '{"email":"${owner.email}","password":"${owner.password}"}' | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')
  curl -s ${api}/devices -H "authorization: Bearer $TOKEN"
  curl -s -X POST ${api}/devices/demo-001/command -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"command":"relay_toggle"}'
  curl -s "${api}/devices/demo-001/telemetry?interval=1m&start=$(date -u -d '-10 min' +%FT%TZ)" -H "authorization: Bearer $TOKEN"

Contains information from the tracebase data set, which is made available at http://www.tracebase.org
under the Open Database License (ODbL). Press Ctrl-C to stop.
`);
}

async function waitForHealth() {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${api}/health`)).ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the hub did not answer on ${api}/health within 30 s`);
}

async function demoOwner(): Promise<{ email: string; password: string }> {
  const file = join(dataDir, "demo-owner.json");
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as { email: string; password: string };
  const owner = { email: "demo@hub.local", password: randomBytes(9).toString("base64url") };
  const res = await fetch(`${api}/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...owner, name: "Demo owner" }) });
  if (res.status !== 201) throw new Error(`this data dir already has an owner but no ${file}; use another HUB_DATA_DIR (${res.status})`);
  writeFileSync(file, JSON.stringify(owner), { mode: 0o600 });
  return owner;
}

async function login(owner: { email: string; password: string }): Promise<string> {
  const res = await fetch(`${api}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(owner) });
  if (!res.ok) throw new Error(`demo login failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
