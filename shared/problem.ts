// RFC 9457 problem details: one error shape for hub and cloud (STYLE.md §5).
export const PROBLEM_BASE = "https://smartplug.dev/problems/";

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

export class AppError extends Error {
  readonly status: number = 500;
  readonly code: string = "internal";
  readonly title: string = "Internal error";
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(detail?: string, extensions: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(detail);
    this.name = new.target.name;
    this.extensions = extensions;
    this.headers = headers;
  }
}

function defineError(code: string, status: number, title: string) {
  return class extends AppError {
    override readonly status = status;
    override readonly code = code;
    override readonly title = title;
  };
}

export class ValidationError extends defineError("validation", 400, "Request is invalid") {}
export class BadJsonError extends defineError("bad-json", 400, "Body is not valid JSON") {}
export class UnauthorizedError extends defineError("unauthorized", 401, "Authentication required") {
  constructor(detail = "a valid access token is required") {
    super(detail, {}, { "WWW-Authenticate": 'Bearer realm="smartplug", error="invalid_token"' });
  }
}
export class ForbiddenError extends defineError("forbidden", 403, "Not allowed") {}
export class NotFoundError extends defineError("not-found", 404, "Not found") {}
export class ConflictError extends defineError("conflict", 409, "Conflict") {}
export class DeviceOfflineError extends defineError("device-offline", 409, "Device is offline") {}
export class PayloadTooLargeError extends defineError("payload-too-large", 413, "Body is too large") {}
export class UnsupportedMediaTypeError extends defineError("unsupported-media-type", 415, "Body must be application/json") {}
export class TooManyRequestsError extends defineError("too-many-requests", 429, "Too many requests") {
  constructor(retryAfterSec: number, detail = "slow down") {
    super(detail, { retry_after: retryAfterSec }, { "Retry-After": String(retryAfterSec) });
  }
}
export class StorageUnavailableError extends defineError("storage-unavailable", 503, "Storage is unavailable") {}
/** The hub cannot reach its cloud, or is not registered with it yet: retry later (nothing local depends on it). */
export class CloudUnavailableError extends defineError("cloud-unavailable", 503, "Cloud is unavailable") {}
export class CommandNotConfirmedError extends defineError("command-not-confirmed", 504, "Plug did not confirm the command") {}

export function toProblem(err: AppError, instance?: string): ProblemBody {
  return {
    type: PROBLEM_BASE + err.code,
    title: err.title,
    status: err.status,
    ...(err.message ? { detail: err.message } : {}),
    ...(instance ? { instance } : {}),
    ...err.extensions,
  };
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";
