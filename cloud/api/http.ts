// HTTP plumbing: validation with the shared zod schemas, body rules (A15), and the one problem+json error
// handler (STYLE.md §5). A copy of hub/api/http.ts — hub and cloud never import each other; it should move to shared/.
import express, { type NextFunction, type Request, type Response, type RequestHandler } from "express";
import type { z } from "zod";
import type { Logger } from "../../shared/logger.js";
import {
  AppError,
  BadJsonError,
  NotFoundError,
  PayloadTooLargeError,
  PROBLEM_CONTENT_TYPE,
  UnsupportedMediaTypeError,
  ValidationError,
  toProblem,
} from "../../shared/problem.js";

export function validate<S extends z.ZodType>(schema: S, data: unknown): z.infer<S> {
  const r = schema.safeParse(data);
  if (!r.success) {
    const errors = r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    throw new ValidationError(errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("; "), { errors });
  }
  return r.data;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** JSON bodies only, ≤ 100 KB, valid UTF-8 (A15). */
export function jsonBody(limit = "100kb"): RequestHandler[] {
  return [
    (req, _res, next) => {
      const hasBody = Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined;
      if (hasBody && !req.is("application/json")) return next(new UnsupportedMediaTypeError("send the body as application/json"));
      next();
    },
    express.json({
      limit,
      strict: true,
      verify: (_req, _res, buf) => {
        utf8.decode(buf); // throws on invalid UTF-8, which body-parser reports as a 400
      },
    }),
  ];
}

export function problemHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let e: AppError;
    const bp = err as { type?: string; status?: number };
    if (err instanceof AppError) e = err;
    else if (bp?.type === "entity.too.large") e = new PayloadTooLargeError("the body must be at most 100 KB");
    else if (bp?.type === "entity.parse.failed") e = new BadJsonError("the body is not valid JSON");
    else if (bp?.type === "entity.verify.failed") e = new BadJsonError("the body is not valid UTF-8");
    else if (bp?.type === "encoding.unsupported" || bp?.type === "charset.unsupported") e = new UnsupportedMediaTypeError("send UTF-8 JSON");
    else e = new AppError();
    if (e.status >= 500) log.error({ err, path: req.path }, "request failed");
    else log.info({ status: e.status, path: req.path, code: e.code }, "request refused");
    res.status(e.status).set(e.headers).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(toProblem(e, req.originalUrl.split("?")[0])));
  };
}

export function notFound(req: Request, _res: Response, next: NextFunction) {
  next(new NotFoundError(`no route ${req.method} ${req.path}`));
}

/**
 * CORS for browser dashboards: only the configured origins get the headers (no credentials: bearer tokens
 * travel in the Authorization header, never in cookies). Preflights answer 204.
 */
export function cors(allowed: string[]): RequestHandler {
  const any = allowed.includes("*");
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin && (any || allowed.includes(origin))) {
      res.vary("Origin");
      res.set("Access-Control-Allow-Origin", any ? "*" : origin);
      res.set("Access-Control-Expose-Headers", "Location, Retry-After, WWW-Authenticate");
      if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
        res.set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE");
        res.set("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.set("Access-Control-Max-Age", "600");
        res.status(204).end();
        return;
      }
    }
    next();
  };
}
