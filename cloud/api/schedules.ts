// Schedule routes of the cloud (issue 6 §5), with the hub's local paths and shapes so an app switches base URL
// (ARCHITECTURE §5). Owners and controllers write, viewers read; a schedule or device the caller may not see is
// the same 404 as a missing one, and access is checked before the body is read (A10).
import type express from "express";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { CreateScheduleRequest, UpdateScheduleRequest } from "../../shared/schemas/schedules.js";
import type { AccessClaims } from "../auth/token-service.js";
import type { Actor } from "../audit.js";
import type { DeviceService } from "../devices/device-service.js";
import type { ScheduleService } from "../schedules/schedule-service.js";
import { jsonBody, validate } from "./http.js";

type Res = Response<unknown, { user: AccessClaims }>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Mw = (req: Request, res: Response<unknown, any>, next: NextFunction) => unknown;

export function mountSchedules(app: express.Express, d: { schedules: ScheduleService; devices: DeviceService }, m: { auth: Mw; actor: (req: Request, res: Res) => Actor }) {
  const auth = m.auth as RequestHandler;
  const body = jsonBody();
  const uid = (res: Res) => res.locals.user.userId;
  const param = (req: Request, name: string) => String(req.params[name]);

  app.get("/schedules", auth, async (_req, res: Res) => {
    res.json(await d.schedules.list(uid(res)));
  });
  app.get("/devices/:id/schedules", auth, async (req, res: Res) => {
    const { row } = await d.devices.resolve(uid(res), param(req, "id"));
    res.json(await d.schedules.listForDevice(row));
  });
  app.post("/devices/:id/schedules", auth, ...body, async (req, res: Res) => {
    const { row } = await d.devices.require(uid(res), param(req, "id"), "controller");
    const created = await d.schedules.create(row, validate(CreateScheduleRequest, req.body), m.actor(req, res));
    res.status(201).location(`/schedules/${created.id}`).json(created);
  });
  app.get("/schedules/:sid", auth, async (req, res: Res) => {
    res.json(d.schedules.get(await d.schedules.resolve(uid(res), param(req, "sid"))));
  });
  app.patch("/schedules/:sid", auth, ...body, async (req, res: Res) => {
    const a = await d.schedules.require(uid(res), param(req, "sid"), "controller");
    res.json(await d.schedules.update(a, validate(UpdateScheduleRequest, req.body), m.actor(req, res)));
  });
  app.delete("/schedules/:sid", auth, async (req, res: Res) => {
    await d.schedules.remove(await d.schedules.require(uid(res), param(req, "sid"), "controller"), m.actor(req, res));
    res.status(204).end();
  });
}
