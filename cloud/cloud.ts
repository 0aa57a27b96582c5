// Wires the cloud's modules together. main.ts (the composition root) reads the environment and calls
// startCloud; tests call it too, on port 0, against a real PostgreSQL/PGlite and a real InfluxDB.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ScryptOptions } from "node:crypto";
import type { Logger } from "../shared/logger.js";
import { systemClock, type Clock } from "../shared/clock.js";
import type { HealthResponse } from "../shared/schemas/health.js";
import type { CloudConfig } from "./config.js";
import { openCloudDb, type CloudDb } from "./db/open-db.js";
import { createCloudMetrics, type CloudMetrics } from "./metrics.js";
import { CloudBus } from "./bus.js";
import { TokenService } from "./auth/token-service.js";
import { AccountService } from "./auth/account-service.js";
import { HubService } from "./hubs/hub-service.js";
import { DeviceService } from "./devices/device-service.js";
import { CommandService } from "./devices/command-service.js";
import { InfluxV1 } from "./timeseries/influx-v1.js";
import { RollupStore } from "./timeseries/rollup-store.js";
import type { HubLink } from "./link/hub-link.js";
import { buildCloudApi, cloudRequestListener } from "./api/app.js";
import { attachLiveSocket } from "./api/ws.js";
import { SyncService } from "./sync/sync-service.js";
import { LinkServer } from "./link/link-server.js";
import { ScheduleService } from "./schedules/schedule-service.js";
import { LocalGrantService } from "./hubs/local-grant-service.js";

export interface CloudOptions {
  log: Logger;
  clock?: Clock;
  /** Cheaper hashing for tests; production uses the defaults in auth/secrets.ts. */
  passwordCost?: ScryptOptions;
  secretCost?: ScryptOptions;
  link?: HubLink;
  /** InfluxDB write retries (tests shorten the backoff). */
  influxRetry?: { attempts: number; baseMs: number; maxMs: number };
  wsMaxBufferedBytes?: number;
  /** Hub link ping interval (default 15 s). */
  linkPingMs?: number;
  /**
   * How long this process trusts a sign-in check, a device-access answer or a latest state read from the database
   * (default 2 s): the bound for changes made by another cloud process; its own changes apply at once.
   */
  recheckMs?: number;
}

export interface Cloud {
  readonly httpPort: number;
  readonly db: CloudDb;
  readonly bus: CloudBus;
  readonly metrics: CloudMetrics;
  readonly tokens: TokenService;
  readonly accounts: AccountService;
  readonly hubs: HubService;
  readonly devices: DeviceService;
  readonly rollups: RollupStore;
  readonly link: LinkServer;
  close(): Promise<void>;
}

export const VERSION = "0.1.0";

export async function startCloud(config: Readonly<CloudConfig>, o: CloudOptions): Promise<Cloud> {
  const { log } = o;
  const clock = o.clock ?? systemClock;
  const startedAt = clock.now();
  const metrics = createCloudMetrics();
  const bus = new CloudBus();
  const db = await openCloudDb({ dataDir: config.dataDir, databaseUrl: config.databaseUrl }, log);
  const linkServer = new LinkServer(db.orm, bus, clock, log, metrics, { pingMs: o.linkPingMs });
  const link: HubLink = o.link ?? linkServer;
  try {
    const tokens = await TokenService.open(
      { dataDir: config.dataDir, privateKeyPem: config.jwt.privateKeyPem, issuer: config.jwt.issuer, accessTtlSec: config.tokens.accessTtlSec },
      log,
    );
    const accounts = new AccountService(db.orm, tokens, clock, log, {
      refreshTtlSec: config.tokens.refreshTtlSec,
      loginBurst: config.login.burst,
      loginRefillSec: config.login.refillSec,
      passwordCost: o.passwordCost,
      recheckMs: o.recheckMs,
    });
    const hubs = new HubService(db.orm, link, bus, clock, log, { claimTtlSec: config.claim.ttlSec, claimBurst: config.claim.burst, claimRefillSec: config.claim.refillSec });
    const devices = new DeviceService(db.orm, hubs, bus, clock, log, { secretCost: o.secretCost, recheckMs: o.recheckMs });
    const commands = new CommandService(db.orm, link, bus, clock, log, { ttlSec: config.commandTtlSec, waitMs: config.commandWaitMs, onStatus: (status) => metrics.commands.inc({ status }) });
    const influx = new InfluxV1(
      {
        url: config.influx.url,
        user: config.influx.user,
        password: config.influx.password,
        token: config.influx.token,
        timeoutMs: config.influx.timeoutMs,
        writeAttempts: o.influxRetry?.attempts,
        retryBaseMs: o.influxRetry?.baseMs,
        retryMaxMs: o.influxRetry?.maxMs,
      },
      log,
      { onWrite: (outcome, n) => metrics.influxWrites.inc({ outcome }, n), onRetry: () => metrics.influxRetries.inc() },
    );
    const rollups = new RollupStore(influx, log, { dbPrefix: config.influx.dbPrefix, createDatabases: config.influx.createDatabases });
    // InfluxDB down at start is "retry later", not "fix your config": the cloud serves everything else and
    // creates the databases on the first time-series call that reaches InfluxDB.
    await rollups.ensureDatabases().catch((err: unknown) => log.warn({ err: (err as Error).message }, "InfluxDB not ready at start; will retry on use"));

    const hubLinkStates = async () => {
      if (o.link) return null; // a test's own link double: no per-hub states
      return linkServer.linkStates(clock.now()).catch((err: unknown) => {
        log.warn({ err: (err as Error).message }, "hub link states not counted");
        return null;
      });
    };

    async function health(): Promise<HealthResponse> {
      const dbStatus = await db.ping().then(
        () => ({ status: "healthy" as const, backend: db.backend, last_error: null }),
        (err: unknown) => ({ status: "unhealthy" as const, backend: db.backend, last_error: (err as Error).message }),
      );
      const influxStatus = await influx.ping().then(
        () => ({ status: "healthy" as const, last_error: null }),
        () => ({ status: "unhealthy" as const, last_error: influx.lastError }),
      );
      const components: HealthResponse["components"] = {
        database: dbStatus,
        // Without InfluxDB the cloud still serves accounts, devices and commands: degraded, not down.
        influxdb: { ...influxStatus, status: influxStatus.status === "healthy" ? "healthy" : "degraded" },
        // connected_hubs as in the seed; hubs: claimed hubs by link state, bounded (GET /hubs has each hub's).
        link: { status: "healthy", connected_hubs: link.connectedCount(), hubs: await hubLinkStates() },
      };
      const statuses = Object.values(components).map((c) => c.status);
      return {
        status: statuses.includes("unhealthy") ? "unhealthy" : statuses.includes("degraded") ? "degraded" : "healthy",
        timestamp: new Date(clock.now()).toISOString(),
        version: VERSION,
        uptime_s: Math.round((clock.now() - startedAt) / 1000),
        components,
      };
    }

    const sync = new SyncService(db.orm, rollups, bus, clock, log, metrics);
    const hubSync = { sync, link: linkServer };
    const schedules = new ScheduleService(db.orm, devices, hubs, bus, clock, log);
    const localGrants = new LocalGrantService(db.orm, hubs, tokens, (hubId) => linkServer.localApiUrl(hubId), clock, log, { ttlSec: config.grantTtlSec });
    const app = buildCloudApi({ accounts, hubs, devices, commands, rollups, metrics, health, log, clock, corsOrigins: config.corsOrigins, hubRegistrationsPerHour: config.hubRegistrationsPerHour, trustProxy: config.trustProxy, hubSync, localGrants, schedules });
    const server: Server = createServer(cloudRequestListener(app, { accounts, devices, metrics }));
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    const live = attachLiveSocket(server, { accounts, devices, hubs, bus, metrics, log, allowedOrigins: config.corsOrigins, maxBufferedBytes: o.wsMaxBufferedBytes });
    if (!o.link) {
      linkServer.start({ server, authenticateHub: (id, secret) => hubs.authenticateHub(id, secret), setLatest: (hubId, s) => devices.setLatest(hubId, s), publicKeyPem: tokens.publicKeyPem, issuer: tokens.issuer });
    }
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.http.port, config.http.host, () => resolve());
    });
    const httpPort = (server.address() as AddressInfo).port;
    log.info({ port: httpPort, database: db.backend }, "cloud api listening");

    let closing: Promise<void> | null = null;
    return {
      httpPort,
      db,
      bus,
      metrics,
      tokens,
      accounts,
      hubs,
      devices,
      rollups,
      link: linkServer,
      close() {
        closing ??= (async () => {
          live.close();
          linkServer.close();
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          });
          await db.close();
          log.info("cloud stopped");
        })();
        return closing;
      },
    };
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
}
