// The hub's local API (issue 2 §7): the same paths and shapes as the cloud, so an app switches base URL.
import express, { type Request, type Response, type NextFunction } from "express";
import swaggerUi from "swagger-ui-express";
import type { Logger } from "../../shared/logger.js";
import type { Clock } from "../../shared/clock.js";
import { RegisterRequest, LoginRequest, RefreshRequest } from "../../shared/schemas/auth.js";
import { CreateDeviceRequest, UpdateDeviceRequest, CommandRequest } from "../../shared/schemas/devices.js";
import { DEVICE_ID_PATTERN } from "../../shared/schemas/common.js";
import { TelemetryQuery } from "../../shared/schemas/telemetry.js";
import { ForbiddenError, NotFoundError, UnauthorizedError } from "../../shared/problem.js";
import type { AccountService } from "../accounts/account-service.js";
import type { AccessClaims } from "../accounts/token-service.js";
import type { DeviceService } from "../devices/device-service.js";
import type { CommandService } from "../devices/command-service.js";
import type { TelemetryQueries } from "../telemetry/telemetry-query.js";
import type { ScheduleService } from "../schedules/schedule-service.js";
import { CreateScheduleRequest, UpdateScheduleRequest } from "../../shared/schemas/schedules.js";
import { EnergyQuery, Tariff } from "../../shared/schemas/energy.js";
import type { EnergyReports } from "../energy/energy-report.js";
import type { AlertService } from "../alerts/alert-service.js";
import { AlertQuery, AlertSettings } from "../../shared/schemas/alerts.js";
import type { HubMetrics } from "../metrics.js";
import type { SyncService } from "../sync/sync-service.js";
import type { HealthResponse } from "../../shared/schemas/health.js";
import { jsonBody, notFound, problemHandler, validate } from "./http.js";
import { buildOpenApi } from "./openapi.js";

export interface HubApiDeps {
  accounts: AccountService;
  devices: DeviceService;
  commands: CommandService;
  telemetry: TelemetryQueries;
  schedules: ScheduleService;
  energy: EnergyReports;
  alerts: AlertService;
  sync: SyncService;
  metrics: HubMetrics;
  health: () => Promise<HealthResponse>;
  log: Logger;
  clock: Clock;
}

type Locals = { user: AccessClaims };

function bearer(req: Request): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(h);
  if (!m) throw new UnauthorizedError("use 'Authorization: Bearer <access_token>'");
  return m[1]!;
}

/** Builds the express app without listening (STYLE.md: build in one function, listen in another). */
export function buildHubApi(d: HubApiDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
  app.use((req, res, next) => {
    res.on("finish", () => d.metrics.httpRequests.inc({ status: `${Math.floor(res.statusCode / 100)}xx` }));
    next();
  });

  const auth = async (req: Request, res: Response<unknown, Locals>, next: NextFunction) => {
    const token = bearer(req);
    if (!token) throw new UnauthorizedError();
    const user = await d.accounts.authenticate(token);
    res.locals.user = user;
    // A cloud user shared single devices sees only those; any other id is a 404 like a missing one (A10).
    const id = req.params.id;
    if (user.deviceIds && typeof id === "string" && req.route?.path?.toString().startsWith("/devices/:id") && !user.deviceIds.includes(id)) {
      throw new NotFoundError(`no device '${id.slice(0, 64)}'`);
    }
    next();
  };
  const visible = (res: Response<unknown, Locals>, deviceId: string | null) => {
    const ids = res.locals.user.deviceIds;
    return !ids || (deviceId !== null && ids.includes(deviceId));
  };
  /** A cloud user with controller on some devices and viewer on others controls only the first (issue 6 §7). */
  const mayControl = (res: Response<unknown, Locals>, deviceId: string | null) => {
    const ids = res.locals.user.controlIds;
    if (res.locals.user.role === "viewer" || (ids && (deviceId === null || !ids.includes(deviceId)))) {
      throw new ForbiddenError(res.locals.user.role === "viewer" ? "your share of this hub is view-only" : "your share of this device is view-only");
    }
  };
  /** Viewers (cloud users with a viewer share) read; they never switch plugs or edit schedules. */
  const control = (req: Request, res: Response<unknown, Locals>, next: NextFunction) => {
    if (res.locals.user.role === "viewer") throw new ForbiddenError("your share of this hub is view-only");
    // Device routes check the device here; schedule and alert routes check theirs once they found it.
    if (typeof req.params.id === "string") mayControl(res, req.params.id);
    next();
  };
  const ownerOnly = (_req: Request, res: Response<unknown, Locals>, next: NextFunction) => {
    if (res.locals.user.role !== "owner") throw new ForbiddenError("only the hub's owner can do this");
    next();
  };
  /** Invalid ids answer exactly like unknown ones (A10). */
  const deviceId = (req: Request): string => {
    const id = String(req.params.id);
    if (!DEVICE_ID_PATTERN.test(id)) throw new NotFoundError(`no device '${id.slice(0, 64)}'`);
    return id;
  };
  const body = jsonBody();

  // --- accounts ---
  app.post("/auth/register", ...body, async (req, res) => {
    const input = validate(RegisterRequest, req.body);
    const token = bearer(req);
    const actor = token ? await d.accounts.authenticate(token) : null;
    res.status(201).json(await d.accounts.register(input, actor));
  });
  app.post("/auth/login", ...body, async (req, res) => {
    res.json(await d.accounts.login(validate(LoginRequest, req.body), req.socket.remoteAddress ?? "?"));
  });
  app.post("/auth/refresh", ...body, async (req, res) => {
    res.json(await d.accounts.refresh(validate(RefreshRequest, req.body).refresh_token));
  });
  app.post("/auth/logout", ...body, (req, res) => {
    d.accounts.logout(validate(RefreshRequest, req.body).refresh_token);
    res.status(204).end();
  });
  app.get("/users/me", auth, (_req, res: Response<unknown, Locals>) => {
    const u = res.locals.user;
    if (u.userId.startsWith("cloud:")) {
      const entry = d.sync.access?.users.find((x) => `cloud:${x.user_id}` === u.userId);
      res.json({ id: u.userId, email: entry?.email ?? null, name: null, role: u.role, source: "cloud", device_ids: u.deviceIds ?? null });
      return;
    }
    res.json(d.accounts.getUser(u.userId));
  });

  // --- devices ---
  app.get("/devices", auth, (_req, res: Response<unknown, Locals>) => {
    res.json(d.devices.list().filter((x) => visible(res, x.device_id)));
  });
  app.post("/devices", auth, ownerOnly, ...body, async (req, res) => {
    const created = await d.devices.pair(validate(CreateDeviceRequest, req.body));
    res.status(201).location(`/devices/${created.device_id}`).json(created);
  });
  app.get("/devices/:id", auth, (req, res) => {
    res.json(d.devices.get(deviceId(req)));
  });
  app.patch("/devices/:id", auth, ownerOnly, ...body, (req, res) => {
    const id = deviceId(req);
    res.json(d.devices.rename(id, validate(UpdateDeviceRequest, req.body).name));
  });
  app.delete("/devices/:id", auth, ownerOnly, (req, res) => {
    d.devices.remove(deviceId(req));
    res.status(204).end();
  });
  app.post("/devices/:id/command", auth, control, ...body, async (req, res) => {
    const id = deviceId(req);
    d.devices.state(id);
    const input = validate(CommandRequest, req.body);
    const result = await d.commands.execute(id, input.command, { commandId: input.command_id, timeoutMs: input.timeout_ms });
    // The seed's fields always; the HTTP status tells confirmed (200), offline (409), refused by the plug (502)
    // and unconfirmed (504) apart.
    const http = { confirmed: 200, offline: 409, failed: 502, timeout: 504, pending: 202 } as const;
    res.status(http[result.status]).json(result);
  });
  app.get("/devices/:id/telemetry", auth, (req, res) => {
    const st = d.devices.state(deviceId(req));
    const q = validate(TelemetryQuery, req.query);
    const end = q.end ? Date.parse(q.end) : d.clock.now();
    const start = q.start ? Date.parse(q.start) : end - 24 * 3600_000;
    const data = d.telemetry.query(st.idx, start, end, q.interval, q.fields);
    res.json({
      device_id: st.deviceId,
      start: new Date(start).toISOString(),
      end: new Date(end).toISOString(),
      interval: q.interval,
      fields: q.fields,
      data,
      total_points: data.length,
    });
  });
  app.get("/devices/:id/telemetry/latest", auth, (req, res) => {
    const st = d.devices.state(deviceId(req));
    if (!st.latest) throw new NotFoundError(`device '${st.deviceId}' has not reported a reading yet`);
    const r = st.latest;
    res.json({
      device_id: st.deviceId,
      timestamp: new Date(r.ts).toISOString(),
      voltage: r.voltage,
      current: r.current,
      power: r.power,
      energy_wh: Math.round(st.energy.energyWh * 1000) / 1000,
      relay_state: st.relayOn ?? r.relayOn,
    });
  });

  // --- energy and cost ---
  app.get("/tariff", auth, (_req, res) => {
    const t = d.energy.tariff();
    if (!t) throw new NotFoundError("no tariff is set; PUT /tariff to set one");
    res.json(t);
  });
  app.put("/tariff", auth, ownerOnly, ...body, (req, res) => {
    res.json(d.energy.setTariff(validate(Tariff, req.body)));
  });
  app.get("/devices/:id/energy", auth, (req, res) => {
    const st = d.devices.state(deviceId(req));
    const q = validate(EnergyQuery, req.query);
    const end = q.end ? Date.parse(q.end) : d.clock.now();
    const start = q.start ? Date.parse(q.start) : end - (q.period === "day" ? 7 : q.period === "week" ? 28 : 365) * 86_400_000;
    res.json(d.energy.report(st.deviceId, st.idx, q.period, start, end));
  });

  // --- alerts ---
  app.get("/alerts", auth, (req, res: Response<unknown, Locals>) => {
    const q = validate(AlertQuery, req.query);
    res.json(d.alerts.list({ active: q.active === undefined ? undefined : q.active === "true", deviceId: q.device_id, limit: q.limit }).filter((a) => visible(res, a.device_id)));
  });
  app.post("/alerts/:aid/ack", auth, control, (req, res: Response<unknown, Locals>) => {
    const aid = String(req.params.aid);
    if (res.locals.user.deviceIds || res.locals.user.controlIds) {
      // An alert on a device the caller may not see is a 404 like a missing one (A10).
      const deviceId = d.alerts.deviceOf(aid);
      if (!visible(res, deviceId)) throw new NotFoundError(`no alert '${aid.slice(0, 64)}'`);
      mayControl(res, deviceId);
    }
    res.json(d.alerts.acknowledge(aid));
  });
  app.get("/devices/:id/alert-settings", auth, (req, res) => {
    const id = deviceId(req);
    d.devices.state(id);
    res.json(d.alerts.settings(id));
  });
  app.put("/devices/:id/alert-settings", auth, ownerOnly, ...body, (req, res) => {
    const id = deviceId(req);
    d.devices.state(id);
    res.json(d.alerts.setSettings(id, validate(AlertSettings, req.body)));
  });

  // --- schedules ---
  app.get("/schedules", auth, (_req, res: Response<unknown, Locals>) => {
    res.json(d.schedules.list().filter((x) => visible(res, x.device_id)));
  });
  /** A schedule on a device the caller may not see is a 404 like a missing one. */
  const schedule = (req: Request, res: Response<unknown, Locals>) => {
    const sid = String(req.params.sid);
    const s = d.schedules.get(sid);
    if (!visible(res, s.device_id)) throw new NotFoundError(`no schedule '${sid.slice(0, 64)}'`);
    return s;
  };
  app.get("/devices/:id/schedules", auth, (req, res) => {
    const id = deviceId(req);
    d.devices.state(id);
    res.json(d.schedules.list(id));
  });
  app.post("/devices/:id/schedules", auth, control, ...body, (req, res) => {
    const id = deviceId(req);
    d.devices.state(id);
    const created = d.schedules.create(id, validate(CreateScheduleRequest, req.body));
    void d.schedules.reconcile(id, "edit");
    res.status(201).location(`/schedules/${created.id}`).json(created);
  });
  app.get("/schedules/:sid", auth, (req, res: Response<unknown, Locals>) => {
    res.json(schedule(req, res));
  });
  app.patch("/schedules/:sid", auth, control, ...body, (req, res: Response<unknown, Locals>) => {
    mayControl(res, schedule(req, res).device_id);
    const updated = d.schedules.update(String(req.params.sid), validate(UpdateScheduleRequest, req.body));
    void d.schedules.reconcile(updated.device_id, "edit");
    res.json(updated);
  });
  app.delete("/schedules/:sid", auth, control, (req, res: Response<unknown, Locals>) => {
    mayControl(res, schedule(req, res).device_id);
    d.schedules.remove(String(req.params.sid));
    res.status(204).end();
  });

  // --- operations ---
  // --- the cloud (issue 6) ---
  app.get("/cloud", auth, (_req, res: Response<unknown, Locals>) => {
    const st = d.sync.status();
    // The claim code gives the hub to whoever types it in the cloud: only the owner sees it.
    res.json(res.locals.user.role === "owner" ? st : { ...st, claim_code: null, claim_expires_at: null });
  });
  app.post("/cloud/claim-code", auth, ownerOnly, async (_req, res) => {
    if (!d.sync.enabled) throw new NotFoundError("this hub has no cloud (HUB_CLOUD_URL is not set)");
    res.json(await d.sync.newClaimCode());
  });

  app.get("/health", async (_req, res) => {
    const h = await d.health();
    res.status(h.status === "unhealthy" ? 503 : 200).json(h);
  });
  app.get("/metrics", async (_req, res) => {
    res.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });
  const openapi = buildOpenApi();
  app.get("/openapi.json", (_req, res) => {
    res.json(openapi);
  });
  app.use("/docs", swaggerUi.serve, swaggerUi.setup(openapi, { customSiteTitle: "Smart Plug Hub API" }));

  app.use(notFound);
  app.use(problemHandler(d.log));
  return app;
}
