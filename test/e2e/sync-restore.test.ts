// Issue 6, "nothing acknowledged is ever lost", across a restore from a backup (README "Backup and restore"): the
// restored database's sequence rewinds to the backup's, so rows the hub queues after the restore get sequences the
// cloud has already stored (for changes made after the backup) and would skip as redelivered. The hub checks its
// numbering against the cloud's synced_seq before it sends (hub/sync/outbox.ts checkSequence) and renumbers.
// Real processes: the hub as its own process (restarted, killed with SIGKILL), its own backup command, a real cloud
// and InfluxDB behind the fault proxy, a real MQTT plug.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import Database from "better-sqlite3";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { SERVICE_START_MS, startTestCloud, type TestCloud } from "../helpers/cloud.js";
import { freePort, spawnHub, type HubProcess } from "../helpers/hub-process.js";
import { connectNativePlug, eventually, telemetry } from "../helpers/mqtt.js";
import { CloudFaultProxy } from "../helpers/cloud-fault-proxy.js";
import { OWNER } from "../helpers/hub.js";
import { MIN, cloudRollups, hubRollups, sameRollups } from "./sync-helpers.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const HOUR = 3_600_000;

let influx: TestInflux;
beforeAll(async () => {
  influx = await startInflux();
}, SERVICE_START_MS);
afterAll(async () => {
  await influx?.close();
});

describe("issue 6: hub restored from a backup", () => {
  it(
    "issue 6: a hub restored from a backup loses nothing it syncs afterwards — changes made after the restore (while the cloud is unreachable, across a kill -9) reach the cloud exactly once, also when an answer is lost (F8) or the hub dies after the cloud committed (F2)",
    async () => {
      const T0 = Math.floor(Date.now() / MIN) * MIN;
      const cloud: TestCloud = await startTestCloud({ influxUrl: influx.url });
      const proxy = await CloudFaultProxy.start(() => cloud.cloud.httpPort);
      const dataDir = mkdtempSync(join(tmpdir(), "hub-restore-"));
      const backup = join(mkdtempSync(join(tmpdir(), "hub-restore-backup-")), "hub-backup.sqlite");
      const [httpPort, mqttPort] = [await freePort(), await freePort()];
      const env = {
        HUB_CLOUD_URL: proxy.url,
        HUB_SYNC_INTERVAL_MS: "200",
        HUB_ROLLUP_INTERVAL_MS: "200",
        HUB_SYNC_BACKOFF_BASE_MS: "100",
        HUB_SYNC_BACKOFF_MAX_S: "1",
        HUB_SYNC_TIMEOUT_MS: "2000",
        HUB_TIMEZONE: "UTC",
      };
      const start = () => spawnHub({ dataDir, httpPort, mqttPort, env });
      let hub: HubProcess = await start();
      const CODE = "code-r6-kitchen-secret";
      const DEVICE = "r6-kitchen";

      const api = async (path: string, init: { method?: string; body?: unknown; token?: string } = {}) =>
        fetch(`http://127.0.0.1:${httpPort}${path}`, {
          method: init.method ?? (init.body === undefined ? "GET" : "POST"),
          headers: { ...(init.body === undefined ? {} : { "content-type": "application/json" }), ...(init.token ? { authorization: `Bearer ${init.token}` } : {}) },
          body: init.body === undefined ? undefined : JSON.stringify(init.body),
        });
      const login = async () => {
        const reg = await api("/auth/register", { body: OWNER });
        expect([201, 401, 409]).toContain(reg.status);
        const res = await api("/auth/login", { body: OWNER });
        expect(res.status).toBe(200);
        return ((await res.json()) as { access_token: string }).access_token;
      };
      const rename = async (name: string) => {
        const res = await api(`/devices/${DEVICE}`, { method: "PATCH", token: await login(), body: { name } });
        expect(res.status).toBe(200);
      };
      const readDb = <T>(fn: (db: Database.Database) => T): T => {
        const db = new Database(join(dataDir, "hub.sqlite"), { readonly: true });
        try {
          return fn(db);
        } finally {
          db.close();
        }
      };
      const idx = () => readDb((db) => (db.prepare("SELECT idx FROM devices WHERE device_id = ?").get(DEVICE) as { idx: number }).idx);
      /**
       * Late readings at :00 and :30 of each minute in [from, to), the relay flipping with each one, then one more at
       * :15 of the first minute (relay unchanged): it marks the whole span for re-folding once all the others are stored,
       * so the rollups are the fold of all of them (the rollup service can miss a later minute marked while it re-folds).
       */
      let relay = false;
      const publish = async (from: number, to: number) => {
        const plug = await connectNativePlug(`mqtt://127.0.0.1:${mqttPort}`, DEVICE, CODE);
        const send = (ts: number) => plug.publishAsync(`smartplug/${DEVICE}/telemetry`, telemetry({ ts, power: 100 + ((ts / 15_000) % 50), relay }), { qos: 1 });
        try {
          for (let ts = from; ts < to; ts += 30_000) {
            relay = !relay;
            await send(ts);
          }
          await send(from + 15_000);
        } finally {
          await plug.endAsync();
        }
      };
      const folded = (from: number, to: number) =>
        eventually(
          async () => readDb((db) => (db.prepare("SELECT count(*) AS n FROM rollup_1m WHERE device = ? AND bucket >= ? AND bucket < ?").get(idx(), from, to) as { n: number }).n),
          (n) => n === (to - from) / MIN,
          `rollups of [${new Date(from).toISOString()}, ${new Date(to).toISOString()}) folded`,
          15_000,
        );
      const health = async () => (await (await api("/health")).json()) as { components: { sync: { queue_depth: number; hub_id: string } } };
      const drained = async () => {
        await eventually(health, (h) => h.components.sync.queue_depth === 0, "outbox drained", 20_000);
      };
      const cloudRelayRows = async () =>
        (await cloud.cloud.metrics.registry.getSingleMetric("cloud_sync_rows_total")?.get())?.values.find((v) => v.labels.kind === "relay")?.value ?? 0;
      const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(await (await api("/metrics")).text())?.[1] ?? "NaN");
      const outboxRelays = () => readDb((db) => (db.prepare("SELECT count(*) AS n FROM sync_outbox WHERE kind = 'relay'").get() as { n: number }).n);
      const isQuery = (body: Buffer) => (JSON.parse(gunzipSync(body).toString()) as { query?: string }).query === "synced_seq";

      try {
        // --- before the backup: a claimed hub, a plug, rollups, all synced ---
        const token = await login();
        expect((await api("/devices", { token, body: { device_id: DEVICE, name: "Kitchen A", pairing_code: CODE } })).status).toBe(201);
        const st = await eventually(async () => (await (await api("/cloud", { token })).json()) as { registered: boolean; claim_code: string | null; hub_id: string }, (s) => s.registered && typeof s.claim_code === "string", "hub registered");
        const owner = await cloud.user("restore-owner");
        expect((await cloud.api("/hubs/claim", { body: { claim_code: st.claim_code }, token: owner.token })).status).toBe(200);
        const hubId = st.hub_id;
        const cloudDevice = async () => (await cloud.api(`/devices/${DEVICE}`, { token: owner.token })).json();
        await publish(T0 - 90 * MIN, T0 - 80 * MIN);
        await folded(T0 - 90 * MIN, T0 - 80 * MIN);
        await drained();

        // --- the backup, with the hub's own command, while it runs ---
        const { stdout } = await run(join(ROOT, "node_modules/.bin/tsx"), ["hub/main.ts", "backup", backup], { cwd: ROOT, env: { ...process.env, HUB_DATA_DIR: dataDir } });
        expect(stdout).toMatch(/integrity ok/);
        const backupSeq = (() => {
          const db = new Database(backup, { readonly: true });
          try {
            return (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'sync_outbox'").get() as { seq: number }).seq;
          } finally {
            db.close();
          }
        })();

        // --- after the backup: more changes, synced (the cloud's synced_seq moves past the backup's sequence) ---
        await rename("Kitchen B");
        await publish(T0 - 70 * MIN, T0 - 40 * MIN);
        await folded(T0 - 70 * MIN, T0 - 40 * MIN);
        await drained();
        await eventually(cloudDevice, (d) => d.name === "Kitchen B", "rename B in the cloud");
        const cloudSeqB = ((await (await api("/cloud", { token: await login() })).json()) as { uplink: { acked_seq: number } }).uplink.acked_seq;
        const phaseB = (await cloudRollups(influx.url, cloud.influxPrefix, hubId, "1m")).filter((p) => p.ts >= T0 - 70 * MIN && p.ts < T0 - 40 * MIN);
        expect(phaseB).toHaveLength(30);
        await hub.kill("SIGTERM");

        // --- the restore: stop, replace hub.sqlite, start — with the cloud unreachable for a while ---
        for (const f of ["hub.sqlite", "hub.sqlite-wal", "hub.sqlite-shm"]) rmSync(join(dataDir, f), { force: true });
        copyFileSync(backup, join(dataDir, "hub.sqlite"));
        proxy.fault = { kind: "down" };
        proxy.linkDown = true;
        proxy.dropConnections();
        const relaysBefore = await cloudRelayRows();
        hub = await start();
        await rename("Kitchen C");
        await publish(T0 - 30 * MIN, T0 - 27 * MIN);
        await folded(T0 - 30 * MIN, T0 - 27 * MIN);
        // Killed while offline, started again: what the first process queued is still checked before it is sent.
        await hub.kill("SIGKILL");
        hub = await start();
        await publish(T0 - 27 * MIN, T0 - 25 * MIN);
        await folded(T0 - 30 * MIN, T0 - 25 * MIN);
        const queued = readDb((db) => db.prepare("SELECT count(*) AS n, max(seq) AS max FROM sync_outbox").get() as { n: number; max: number });
        const relaysC = outboxRelays();
        console.log(`[restore] backup at seq ${backupSeq}; cloud synced to ${cloudSeqB} after it; ${queued.n} rows queued after the restore up to seq ${queued.max}, ${relaysC} relay changes`);
        // The case of the bug: every row queued since the restore carries a sequence the cloud has already passed.
        expect(queued.max).toBeLessThanOrEqual(cloudSeqB);
        expect(queued.n).toBeGreaterThan(5);
        expect(relaysC).toBe(10);
        expect(readDb((db) => db.prepare("SELECT value FROM meta WHERE key = 'sync_seq_unchecked_after'").get())).toEqual({ value: String(backupSeq) });

        // --- the cloud is back; the first batch's answer is lost after the cloud committed it (F8) ---
        let firstBatch = true;
        proxy.fault = {
          kind: "hook",
          onSync: async (body) => {
            if (isQuery(body) || !firstBatch) return "forward";
            firstBatch = false;
            return "forward-then-drop";
          },
        };
        proxy.linkDown = false;
        await eventually(cloudDevice, (d) => d.name === "Kitchen C", "rename C in the cloud", 20_000);
        await drained();
        expect(firstBatch).toBe(false);
        expect(proxy.syncRequests.some((r) => r.outcome === "forward-then-drop")).toBe(true);
        expect(await metric("hub_sync_sequence_rewinds_total")).toBe(1);
        expect(await metric("hub_sync_renumbered_rows_total")).toBeGreaterThanOrEqual(queued.n);
        expect(hub.lines.some((l) => l.includes("renumbered from"))).toBe(true);
        expect(readDb((db) => db.prepare("SELECT value FROM meta WHERE key = 'sync_seq_unchecked_after'").get())).toBeUndefined();
        // Exactly once: every relay change made after the restore is stored by the cloud once, none skipped, none twice.
        await eventually(cloudRelayRows, (n) => n - relaysBefore === relaysC, "relay changes after the restore stored once", 10_000);
        await new Promise((r) => setTimeout(r, 500));
        expect((await cloudRelayRows()) - relaysBefore).toBe(relaysC);
        expect((await cloudDevice()).relay_state).toBe(relay);

        // Rollups: every 1-minute rollup the hub has is in InfluxDB once with the hub's values; the cloud also keeps
        // what it acknowledged before the restore (the minutes made after the backup, which the restored hub lacks).
        const hub1m = readDb((db) => hubRollups(db, "1m"));
        const cloud1m = await cloudRollups(influx.url, cloud.influxPrefix, hubId, "1m");
        const diff = sameRollups(hub1m, cloud1m);
        const at = (k: string) => (Number(k.split("@")[1]) - T0) / MIN;
        if (diff.different.length) console.log("DIFF", diff.different.map(at), diff.different.map((k) => [hub1m.get(k), cloud1m.find((c) => `${c.device}@${c.ts}` === k)]));
        expect(diff.missing).toEqual([]);
        expect(diff.different).toEqual([]);
        expect(diff.extra.every((k) => /@(\d+)$/.test(k) && Number(/@(\d+)$/.exec(k)![1]) >= T0 - 70 * MIN && Number(/@(\d+)$/.exec(k)![1]) < T0 - 40 * MIN)).toBe(true);
        expect(cloud1m.filter((p) => p.ts >= T0 - 70 * MIN && p.ts < T0 - 40 * MIN)).toHaveLength(30);
        const afterRestore = [...hub1m.values()].filter((p) => p.ts >= T0 - 30 * MIN);
        expect(afterRestore).toHaveLength(5);
        // The (complete) hours the restored hub rolled up again are the hub's in the cloud too.
        const hours = new Set(afterRestore.map((p) => Math.floor(p.ts / HOUR) * HOUR));
        const hub1h = new Map([...readDb((db) => hubRollups(db, "1h"))].filter(([, p]) => hours.has(p.ts)));
        const cloud1h = (await cloudRollups(influx.url, cloud.influxPrefix, hubId, "1h")).filter((p) => hub1h.has(`${DEVICE}@${p.ts}`));
        expect(sameRollups(hub1h, cloud1h)).toEqual({ missing: [], extra: [], different: [] });

        // --- F2 after the renumbering: the hub dies just after the cloud committed a batch; the restarted hub does not
        // renumber again (its rows are the cloud's), and the resent batch is stored once ---
        proxy.fault = { kind: "down" };
        await rename("Kitchen D");
        await publish(T0 - 20 * MIN, T0 - 19 * MIN);
        await folded(T0 - 20 * MIN, T0 - 19 * MIN);
        const relaysD = outboxRelays();
        expect(relaysD).toBe(2);
        const beforeD = await cloudRelayRows();
        let killed = false;
        proxy.fault = {
          kind: "hook",
          onSync: async (body) => {
            if (isQuery(body) || killed) return "forward";
            killed = true;
            await hub.kill("SIGKILL");
            return "forward"; // the cloud commits after the hub died
          },
        };
        await eventually(async () => killed, (k) => k, "killed around a batch", 20_000);
        hub = await start();
        await eventually(cloudDevice, (d) => d.name === "Kitchen D", "rename D in the cloud", 20_000);
        await drained();
        await eventually(cloudRelayRows, (n) => n - beforeD === relaysD, "relay changes stored once", 10_000);
        await new Promise((r) => setTimeout(r, 500));
        expect((await cloudRelayRows()) - beforeD).toBe(relaysD);
        expect(await metric("hub_sync_sequence_rewinds_total")).toBe(0);
        expect(hub.lines.some((l) => l.includes("renumbered from"))).toBe(false);
        const final = sameRollups(readDb((db) => hubRollups(db, "1m")), await cloudRollups(influx.url, cloud.influxPrefix, hubId, "1m"));
        expect([final.missing, final.different]).toEqual([[], []]);
      } finally {
        await hub.kill("SIGKILL");
        await proxy.close();
        await cloud.close();
      }
    },
    240_000,
  );
});
