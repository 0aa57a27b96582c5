// npm run sim -- --plugs 5 [--family native|tasmota|shelly-gen1|shelly-gen2|mix] [--api http://127.0.0.1:8080 --email E --password P]
// Starts simulated plugs against a hub's broker, optionally registering them through the hub's local API first.
import { createHmac } from "node:crypto";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SIM_FAMILIES, isValidDeviceId, simDeviceId, startSimPlug, type SimFamily, type SimPlug } from "./sim-plug.js";
import { loadTraces } from "./traces.js";
import { DEFAULT_TELE_PERIOD_S } from "./tasmota-payloads.js";

/** Every plug family, and "mix": round-robin over the four (plug 1 native, 2 Tasmota, 3 Gen1, 4 Gen2, 5 native…). */
export const SUPPORTED_FAMILIES = [...SIM_FAMILIES, "mix"] as const;
export type CliFamily = (typeof SUPPORTED_FAMILIES)[number];
const DEFAULT_SECRET = "smartplug-sim";
const SUMMARY_EVERY_MS = 10_000;
const API_TIMEOUT_MS = 10_000;

const USAGE = `Usage: npm run sim -- [options]

Simulated smart plugs that connect to the hub's MQTT broker and replay real appliance traces.

Options:
  --plugs N             number of plugs (default 5)
  --family F            plug family (default native; supported: ${SUPPORTED_FAMILIES.join(", ")});
                        mix = round-robin over the four families
  --mqtt URL            broker URL (default mqtt://127.0.0.1:1883)
  --prefix P            device id prefix (default sim-). Ids look like the real thing:
                          native       P001, P002, …
                          tasmota      Ptasmota-001, …           (Tasmota Topic = the device id)
                          shelly-gen1  shellyplug-s-7AD2F1        (hex derived from P and the index)
                          shelly-gen2  shellyplusplugs-80646fd031f8
  --interval-ms MS      reporting cadence: native telemetry (default 1000), Shelly Gen1 state period
                        (default 30000), Shelly Gen2 NotifyStatus check (default 1000)
  --tele-period S       Tasmota TelePeriod, seconds (default ${DEFAULT_TELE_PERIOD_S}); the hub polls Status 10 in between
  --qos 0|1             native telemetry QoS (default 1)
  --pairing-code CODE   one pairing code for every plug (default: derived per plug, see pairingCodeFor)
  --api URL             hub local API; with --email and --password, registers each plug first
  --email E             hub account email (with --api)
  --password P          hub account password (with --api)
  -h, --help            print this help

Traces: tracebase subset, ODbL. Contains information from the tracebase data set, which is made
available at http://www.tracebase.org under the Open Database License (ODbL).
`;

/**
 * Deterministic per-plug pairing code (16 hex chars: meets the hub's ≥ 8 printable chars), so re-running the
 * simulator after a 409 "already exists" still presents the code the hub stored the first time.
 */
export function pairingCodeFor(deviceId: string, secret: string = DEFAULT_SECRET): string {
  return createHmac("sha256", secret).update(deviceId).digest("hex").slice(0, 16);
}

export function deviceIdFor(prefix: string, index: number): string {
  return simDeviceId("native", prefix, index);
}

/** The family of plug `index` (0-based) for a --family choice. */
export function familyAt(family: CliFamily, index: number): SimFamily {
  return family === "mix" ? SIM_FAMILIES[index % SIM_FAMILIES.length]! : family;
}

class UsageError extends Error {}

interface SimConfig {
  plugs: number;
  family: CliFamily;
  mqtt: string;
  prefix: string;
  /** undefined: each family's own default. */
  intervalMs?: number;
  telePeriodSec: number;
  qos: 0 | 1;
  pairingCode?: string;
  api?: { url: string; email: string; password: string };
}

function parseIntArg(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}

export function parseSimArgs(argv: string[]): SimConfig | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      plugs: { type: "string", default: "5" },
      family: { type: "string", default: "native" },
      mqtt: { type: "string", default: "mqtt://127.0.0.1:1883" },
      prefix: { type: "string", default: "sim-" },
      "interval-ms": { type: "string" },
      "tele-period": { type: "string", default: String(DEFAULT_TELE_PERIOD_S) },
      qos: { type: "string", default: "1" },
      "pairing-code": { type: "string" },
      api: { type: "string" },
      email: { type: "string" },
      password: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const family = values.family;
  if (!(SUPPORTED_FAMILIES as readonly string[]).includes(family)) {
    throw new UsageError(`unsupported --family "${family}"; supported: ${SUPPORTED_FAMILIES.join(", ")}`);
  }
  const qos = parseIntArg("qos", values.qos, 0, 1) as 0 | 1;
  const config: SimConfig = {
    plugs: parseIntArg("plugs", values.plugs, 1, 10_000),
    family: family as SimConfig["family"],
    mqtt: values.mqtt,
    prefix: values.prefix,
    telePeriodSec: parseIntArg("tele-period", values["tele-period"], 1, 3600),
    qos,
  };
  if (values["interval-ms"] !== undefined) config.intervalMs = parseIntArg("interval-ms", values["interval-ms"], 100, 3_600_000);
  for (const i of [0, config.plugs - 1]) {
    const id = simDeviceId(familyAt(config.family, i), config.prefix, i);
    if (!isValidDeviceId(id)) throw new UsageError(`--prefix "${config.prefix}" gives the device id "${id}"; ids are 1–64 letters, digits, '_', '.', ':' or '-'`);
  }
  if (values["pairing-code"] !== undefined) config.pairingCode = values["pairing-code"];
  if (values.api !== undefined) {
    if (!values.email || !values.password) throw new UsageError("--api needs --email and --password");
    config.api = { url: values.api.replace(/\/+$/, ""), email: values.email, password: values.password };
  } else if (values.email || values.password) {
    throw new UsageError("--email and --password are only used with --api");
  }
  return config;
}

async function postJson(url: string, body: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: AbortSignal.timeout(API_TIMEOUT_MS) });
  } catch (err) {
    // fetch hides the socket error (ECONNREFUSED, …) in `cause`
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`hub API unreachable: POST ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the raw text for the error message
  }
  return { status: res.status, body: parsed };
}

async function login(api: NonNullable<SimConfig["api"]>): Promise<string> {
  const res = await postJson(`${api.url}/auth/login`, { email: api.email, password: api.password });
  const token = (res.body as { access_token?: unknown } | null)?.access_token;
  if (res.status !== 200 || typeof token !== "string") throw new Error(`login failed: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return token;
}

/** 201 created, 409 already registered (fine: the derived pairing code is the same as last time). */
export async function registerPlug(apiUrl: string, token: string, deviceId: string, family: SimFamily, name: string, pairingCode: string, derivedCode: boolean): Promise<string> {
  const res = await postJson(`${apiUrl}/devices`, { device_id: deviceId, name, pairing_code: pairingCode, family }, token);
  if (res.status === 201) return "registered";
  if (res.status === 409) return derivedCode ? "already registered" : "already registered (an explicit --pairing-code must match the stored one)";
  throw new Error(`registering ${deviceId} failed: HTTP ${res.status} ${JSON.stringify(res.body)}`);
}

async function run(config: SimConfig): Promise<void> {
  const traces = loadTraces();
  const specs = Array.from({ length: config.plugs }, (_, i) => {
    const family = familyAt(config.family, i);
    const deviceId = simDeviceId(family, config.prefix, i);
    return { family, deviceId, trace: traces[i % traces.length]!, password: config.pairingCode ?? pairingCodeFor(deviceId), registration: "not registered (no --api)" };
  });
  // Register everything before the first plug connects, so a failing API exits without half-started plugs.
  if (config.api) {
    const token = await login(config.api);
    for (const [i, spec] of specs.entries()) {
      spec.registration = await registerPlug(config.api.url, token, spec.deviceId, spec.family, `Sim ${spec.trace.appliance} ${i + 1}`, spec.password, config.pairingCode === undefined);
    }
  }
  const plugs: SimPlug[] = specs.map((spec) => {
    const plug = startSimPlug(spec.family, {
      url: config.mqtt,
      deviceId: spec.deviceId,
      password: spec.password,
      trace: spec.trace,
      intervalMs: config.intervalMs,
      telePeriodSec: config.telePeriodSec,
      qos: config.qos,
    });
    console.log(`${spec.deviceId} family=${spec.family} appliance="${spec.trace.appliance}" ${spec.registration}`);
    plug.connected().then(
      () => console.log(`${spec.deviceId} connected to ${config.mqtt}`),
      (err: unknown) => console.error(`${spec.deviceId} connection refused: ${err instanceof Error ? err.message : String(err)}`),
    );
    return plug;
  });

  // This ref'd timer is what keeps the process alive (the plugs' timers are unref'd).
  const summary = setInterval(() => {
    const sent = plugs.reduce((a, p) => a + p.sent, 0);
    const acked = plugs.reduce((a, p) => a + p.acked, 0);
    const connected = plugs.filter((p) => p.isConnected).length;
    const byFamily = SIM_FAMILIES.map((f) => [f, plugs.filter((p) => p.family === f)] as const)
      .filter(([, ps]) => ps.length > 0)
      .map(([f, ps]) => `${f}=${ps.filter((p) => p.isConnected).length}/${ps.length}`)
      .join(" ");
    console.log(`summary plugs=${plugs.length} connected=${connected} (${byFamily}) sent=${sent} acked=${acked}`);
  }, SUMMARY_EVERY_MS);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    clearInterval(summary);
    Promise.allSettled(plugs.map((p) => p.close())).then(() => {
      console.log(`closed ${plugs.length} plugs`);
      process.exit(0);
    }, () => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

async function main(argv: string[]): Promise<void> {
  let config: SimConfig | "help";
  try {
    config = parseSimArgs(argv);
  } catch (err) {
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown options and missing values
    console.error(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    process.exit(2);
  }
  if (config === "help") {
    console.log(USAGE);
    return;
  }
  try {
    await run(config);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}

// Run only as a script, so the demo can import pairingCodeFor without starting plugs.
function isMainModule(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isMainModule()) {
  void main(process.argv.slice(2));
}
