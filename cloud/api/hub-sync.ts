// Routes of issue 6 (hub ↔ cloud): the hub's uplink `POST /hub/sync`, plus the cloud-side config and access
// routes that go with the link. Mounted by buildCloudApi with its auth middlewares; kept apart from app.ts.
import type express from "express";
import type { NextFunction, Request, Response, RequestHandler } from "express";
import { PayloadTooLargeError } from "../../shared/problem.js";
import type { SyncService } from "../sync/sync-service.js";
import type { LinkServer } from "../link/link-server.js";
import { jsonBody } from "./http.js";

/** Inflated size a sync batch may have (the public API's bodies stay at 100 KB, A15). */
export const MAX_SYNC_BODY_BYTES = 8 * 1024 * 1024;

export interface HubSyncDeps {
  sync: SyncService;
  link: LinkServer;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Mw = (req: Request, res: Response<unknown, any>, next: NextFunction) => unknown;

/**
 * JSON up to 8 MB after inflating; `Content-Encoding: gzip` (or deflate) is inflated by body-parser, whose
 * limit counts inflated bytes, so a gzip bomb stops at the limit.
 */
function syncBody(): RequestHandler[] {
  return [
    ...jsonBody(`${MAX_SYNC_BODY_BYTES}b`),
    ((err: unknown, _req: Request, _res: Response, next: NextFunction) => {
      if ((err as { type?: string })?.type === "entity.too.large") {
        return next(new PayloadTooLargeError(`a sync batch must be at most ${MAX_SYNC_BODY_BYTES} bytes (8 MB) after inflating; send fewer rows`, { limit_bytes: MAX_SYNC_BODY_BYTES }));
      }
      next(err);
    }) as unknown as RequestHandler,
  ];
}

export function mountHubSync(app: express.Express, d: HubSyncDeps, m: { hubAuth: Mw; auth: Mw }) {
  app.post("/hub/sync", m.hubAuth as RequestHandler, ...syncBody(), async (req, res: Response<unknown, { hubId: string }>) => {
    const rows = d.sync.validate(req.body);
    res.json(rows === "synced_seq" ? await d.sync.syncedSeq(res.locals.hubId) : await d.sync.apply(res.locals.hubId, rows));
  });
}
