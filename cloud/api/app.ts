// The cloud's public API (issue 5): the seed's paths and shapes (the same as the hub's local API for devices,
// commands, telemetry, auth and health) plus hubs, claiming and sharing. Built without listening (STYLE.md).
import express, { type Request, type Response, type NextFunction } from "express";
import type { RequestListener } from "node:http";
import swaggerUi from "swagger-ui-express";
import type { Logger } from "../../shared/logger.js";
import type { Clock } from "../../shared/clock.js";
import { RegisterRequest, LoginRequest, RefreshRequest } from "../../shared/schemas/auth.js";
import { UpdateDeviceRequest, CommandRequest } from "../../shared/schemas/devices.js";
import { TelemetryQuery } from "../../shared/schemas/telemetry.js";
import { EnergyQuery, Tariff } from "../../shared/schemas/energy.js";
import {
  ChangePasswordRequest,
  ClaimHubRequest,
  CloudCreateDeviceRequest,
  LocalGrantRequest,
  RegisterHubRequest,
  ShareRequest,
  UpdateHubRequest,
  UpdateUserRequest,
  type CloudCommandStatus,
} from "../../shared/schemas/cloud.js";
import type { HealthResponse } from "../../shared/schemas/health.js";
import { NotFoundError, TooManyRequestsError, UnauthorizedError } from "../../shared/problem.js";
import type { AccountService } from "../auth/account-service.js";
import type { AccessClaims } from "../auth/token-service.js";
import type { HubService } from "../hubs/hub-service.js";
import type { LocalGrantService } from "../hubs/local-grant-service.js";
import { toDevice, type DeviceService, type LatestView } from "../devices/device-service.js";
import type { CommandService } from "../devices/command-service.js";
import type { RollupStore } from "../timeseries/rollup-store.js";
import { energyReport } from "../timeseries/energy-report.js";
import type { CloudMetrics } from "../metrics.js";
import type { Actor } from "../audit.js";
import { KeyedBuckets } from "../auth/rate-limit.js";
import { cors, jsonBody, notFound, problemHandler, validate } from "./http.js";
import { buildCloudOpenApi } from "./openapi.js";
import { redocPage, redocBundlePath } from "./redoc.js";
import { mountHubSync, type HubSyncDeps } from "./hub-sync.js";
import { mountSchedules } from "./schedules.js";
import type { ScheduleService } from "../schedules/schedule-service.js";

export interface CloudApiDeps {
  accounts: AccountService;
  hubs: HubService;
  devices: DeviceService;
  commands: CommandService;
  rollups: RollupStore;
  metrics: CloudMetrics;
  health: () => Promise<HealthResponse>;
  log: Logger;
  clock: Clock;
  corsOrigins: string[];
  hubRegistrationsPerHour: number;
  trustProxy: boolean | number | string;
  /** Issue 6: hub sync, link-side config, schedules, alerts and local grants (cloud/api/hub-sync.ts). */
  hubSync?: HubSyncDeps;
  /** Issue 6 §5: the hub's schedule routes, on the cloud's copy (cloud/api/schedules.ts). */
  schedules: ScheduleService;
  /** Issue 6 §7: POST /hubs/{id}/local-grant. */
  localGrants: LocalGrantService;
}

type Locals = { user: AccessClaims };
type Res = Response<unknown, Locals>;

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/;

function bearer(req: Request): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = BEARER.exec(h);
  if (!m) throw new UnauthorizedError("use 'Authorization: Bearer <access_token>'");
  return m[1]!;
}

/** The seed's TelemetryLatest. */
function latestBody(l: LatestView & { latestAt: Date }) {
  return {
    device_id: l.deviceId,
    timestamp: l.latestAt.toISOString(),
    voltage: l.voltage,
    current: l.current,
    power: l.power,
    energy_wh: l.energyWh === null ? null : Math.round(l.energyWh * 1000) / 1000,
    relay_state: l.relayOn,
  };
}

/** GET /devices/{id}/telemetry/latest in its plain form: no query, no percent-encoding, express's own spelling. */
const PLAIN_LATEST = /^\/devices\/([A-Za-z0-9._~:-]{1,200})\/telemetry\/latest$/;

/**
 * The HTTP listener: `app`, except that GET /devices/{id}/telemetry/latest is answered without express's router
 * and response helpers when every check is already answered in memory — the token verified, its sign-in checked
 * and the caller's access to the device resolved within `recheckMs`, and the device's latest state known (the
 * same answers the express route would use). Anything else goes to `app` unchanged: a cache miss, a missing or
 * malformed token, no reading yet, another URL form, HEAD, a conditional request (If-None-Match/If-Modified-Since)
 * or a cross-origin one (Origin: CORS). The answer is express's to the byte but for Date: the same status, body and
 * headers, with the ETag from express's own `etag fn`; test/integration/cloud/read-cache.test.ts compares them.
 * Why: express's per-request work (router walk, req/res prototypes, res.json) was most of this route's CPU once
 * the database left it (issue 5 figures: ≥ 3,000 req/s on one core).
 */
export function cloudRequestListener(app: express.Express, d: Pick<CloudApiDeps, "accounts" | "devices" | "metrics">): RequestListener {
  const etagOf = app.get("etag fn") as ((body: Buffer) => string) | undefined;
  const ok = d.metrics.httpRequests.labels({ status: "2xx" });
  return (req, res) => {
    if (req.method === "GET" && etagOf && req.url !== undefined) {
      const m = PLAIN_LATEST.exec(req.url);
      const h = req.headers;
      if (m && h.origin === undefined && h["if-none-match"] === undefined && h["if-modified-since"] === undefined && h.authorization !== undefined) {
        const token = BEARER.exec(h.authorization)?.[1];
        const claims = token === undefined ? undefined : d.accounts.authenticatedFromMemory(token);
        const l = claims && d.devices.latestFromMemory(claims.userId, m[1]!);
        if (l?.latestAt) {
          const body = Buffer.from(JSON.stringify(latestBody({ ...l, latestAt: l.latestAt })));
          res.writeHead(200, { "Content-Type": "application/json; charset=utf-8", "Content-Length": body.length, ETag: etagOf(body) });
          res.end(body);
          ok.inc();
          return;
        }
      }
    }
    void app(req, res);
  };
}

const COMMAND_HTTP: Record<CloudCommandStatus, number> = { queued: 202, sent: 202, confirmed: 200, offline: 409, timeout: 504, failed: 502, expired: 410, rejected: 422 };

export function buildCloudApi(d: CloudApiDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  // Behind a load balancer the client address (for sign-in and claim limits) comes from X-Forwarded-For,
  // trusted only from the configured proxies.
  app.set("trust proxy", d.trustProxy);
  app.set("query parser", "simple");
  app.use((_req, res, next) => {
    res.on("finish", () => d.metrics.httpRequests.inc({ status: `${Math.floor(res.statusCode / 100)}xx` }));
    next();
  });
  app.use(cors(d.corsOrigins));

  const ip = (req: Request) => req.ip ?? req.socket.remoteAddress ?? "?";
  const actorOf = (req: Request, res: Res): Actor => ({ userId: res.locals.user?.userId ?? null, ip: ip(req) });
  const auth = async (req: Request, res: Res, next: NextFunction) => {
    const token = bearer(req);
    if (!token) throw new UnauthorizedError();
    res.locals.user = await d.accounts.authenticate(token);
    next();
  };
  /** The calling hub, from `Authorization: Basic base64(hub_id:hub_secret)`. */
  const hubAuth = async (req: Request, res: Response<unknown, { hubId: string }>, next: NextFunction) => {
    const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? "");
    const [id, secret] = m ? Buffer.from(m[1]!, "base64").toString("utf8").split(":", 2) : [];
    if (!id || !secret) throw new UnauthorizedError("hubs authenticate with 'Authorization: Basic base64(hub_id:hub_secret)'");
    res.locals.hubId = await d.hubs.authenticateHub(id, secret);
    next();
  };
  const body = jsonBody();
  const uid = (res: Res) => res.locals.user.userId;
  const param = (req: Request, name: string) => String(req.params[name]);
  // Hub self-registration is unauthenticated: bound it per address so nobody fills the table.
  const registrations = new KeyedBuckets(d.hubRegistrationsPerHour / 3600, Math.max(10, Math.ceil(d.hubRegistrationsPerHour / 6)));

  // --- device reads, first: the busiest routes (issue 5 figures) match before the router walks every other route.
  // None of the routes below matches these paths, so the order changes nothing else.
  app.get("/devices/:id/telemetry/latest", auth, async (req, res: Res) => {
    const id = param(req, "id");
    const l = await d.devices.latest(await d.devices.resolveRef(uid(res), id), id);
    if (!l.latestAt) throw new NotFoundError(`device '${l.deviceId}' has not reported a reading yet`);
    res.json(latestBody({ ...l, latestAt: l.latestAt }));
  });
  app.get("/devices/:id/telemetry", auth, async (req, res: Res) => {
    const row = await d.devices.resolveRef(uid(res), param(req, "id"));
    const q = validate(TelemetryQuery, req.query);
    const end = q.end ? Date.parse(q.end) : d.clock.now();
    const start = q.start ? Date.parse(q.start) : end - 24 * 3600_000;
    const data = await d.rollups.query(row.hubId, row.deviceId, start, end, q.interval, q.fields);
    res.json({
      device_id: row.deviceId,
      start: new Date(start).toISOString(),
      end: new Date(end).toISOString(),
      interval: q.interval,
      fields: q.fields,
      data,
      total_points: data.length,
    });
  });
  app.get("/devices/:id/energy", auth, async (req, res: Res) => {
    const row = await d.devices.resolveRef(uid(res), param(req, "id"));
    const q = validate(EnergyQuery, req.query);
    const end = q.end ? Date.parse(q.end) : d.clock.now();
    const start = q.start ? Date.parse(q.start) : end - (q.period === "day" ? 7 : q.period === "week" ? 28 : 365) * 86_400_000;
    const { tariff, timeZone } = await d.hubs.settings(row.hubId);
    res.json(await energyReport(d.rollups, { hubId: row.hubId, deviceId: row.deviceId, period: q.period, startMs: start, endMs: end, timeZone, tariff }));
  });

  // --- accounts ---
  app.post("/auth/register", ...body, async (req, res: Res) => {
    const input = validate(RegisterRequest, req.body);
    res.status(201).json(await d.accounts.register(input, actorOf(req, res)));
  });
  app.post("/auth/login", ...body, async (req, res) => {
    res.json(await d.accounts.login(validate(LoginRequest, req.body), ip(req)));
  });
  app.post("/auth/refresh", ...body, async (req, res) => {
    res.json(await d.accounts.refresh(validate(RefreshRequest, req.body).refresh_token));
  });
  app.post("/auth/logout", ...body, async (req, res: Res) => {
    await d.accounts.logout(validate(RefreshRequest, req.body).refresh_token, actorOf(req, res));
    res.status(204).end();
  });
  app.get("/users/me", auth, async (_req, res: Res) => {
    res.json(await d.accounts.getUser(uid(res)));
  });
  app.patch("/users/me", auth, ...body, async (req, res: Res) => {
    res.json(await d.accounts.updateProfile(uid(res), validate(UpdateUserRequest, req.body), actorOf(req, res)));
  });
  app.post("/users/me/password", auth, ...body, async (req, res: Res) => {
    const input = validate(ChangePasswordRequest, req.body);
    await d.accounts.changePassword(res.locals.user, input.current_password, input.new_password, actorOf(req, res));
    res.status(204).end();
  });

  // --- hubs ---
  app.post("/hubs/register", ...body, async (req, res) => {
    const input = validate(RegisterHubRequest, req.body);
    if (!registrations.take(ip(req), d.clock.now())) throw new TooManyRequestsError(Math.ceil(3600 / d.hubRegistrationsPerHour), "too many hub registrations from this address");
    res.status(201).json(await d.hubs.register(input, { ip: ip(req) }));
  });
  app.post("/hub/claim-code", hubAuth, async (req, res: Response<unknown, { hubId: string }>) => {
    res.json(await d.hubs.newClaimCode(res.locals.hubId, { hubId: res.locals.hubId, ip: ip(req) }));
  });
  app.post("/hubs/claim", auth, ...body, async (req, res: Res) => {
    const input = validate(ClaimHubRequest, req.body);
    res.json(await d.hubs.claim(uid(res), input.claim_code, actorOf(req, res)));
  });
  app.get("/hubs", auth, async (_req, res: Res) => {
    res.json(await d.hubs.list(uid(res)));
  });
  app.get("/hubs/:id", auth, async (req, res: Res) => {
    res.json(await d.hubs.get(uid(res), param(req, "id")));
  });
  app.patch("/hubs/:id", auth, ...body, async (req, res: Res) => {
    const id = param(req, "id");
    await d.hubs.require(uid(res), id, "owner");
    res.json(await d.hubs.rename(uid(res), id, validate(UpdateHubRequest, req.body).name, actorOf(req, res)));
  });
  app.delete("/hubs/:id", auth, async (req, res: Res) => {
    await d.hubs.remove(uid(res), param(req, "id"), actorOf(req, res));
    res.status(204).end();
  });
  app.get("/hubs/:id/tariff", auth, async (req, res: Res) => {
    const { tariff } = await d.hubs.tariff(uid(res), param(req, "id"));
    if (!tariff) throw new NotFoundError("no tariff is set; PUT /hubs/{id}/tariff to set one");
    res.json(tariff);
  });
  app.put("/hubs/:id/tariff", auth, ...body, async (req, res: Res) => {
    const id = param(req, "id");
    await d.hubs.require(uid(res), id, "owner");
    res.json(await d.hubs.setTariff(uid(res), id, validate(Tariff, req.body), actorOf(req, res)));
  });
  app.get("/hubs/:id/shares", auth, async (req, res: Res) => {
    res.json(await d.hubs.shares(uid(res), param(req, "id")));
  });
  app.post("/hubs/:id/shares", auth, ...body, async (req, res: Res) => {
    const id = param(req, "id");
    await d.hubs.require(uid(res), id, "owner");
    const input = validate(ShareRequest, req.body);
    const target = await shareTarget(input.email);
    res.status(201).json(await d.hubs.share(uid(res), id, target, input.role, actorOf(req, res)));
  });
  app.delete("/hubs/:id/shares/:userId", auth, async (req, res: Res) => {
    await d.hubs.unshare(uid(res), param(req, "id"), param(req, "userId"), actorOf(req, res));
    res.status(204).end();
  });
  // Issue 6 §7: a grant for the hub's LAN API. Access is checked before the body is read (A10).
  app.post("/hubs/:id/local-grant", auth, ...body, async (req, res: Res) => {
    const access = await d.localGrants.access(uid(res), param(req, "id"));
    validate(LocalGrantRequest, req.body ?? {});
    res.json(await d.localGrants.issue(uid(res), access, actorOf(req, res)));
  });

  const shareTarget = async (email: string) => {
    const u = await d.accounts.findByEmail(email);
    if (!u) throw new NotFoundError("no user with this email; they must register first");
    return { id: u.id, email: u.email, name: u.name };
  };

  // --- devices ---
  app.get("/devices", auth, async (_req, res: Res) => {
    res.json(await d.devices.list(uid(res)));
  });
  app.post("/devices", auth, ...body, async (req, res: Res) => {
    const created = await d.devices.create(uid(res), validate(CloudCreateDeviceRequest, req.body), actorOf(req, res));
    res.status(201).location(`/devices/${created.device_id}`).json(created);
  });
  // Ownership is checked before the body is read: a stranger gets the same 404 whatever they send (A10).
  app.get("/devices/:id", auth, async (req, res: Res) => {
    const id = param(req, "id");
    res.json(toDevice(await d.devices.row(await d.devices.resolveRef(uid(res), id), id)));
  });
  app.patch("/devices/:id", auth, ...body, async (req, res: Res) => {
    const id = param(req, "id");
    const { row } = await d.devices.require(uid(res), id, "owner");
    const renamed = await d.devices.rename(uid(res), id, validate(UpdateDeviceRequest, req.body).name, actorOf(req, res));
    await d.hubSync?.link.pushDeviceConfig(row.hubId, row.deviceId); // LinkDeviceConfig (issue 6); else on connect
    res.json(renamed);
  });
  app.delete("/devices/:id", auth, async (req, res: Res) => {
    await d.devices.remove(uid(res), param(req, "id"), actorOf(req, res));
    res.status(204).end();
  });
  app.post("/devices/:id/command", auth, ...body, async (req, res: Res) => {
    const { row } = await d.devices.require(uid(res), param(req, "id"), "controller");
    const input = validate(CommandRequest, req.body);
    const { response } = await d.commands.submit(row, input.command, input.command_id, actorOf(req, res));
    res.status(COMMAND_HTTP[response.status]).json(response);
  });
  app.get("/devices/:id/shares", auth, async (req, res: Res) => {
    res.json(await d.devices.shares(uid(res), param(req, "id")));
  });
  app.post("/devices/:id/shares", auth, ...body, async (req, res: Res) => {
    const id = param(req, "id");
    await d.devices.require(uid(res), id, "owner");
    const input = validate(ShareRequest, req.body);
    const target = await shareTarget(input.email);
    res.status(201).json(await d.devices.share(uid(res), id, target, input.role, actorOf(req, res)));
  });
  app.delete("/devices/:id/shares/:userId", auth, async (req, res: Res) => {
    await d.devices.unshare(uid(res), param(req, "id"), param(req, "userId"), actorOf(req, res));
    res.status(204).end();
  });

  // --- operations ---
  app.get("/health", async (_req, res) => {
    const h = await d.health();
    res.status(h.status === "unhealthy" ? 503 : 200).json(h);
  });
  app.get("/metrics", async (_req, res) => {
    res.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });
  const openapi = buildCloudOpenApi();
  app.get("/openapi.json", (_req, res) => {
    res.json(openapi);
  });
  app.use("/docs", swaggerUi.serve, swaggerUi.setup(openapi, { customSiteTitle: "Smart Plug Cloud API" }));
  app.get("/redoc", (_req, res) => {
    res.type("html").send(redocPage("/openapi.json", "/redoc/redoc.standalone.js"));
  });
  app.get("/redoc/redoc.standalone.js", (_req, res) => {
    res.sendFile(redocBundlePath(), { maxAge: "1d" });
  });

  if (d.hubSync) mountHubSync(app, d.hubSync, { hubAuth, auth });
  mountSchedules(app, d, { auth, actor: actorOf });

  app.use(notFound);
  app.use(problemHandler(d.log));
  return app;
}
