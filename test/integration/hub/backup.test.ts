import { afterEach, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, telemetry } from "../../helpers/mqtt.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
let t: TestHub;
afterEach(async () => {
  await t.close();
});

it("`npm run hub -- backup FILE` copies a running hub's database consistently", async () => {
  t = await startTestHub();
  const code = await t.pair("b1");
  const p = await connectNativePlug(t.mqttUrl, "b1", code);
  for (let i = 0; i < 20; i++) await p.publishAsync("smartplug/b1/telemetry", telemetry({ ts: Date.now() - 60_000 + i * 1000, power: i }), { qos: 1 });
  p.end(true);
  const target = join(t.dataDir, "backup.sqlite");
  const { stdout } = await run(join(ROOT, "node_modules/.bin/tsx"), ["hub/main.ts", "backup", target], { cwd: ROOT, env: { ...process.env, HUB_DATA_DIR: t.dataDir } });
  expect(stdout).toMatch(/backup written to .*backup\.sqlite: \d+ bytes, 20 raw readings, integrity ok/);
  const copy = new Database(target, { readonly: true });
  expect((copy.prepare("SELECT count(*) AS n FROM readings").get() as { n: number }).n).toBe(20);
  expect((copy.prepare("SELECT device_id FROM devices").all() as { device_id: string }[]).map((r) => r.device_id)).toEqual(["b1"]);
  copy.close();
  // Never overwrites an existing backup.
  await expect(run(join(ROOT, "node_modules/.bin/tsx"), ["hub/main.ts", "backup", target], { cwd: ROOT, env: { ...process.env, HUB_DATA_DIR: t.dataDir } })).rejects.toThrow(/exists/);
});
