// Wires the hub's modules together. main.ts (the composition root) reads the environment and calls
// startHub; tests call it too, on port 0, so they boot the real hub (STYLE.md §1, §7).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { statSync } from "node:fs";
import type { ScryptOptions } from "node:crypto";
import type { Logger } from "../shared/logger.js";
import { systemClock, type Clock } from "../shared/clock.js";
import type { HubConfig } from "./config.js";
import type { HealthResponse } from "../shared/schemas/health.js";
import { openHubDb, type HubDb } from "./db/open-db.js";
import { HubBus } from "./bus.js";
import { createHubMetrics, counterByLabel, type HubMetrics } from "./metrics.js";
import { createAdapterRegistry } from "./adapters/index.js";
import type { PlugAdapter } from "./adapters/types.js";
import { GroupCommitter } from "./ingest/group-committer.js";
import { createPlugRouter } from "./ingest/plug-router.js";
import { DeviceService } from "./devices/device-service.js";
import { CommandService, type CommandSender } from "./devices/command-service.js";
import { Poller } from "./devices/poller.js";
import { RollupService } from "./rollups/rollup-service.js";
import { RetentionService } from "./rollups/retention.js";
import { ScheduleService } from "./schedules/schedule-service.js";
import { EnergyReports } from "./energy/energy-report.js";
import { AlertService } from "./alerts/alert-service.js";
import { StorageGuard } from "./db/storage-guard.js";
import { startSntpServer, type SntpServer } from "./time/sntp-server.js";
import { TokenService } from "./accounts/token-service.js";
import { AccountService } from "./accounts/account-service.js";
import { TelemetryQueries } from "./telemetry/telemetry-query.js";
import { startBroker, type Broker } from "./broker/broker.js";
import { buildHubApi } from "./api/app.js";
import { attachLiveSocket } from "./api/ws.js";
import { SyncService } from "./sync/sync-service.js";
import { GrantVerifier, isGrant } from "./sync/grants.js";

export interface HubOptions {
  log: Logger;
  clock?: Clock;
  adapters?: PlugAdapter[];
  /** Cheaper hashing for tests; production uses the defaults in devices/secrets.ts. */
  passwordCost?: ScryptOptions;
  secretCost?: ScryptOptions;
  maxPageCount?: number;
  /** false: no minute tick or clock-jump watch (tests that drive the clock call reconcileAll). */
  scheduleTimers?: boolean;
}

export interface Hub {
  readonly httpPort: number;
  readonly mqttPort: number;
  readonly db: HubDb;
  readonly bus: HubBus;
  readonly broker: Broker;
  readonly devices: DeviceService;
  readonly metrics: HubMetrics;
  readonly rollups: RollupService;
  readonly retention: RetentionService;
  readonly schedules: ScheduleService;
  readonly alerts: AlertService;
  readonly storage: StorageGuard;
  readonly sntp: SntpServer | null;
  readonly sync: SyncService;
  close(): Promise<void>;
}

const VERSION = "0.1.0";

export async function startHub(config: Readonly<HubConfig>, o: HubOptions): Promise<Hub> {
  const { log } = o;
  const clock = o.clock ?? systemClock;
  const startedAt = clock.now();
  const metrics = createHubMetrics();
  const bus = new HubBus();
  const db = openHubDb(config.dataDir, log, { maxPageCount: o.maxPageCount });
  const committer = new GroupCommitter({ intervalMs: config.ingest.commitIntervalMs, maxBatch: config.ingest.maxBatch, dbPath: db.path, maxPageCount: o.maxPageCount }, metrics, log);
  const adapters = createAdapterRegistry(o.adapters);
  const started: { broker?: Broker } = {};
  const devices = new DeviceService(db, committer, adapters, bus, metrics, log, clock, {
    stateFlushMs: config.stateFlushMs,
    maxGapMs: config.maxEnergyGapMs,
    publicHost: config.mqtt.publicHost,
    mqttPort: () => started.broker?.port ?? config.mqtt.port,
    secretCost: o.secretCost,
  });
  devices.start();
  const tokens = await TokenService.open(db, { accessTtlSec: config.tokens.accessTtlSec });
  const accounts = new AccountService(db, tokens, clock, log, {
    refreshTtlSec: config.tokens.refreshTtlSec,
    loginBurst: config.login.burst,
    loginRefillSec: config.login.refillSec,
    passwordCost: o.passwordCost,
  });

  const router = createPlugRouter({ adapters, devices, metrics, log, clock });
  const mqtt = await startBroker({ host: config.mqtt.host, port: config.mqtt.port, limits: config.limits, hooks: router }, log, metrics);
  started.broker = mqtt;
  bus.on("deviceRemoved", ({ deviceId }) => mqtt.disconnect(deviceId));

  const sendToPlugs: CommandSender = async (msgs) => {
    for (const m of msgs) await mqtt.publish(m.topic, m.payload, m.qos, m.retain ?? false);
  };
  const commands = new CommandService(
    db,
    committer,
    devices,
    sendToPlugs,
    bus,
    metrics,
    log,
    clock,
    { confirmTimeoutMs: config.commandTimeoutMs },
  );
  const poller = new Poller(devices, adapters, sendToPlugs, bus, clock, log, { intervalMs: config.pollIntervalMs });
  poller.start();
  const rollups = new RollupService(db, committer, devices, bus, clock, log, { maxGapMs: config.maxEnergyGapMs, timeZone: config.timeZone, graceMs: 5000, intervalMs: config.rollupIntervalMs });
  rollups.start();
  const retention = new RetentionService(db, committer, rollups, clock, log, { ...config.retention, intervalMs: 60_000, sliceRows: 5000 });
  retention.start();
  const schedules = new ScheduleService(db, committer, devices, commands, bus, clock, log, { timeZone: config.timeZone, timers: o.scheduleTimers ?? true });
  schedules.start();
  const sync = new SyncService(db, committer, devices, commands, schedules, bus, metrics, clock, log.child({ part: "sync" }), {
    ...config.sync,
    publicHost: config.mqtt.publicHost,
    mqttPort: () => mqtt.port,
    timeZone: config.timeZone,
  });
  await sync.start();
  if (sync.enabled) {
    const grants = new GrantVerifier(() => sync.access, () => sync.hubId, clock);
    accounts.grants = { isGrant, verify: (token) => grants.verify(token) };
  }
  const telemetry = new TelemetryQueries(db, rollups, { maxGapMs: config.maxEnergyGapMs, timeZone: config.timeZone });

  async function health(): Promise<HealthResponse> {
    const dbError = committer.lastError;
    let sizeBytes = 0;
    for (const suffix of ["", "-wal"]) {
      try {
        sizeBytes += statSync(db.path + suffix).size;
      } catch {
        /* no WAL yet */
      }
    }
    const dropped = await counterByLabel(metrics.dropped, "reason");
    const shed = await counterByLabel(metrics.shed, "reason");
    const refused = await counterByLabel(metrics.refused, "reason");
    const all = devices.list();
    const components: HealthResponse["components"] = {
      database: {
        status: dbError || storage.full ? "unhealthy" : db.integrityAfterCrash && db.integrityAfterCrash !== "ok" ? "degraded" : "healthy",
        size_bytes: sizeBytes,
        used_bytes: storage.usedBytes,
        budget_bytes: config.storage.budgetBytes,
        disk_free_bytes: Number.isFinite(storage.freeBytes) ? storage.freeBytes : null,
        storage_full: storage.reason,
        last_error: dbError?.message ?? null,
        integrity_after_unclean_shutdown: db.integrityAfterCrash,
      },
      mqtt: { status: "healthy", port: mqtt.port, clients: (await metrics.mqttClients.get()).values[0]?.value ?? 0, refused },
      ingest: { status: dbError || storage.full ? "unhealthy" : "healthy", pending: committer.pending, dropped, shed },
      devices: { status: "healthy", paired: all.length, online: all.filter((d) => d.status === "online").length },
    };
    if (sync.enabled) {
      const st = sync.status();
      // The hub works without the cloud: a cloud problem degrades, it never makes the hub unhealthy.
      // Drops are counted for good (persisted); they degrade sync for a day after the latest one.
      const droppedLately = st.outbox.last_dropped_at !== null && clock.now() - st.outbox.last_dropped_at < 86_400_000;
      const ok = st.uplink.state !== "credential_rejected" && st.uplink.consecutive_failures === 0 && !droppedLately;
      components.sync = {
        status: ok ? "healthy" : "degraded",
        hub_id: st.hub_id,
        claimed: st.claimed,
        link: st.link.state,
        uplink: st.uplink.state,
        last_error: st.uplink.last_error ?? st.link.last_error,
        last_success_at: st.uplink.last_success_at === null ? null : new Date(st.uplink.last_success_at).toISOString(),
        queue_depth: st.outbox.depth,
        queue_bytes: st.outbox.bytes,
        oldest_unsent_age_s: st.outbox.oldest_unsent_age_s,
        dropped: st.outbox.dropped,
        dead_lettered: st.outbox.dead_lettered,
      };
    }
    const statuses = Object.values(components).map((c) => c.status);
    return {
      status: statuses.includes("unhealthy") ? "unhealthy" : statuses.includes("degraded") ? "degraded" : "healthy",
      timestamp: new Date(clock.now()).toISOString(),
      version: VERSION,
      uptime_s: Math.round((clock.now() - startedAt) / 1000),
      components,
    };
  }

  const energy = new EnergyReports(db, telemetry, config.timeZone);
  const alerts = new AlertService(db, devices, bus, metrics, clock, log);
  alerts.start();
  const storage = new StorageGuard(db, committer, alerts, log, { ...config.storage, intervalMs: 5000 });
  storage.start();
  const sntp = config.sntpPort === null ? null : await startSntpServer({ host: config.mqtt.host, port: config.sntpPort }, clock, log);
  const app = buildHubApi({ accounts, devices, commands, telemetry, schedules, energy, alerts, sync, metrics, health, log, clock });
  const server: Server = createServer(app);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const live = attachLiveSocket(server, { accounts, devices, bus, metrics, log, allowedOrigins: config.corsOrigins });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.http.port, config.http.host, () => resolve());
  });
  const httpPort = (server.address() as AddressInfo).port;
  log.info({ port: httpPort }, "local api listening");
  // Where cloud users reach this API on the LAN with a local grant (issue 6 §7); HUB_PUBLIC_HOST is the LAN name.
  if (sync.enabled) sync.setLocalApiUrl(`http://${config.mqtt.publicHost.includes(":") ? `[${config.mqtt.publicHost}]` : config.mqtt.publicHost}:${httpPort}`);

  let closing: Promise<void> | null = null;
  return {
    httpPort,
    mqttPort: mqtt.port,
    db,
    bus,
    broker: mqtt,
    devices,
    metrics,
    rollups,
    retention,
    schedules,
    alerts,
    storage,
    sntp,
    sync,
    close() {
      closing ??= (async () => {
        sync.close();
        live.close();
        poller.close();
        schedules.close();
        alerts.close();
        storage.close();
        await sntp?.close();
        rollups.close();
        retention.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await mqtt.close();
        await devices.close();
        await committer.close();
        db.close();
        log.info("hub stopped");
      })();
      return closing;
    },
  };
}
