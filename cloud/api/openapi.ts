// The cloud's OpenAPI document, generated from the same zod schemas that validate requests (issue 5 §9).
import { createDocument } from "zod-openapi";
import { z } from "zod";
import { RegisterRequest, LoginRequest, RefreshRequest, TokenResponse, User } from "../../shared/schemas/auth.js";
import { UpdateDeviceRequest, CommandRequest, Device, CreatedDevice } from "../../shared/schemas/devices.js";
import { TelemetryQuery, TelemetryResponse, LatestTelemetry } from "../../shared/schemas/telemetry.js";
import { CreateScheduleRequest, UpdateScheduleRequest, Schedule } from "../../shared/schemas/schedules.js";
import { HealthResponse } from "../../shared/schemas/health.js";
import { Tariff, EnergyQuery, EnergyResponse } from "../../shared/schemas/energy.js";
import { Problem } from "../../shared/schemas/common.js";
import { MAX_SYNC_ROWS, SyncAck, SyncRejected, SyncRow } from "../../shared/schemas/sync.js";
import {
  ChangePasswordRequest,
  ClaimCode,
  ClaimHubRequest,
  CloudCommandResponse,
  CloudCreateDeviceRequest,
  Hub,
  HubCredential,
  LocalGrant,
  LocalGrantRequest,
  RegisterHubRequest,
  Share,
  ShareRequest,
  UpdateHubRequest,
  UpdateUserRequest,
} from "../../shared/schemas/cloud.js";

const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { "application/json": { schema } } });
const problem = (description: string) => ({ description, content: { "application/problem+json": { schema: Problem } } });
const body = <S extends z.ZodType>(schema: S) => ({ required: true, content: { "application/json": { schema } } });
const idParam = { path: z.object({ id: z.string().meta({ description: "device id (or `{hub_id}~{device_id}` when the id exists on several of your hubs)" }) }) };
const hubParam = { path: z.object({ id: z.string().meta({ description: "hub id" }) }) };
const shareParam = { path: z.object({ id: z.string(), userId: z.string().meta({ description: "the user the share is revoked from" }) }) };
const secured = [{ bearer: [] }];
const errors = {
  "400": problem("invalid request"),
  "401": problem("missing or invalid access token"),
  "403": problem("your share does not allow this"),
  "404": problem("no such device (also for devices you may not see)"),
};
const hubErrors = { ...errors, "404": problem("no such hub (also for hubs you may not see)") };
/** POST /hub/sync's body as documented: the rows the cloud accepts (it reads `rows` as unknown and validates each, see SyncRejected). */
const SyncBatchDoc = z
  .union([
    z.strictObject({ rows: z.array(SyncRow).min(1).max(MAX_SYNC_ROWS) }).meta({ description: "outbox rows in sequence order" }),
    z.strictObject({ rows: z.array(SyncRow).max(0), query: z.literal("synced_seq") }).meta({ description: "stores nothing; the answer's synced_seq is how far the cloud has stored this hub's outbox (asked by a hub at start, before sending rows numbered since)" }),
  ])
  .meta({ id: "SyncBatch", description: "send as gzip (Content-Encoding: gzip), at most 8 MB inflated" });
const SyncRejectedProblem = z
  .object({ type: z.string(), title: z.string(), status: z.number().int(), detail: z.string().optional(), instance: z.string().optional(), rejected: z.array(SyncRejected) })
  .meta({ id: "SyncRejectedProblem", description: "RFC 9457 problem naming each refused row by seq and index: the hub dead-letters exactly those and resends the rest (RELIABILITY F7)" });
const schedParam = { path: z.object({ sid: z.string().meta({ description: "schedule id" }) }) };
const schedErrors = { ...errors, "404": problem("no such schedule (also for schedules on devices you may not see)") };

export function buildCloudOpenApi() {
  return createDocument({
    openapi: "3.1.0",
    info: {
      title: "Smart Plug Cloud API",
      version: "0.1.0",
      description: "The seed's API: the same device, command, telemetry and auth paths and shapes as the hub's local API, plus hubs, claiming and sharing. Errors are RFC 9457 problem+json.",
    },
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        hub: { type: "http", scheme: "basic", description: "hub_id:hub_secret from POST /hubs/register" },
      },
    },
    paths: {
      "/auth/register": { post: { summary: "Create an account", requestBody: body(RegisterRequest), responses: { "201": json(User, "created"), "400": errors["400"], "409": problem("email taken") } } },
      "/auth/login": {
        post: { summary: "Sign in", requestBody: body(LoginRequest), responses: { "200": json(TokenResponse, "tokens"), "401": errors["401"], "429": problem("too many failures; see Retry-After") } },
      },
      "/auth/refresh": {
        post: { summary: "Rotate a refresh token (reusing a rotated one revokes the sign-in)", requestBody: body(RefreshRequest), responses: { "200": json(TokenResponse, "new tokens"), "401": errors["401"] } },
      },
      "/auth/logout": { post: { summary: "Revoke a sign-in", requestBody: body(RefreshRequest), responses: { "204": { description: "revoked" } } } },
      "/users/me": {
        get: { security: secured, summary: "The signed-in user", responses: { "200": json(User, "user"), "401": errors["401"] } },
        patch: { security: secured, requestBody: body(UpdateUserRequest), responses: { "200": json(User, "updated"), "400": errors["400"], "401": errors["401"] } },
      },
      "/users/me/password": {
        post: {
          security: secured,
          summary: "Change the password; every other sign-in is revoked",
          requestBody: body(ChangePasswordRequest),
          responses: { "204": { description: "changed" }, "400": errors["400"], "401": errors["401"], "429": problem("too many failures") },
        },
      },
      "/hubs/register": {
        post: {
          summary: "A hub registers itself and receives its credential and a claim code to show its owner",
          requestBody: body(RegisterHubRequest),
          responses: { "201": json(HubCredential, "registered"), "400": errors["400"], "429": problem("too many registrations from this address") },
        },
      },
      "/hub/sync": {
        post: {
          security: [{ hub: [] }],
          summary:
            "The hub's uplink (issue 6 §2): a batch of its outbox, stored idempotently (rollups in InfluxDB, the rest in the database); the answer names the highest sequence durably stored. The hub's link is GET /hub/link, a WebSocket upgrade with the same credential",
          requestBody: { required: true, content: { "application/json": { schema: SyncBatchDoc } } },
          responses: {
            "200": json(SyncAck, "stored up to acked_seq (a redelivered batch stores nothing twice)"),
            "401": problem("hub credential invalid"),
            "413": problem("more than 8 MB after inflating; send fewer rows"),
            "415": problem("not application/json"),
            "422": { description: "rows refused; nothing of the batch was stored", content: { "application/problem+json": { schema: SyncRejectedProblem } } },
            "503": problem("InfluxDB unavailable; retry the same batch after Retry-After"),
          },
        },
      },
      "/hub/claim-code": {
        post: { security: [{ hub: [] }], summary: "The calling hub gets a fresh claim code (the previous one stops working)", responses: { "200": json(ClaimCode, "new code"), "401": errors["401"] } },
      },
      "/hubs/claim": {
        post: {
          security: secured,
          summary: "Claim a hub with the code it shows",
          requestBody: body(ClaimHubRequest),
          responses: {
            "200": json(Hub, "claimed"),
            "404": problem("no hub shows this code"),
            "409": problem("the hub already has an owner"),
            "410": problem("the code was used or has expired"),
            "429": problem("too many failed claims; see Retry-After"),
          },
        },
      },
      "/hubs": { get: { security: secured, summary: "Hubs you own or that are shared with you", responses: { "200": json(z.array(Hub), "hubs"), "401": errors["401"] } } },
      "/hubs/{id}": {
        get: { security: secured, requestParams: hubParam, responses: { "200": json(Hub, "hub"), ...hubErrors } },
        patch: { security: secured, requestParams: hubParam, requestBody: body(UpdateHubRequest), responses: { "200": json(Hub, "renamed"), ...hubErrors } },
        delete: { security: secured, requestParams: hubParam, summary: "Remove the hub with its devices and shares", responses: { "204": { description: "removed" }, ...hubErrors } },
      },
      "/hubs/{id}/tariff": {
        get: { security: secured, requestParams: hubParam, responses: { "200": json(Tariff, "the hub's tariff"), ...hubErrors } },
        put: { security: secured, requestParams: hubParam, requestBody: body(Tariff), responses: { "200": json(Tariff, "set"), ...hubErrors } },
      },
      "/hubs/{id}/shares": {
        get: { security: secured, requestParams: hubParam, responses: { "200": json(z.array(Share), "shares"), ...hubErrors } },
        post: { security: secured, requestParams: hubParam, summary: "Share the whole hub", requestBody: body(ShareRequest), responses: { "201": json(Share, "shared"), ...hubErrors } },
      },
      "/hubs/{id}/shares/{userId}": { delete: { security: secured, requestParams: shareParam, responses: { "204": { description: "revoked" }, ...hubErrors } } },
      "/hubs/{id}/local-grant": {
        post: {
          security: secured,
          requestParams: hubParam,
          summary:
            "A grant for the hub's local API (issue 6 §7), for its owner and anyone with a hub or device share on it: send it as `Authorization: Bearer` to the hub on its LAN; it works while the internet is down until it expires (≥ 7 days); a revoked share stops it as soon as the hub's link is back",
          requestBody: { required: false, content: { "application/json": { schema: LocalGrantRequest } } },
          responses: { "200": json(LocalGrant, "the grant and where to use it"), ...hubErrors },
        },
      },
      "/devices": {
        get: { security: secured, summary: "Devices you own or that are shared with you", responses: { "200": json(z.array(Device), "devices"), "401": errors["401"] } },
        post: {
          security: secured,
          summary:
            "Pair a plug on one of your hubs (`hub_id` may be left out when you own exactly one; 400 when you own several); the answer says what to type into the plug. The hub receives the pairing over its link (the code's hash, never the code) and the plug can connect to it once the hub has it",
          requestBody: body(CloudCreateDeviceRequest),
          responses: { "201": json(CreatedDevice, "paired"), ...hubErrors, "409": problem("already paired on this hub") },
        },
      },
      "/devices/{id}": {
        get: { security: secured, requestParams: idParam, responses: { "200": json(Device, "device"), ...errors } },
        patch: { security: secured, requestParams: idParam, requestBody: body(UpdateDeviceRequest), responses: { "200": json(Device, "renamed"), ...errors } },
        delete: { security: secured, requestParams: idParam, responses: { "204": { description: "removed" }, ...errors } },
      },
      "/devices/{id}/command": {
        post: {
          security: secured,
          requestParams: idParam,
          summary: "Store a relay command for the device's hub; a repeated command_id returns the stored command",
          requestBody: body(CommandRequest),
          responses: {
            "202": json(CloudCommandResponse, "stored: `queued` until the hub link takes it, `sent` once handed to the hub"),
            "200": json(CloudCommandResponse, "confirmed by the plug (repeated command_id)"),
            "410": json(CloudCommandResponse, "expired before the hub took it (repeated command_id)"),
            ...errors,
          },
        },
      },
      "/devices/{id}/telemetry": {
        get: {
          security: secured,
          requestParams: { ...idParam, query: TelemetryQuery },
          summary: "Aggregated history from the InfluxDB level that fits the interval (at most 10,000 points)",
          responses: { "200": json(TelemetryResponse, "history"), ...errors, "503": problem("InfluxDB unavailable") },
        },
      },
      "/devices/{id}/telemetry/latest": {
        get: { security: secured, requestParams: idParam, responses: { "200": json(LatestTelemetry, "latest state the hub reported"), ...errors } },
      },
      "/devices/{id}/energy": {
        get: {
          security: secured,
          requestParams: { ...idParam, query: EnergyQuery },
          summary: "Energy and cost per local day, week or month, priced at the hub's tariff",
          responses: { "200": json(EnergyResponse, "energy and cost"), ...errors, "503": problem("InfluxDB unavailable") },
        },
      },
      "/schedules": { get: { security: secured, summary: "Every schedule on the devices you may see (the hub's shapes, issue 6 §5)", responses: { "200": json(z.array(Schedule), "schedules"), "401": errors["401"] } } },
      "/devices/{id}/schedules": {
        get: { security: secured, requestParams: idParam, responses: { "200": json(z.array(Schedule), "the device's schedules"), ...errors } },
        post: {
          security: secured,
          requestParams: idParam,
          summary: "Weekly rule, time window or one-shot action (owner or controller); reaches the hub over its link, at once or when it reconnects",
          requestBody: body(CreateScheduleRequest),
          responses: { "201": json(Schedule, "created"), ...errors },
        },
      },
      "/schedules/{sid}": {
        get: { security: secured, requestParams: schedParam, responses: { "200": json(Schedule, "schedule"), ...schedErrors } },
        patch: { security: secured, requestParams: schedParam, summary: "Rename, enable or disable; a newer version wins over an older edit on the hub", requestBody: body(UpdateScheduleRequest), responses: { "200": json(Schedule, "updated"), ...schedErrors } },
        delete: { security: secured, requestParams: schedParam, summary: "Delete; a deletion is final on both sides", responses: { "204": { description: "deleted" }, ...schedErrors } },
      },
      "/devices/{id}/shares": {
        get: { security: secured, requestParams: idParam, responses: { "200": json(z.array(Share), "shares"), ...errors } },
        post: { security: secured, requestParams: idParam, requestBody: body(ShareRequest), responses: { "201": json(Share, "shared"), ...errors } },
      },
      "/devices/{id}/shares/{userId}": { delete: { security: secured, requestParams: shareParam, responses: { "204": { description: "revoked" }, ...errors } } },
      "/health": { get: { responses: { "200": json(HealthResponse, "healthy or degraded"), "503": json(HealthResponse, "unhealthy") } } },
      "/metrics": { get: { summary: "Prometheus metrics", responses: { "200": { description: "text exposition format" } } } },
    },
  });
}
