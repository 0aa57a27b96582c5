// The OpenAPI document, generated from the same zod schemas that validate requests (issue 2 §7).
import { createDocument } from "zod-openapi";
import { z } from "zod";
import { RegisterRequest, LoginRequest, RefreshRequest, TokenResponse, User } from "../../shared/schemas/auth.js";
import { CreateDeviceRequest, UpdateDeviceRequest, CommandRequest, CommandResponse, Device, CreatedDevice } from "../../shared/schemas/devices.js";
import { TelemetryQuery, TelemetryResponse, LatestTelemetry } from "../../shared/schemas/telemetry.js";
import { HealthResponse } from "../../shared/schemas/health.js";
import { Problem } from "../../shared/schemas/common.js";
import { CreateScheduleRequest, UpdateScheduleRequest, Schedule } from "../../shared/schemas/schedules.js";
import { Tariff, EnergyQuery, EnergyResponse } from "../../shared/schemas/energy.js";
import { Alert, AlertQuery, AlertSettings } from "../../shared/schemas/alerts.js";
import { ClaimCode } from "../../shared/schemas/cloud.js";

const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { "application/json": { schema } } });
const problem = (description: string) => ({ description, content: { "application/problem+json": { schema: Problem } } });
const body = <S extends z.ZodType>(schema: S) => ({ required: true, content: { "application/json": { schema } } });
const idParam = { path: z.object({ id: z.string().meta({ description: "device id" }) }) };
const secured = [{ bearer: [] }];
const errors = {
  "400": problem("invalid request"),
  "401": problem("missing or invalid access token"),
  "404": problem("no such device (also for devices you may not see)"),
};

const ms = z.number().int().nullable();

/** GET /cloud (issue 6 §8): what hub/sync/sync-service.ts status() answers, documented here (a hub-only route). */
export const CloudStatus = z
  .object({
    enabled: z.boolean().meta({ description: "false without HUB_CLOUD_URL: nothing leaves the LAN" }),
    cloud_url: z.string().nullable(),
    hub_id: z.string().nullable(),
    registered: z.boolean(),
    claimed: z.boolean(),
    claim_code: z.string().nullable().meta({ description: "shown to the owner until the hub is claimed or the code expires" }),
    claim_expires_at: z.string().nullable(),
    link: z.object({
      state: z.enum(["connected", "connecting", "disconnected", "disabled"]),
      connected_since: ms,
      last_error: z.string().nullable(),
      reconnects: z.number().int(),
      frames_in: z.number().int(),
      frames_bad: z.number().int(),
    }),
    uplink: z.object({
      state: z.enum(["idle", "sending", "backoff", "rate_limited", "credential_rejected", "endpoint_refused", "disabled"]).meta({
        description: "credential_rejected: the cloud refused the hub credential (401/403); endpoint_refused: HUB_CLOUD_URL answers 404/405/… — paused, nothing dead-lettered",
      }),
      last_success_at: ms,
      last_attempt_at: ms,
      last_error: z.string().nullable(),
      next_attempt_at: ms,
      consecutive_failures: z.number().int(),
      batches_sent: z.number().int(),
      rows_sent: z.number().int(),
      acked_seq: z.number().int(),
    }),
    outbox: z.object({
      depth: z.number().int().meta({ description: "rows waiting" }),
      bytes: z.number().int().meta({ description: "what the waiting rows take on disk in the outbox (HUB_OUTBOX_MAX_MB bounds it)" }),
      oldest_seq: ms,
      oldest_queued_at: ms,
      oldest_unsent_age_s: z.number().int().nullable(),
      dropped: z.record(z.string(), z.number().int()).meta({ description: "rows dropped before reaching the cloud, by reason (max_age, full_rollup_1m, …), kept across restarts" }),
      last_dropped_at: ms,
      dead_lettered: z.number().int().meta({ description: "rows the cloud refused, kept in sync_dead_letters with its reason" }),
    }),
  })
  .meta({ id: "CloudStatus" });

export function buildOpenApi() {
  return createDocument({
    openapi: "3.1.0",
    info: { title: "Smart Plug Hub — local API", version: "0.1.0", description: "Same paths and shapes as the cloud API. Errors are RFC 9457 problem+json." },
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
    paths: {
      "/auth/register": {
        post: {
          summary: "Create a user: the first one becomes the owner; later ones need the owner's token",
          requestBody: body(RegisterRequest),
          responses: { "201": json(User, "created"), "400": errors["400"], "401": errors["401"], "403": problem("not the owner"), "409": problem("email taken") },
        },
      },
      "/auth/login": {
        post: { summary: "Sign in", requestBody: body(LoginRequest), responses: { "200": json(TokenResponse, "tokens"), "401": errors["401"], "429": problem("too many failures") } },
      },
      "/auth/refresh": {
        post: { summary: "Rotate a refresh token", requestBody: body(RefreshRequest), responses: { "200": json(TokenResponse, "new tokens"), "401": errors["401"] } },
      },
      "/auth/logout": { post: { summary: "Revoke a sign-in", requestBody: body(RefreshRequest), responses: { "204": { description: "revoked" } } } },
      "/users/me": { get: { security: secured, summary: "The signed-in user", responses: { "200": json(User, "user"), "401": errors["401"] } } },
      "/devices": {
        get: { security: secured, summary: "List devices", responses: { "200": json(z.array(Device), "devices"), "401": errors["401"] } },
        post: {
          security: secured,
          summary: "Pair a plug; the response says what to type into the plug",
          requestBody: body(CreateDeviceRequest),
          responses: { "201": json(CreatedDevice, "paired"), "400": errors["400"], "401": errors["401"], "409": problem("already paired") },
        },
      },
      "/devices/{id}": {
        get: { security: secured, requestParams: idParam, responses: { "200": json(Device, "device"), "401": errors["401"], "404": errors["404"] } },
        patch: { security: secured, requestParams: idParam, requestBody: body(UpdateDeviceRequest), responses: { "200": json(Device, "renamed"), ...errors } },
        delete: { security: secured, requestParams: idParam, summary: "Unpair: revokes the plug's credentials and drops its session", responses: { "204": { description: "removed" }, ...errors } },
      },
      "/devices/{id}/command": {
        post: {
          security: secured,
          requestParams: idParam,
          summary: "Switch the relay and wait for the plug to confirm",
          requestBody: body(CommandRequest),
          responses: {
            "200": json(CommandResponse, "confirmed by the plug"),
            "409": json(CommandResponse, "plug offline (status: offline); nothing was sent"),
            "502": json(CommandResponse, "the plug answered with an error (status: failed)"),
            "504": json(CommandResponse, "sent, not confirmed in time (status: timeout)"),
            ...errors,
          },
        },
      },
      "/devices/{id}/telemetry": {
        get: {
          security: secured,
          requestParams: { ...idParam, query: TelemetryQuery },
          summary: "Aggregated history (at most 10,000 points)",
          responses: { "200": json(TelemetryResponse, "history"), ...errors },
        },
      },
      "/devices/{id}/telemetry/latest": {
        get: { security: secured, requestParams: idParam, responses: { "200": json(LatestTelemetry, "latest reading"), ...errors } },
      },
      "/schedules": { get: { security: secured, summary: "Every schedule on the hub", responses: { "200": json(z.array(Schedule), "schedules"), "401": errors["401"] } } },
      "/devices/{id}/schedules": {
        get: { security: secured, requestParams: idParam, responses: { "200": json(z.array(Schedule), "the device's schedules"), ...errors } },
        post: {
          security: secured,
          requestParams: idParam,
          summary: "Weekly rule, time window or one-shot action, in the hub's time zone or its own",
          requestBody: body(CreateScheduleRequest),
          responses: { "201": json(Schedule, "created"), ...errors },
        },
      },
      "/schedules/{sid}": {
        get: { security: secured, requestParams: { path: z.object({ sid: z.string() }) }, responses: { "200": json(Schedule, "schedule"), ...errors } },
        patch: { security: secured, requestParams: { path: z.object({ sid: z.string() }) }, requestBody: body(UpdateScheduleRequest), responses: { "200": json(Schedule, "updated"), ...errors } },
        delete: { security: secured, requestParams: { path: z.object({ sid: z.string() }) }, responses: { "204": { description: "deleted" }, ...errors } },
      },
      "/alerts": { get: { security: secured, requestParams: { query: AlertQuery }, summary: "Newest first", responses: { "200": json(z.array(Alert), "alerts"), ...errors } } },
      "/alerts/{aid}/ack": { post: { security: secured, requestParams: { path: z.object({ aid: z.string() }) }, responses: { "200": json(Alert, "acknowledged"), ...errors } } },
      "/devices/{id}/alert-settings": {
        get: { security: secured, requestParams: idParam, responses: { "200": json(AlertSettings, "settings"), ...errors } },
        put: { security: secured, requestParams: idParam, requestBody: body(AlertSettings), responses: { "200": json(AlertSettings, "saved"), ...errors } },
      },
      "/tariff": {
        get: { security: secured, responses: { "200": json(Tariff, "the hub's tariff"), "404": problem("no tariff set") } },
        put: { security: secured, summary: "Flat or time-of-use (whole-hour windows)", requestBody: body(Tariff), responses: { "200": json(Tariff, "saved"), ...errors } },
      },
      "/devices/{id}/energy": {
        get: {
          security: secured,
          requestParams: { ...idParam, query: EnergyQuery },
          summary: "kWh and cost per local day, ISO week or month (default: the last 7 days / 4 weeks / 12 months)",
          responses: { "200": json(EnergyResponse, "energy and cost"), ...errors },
        },
      },
      "/cloud": {
        get: { security: secured, summary: "The hub's link to the cloud: registration, claim code, link, uplink and outbox (issue 6)", responses: { "200": json(CloudStatus, "cloud status"), "401": errors["401"] } },
      },
      "/cloud/claim-code": {
        post: {
          security: secured,
          summary: "A fresh claim code from the cloud (the previous one stops working); owner only",
          responses: { "200": json(ClaimCode, "new claim code"), "401": errors["401"], "403": problem("not the owner"), "404": problem("this hub has no cloud (HUB_CLOUD_URL is not set)"), "503": problem("not registered with the cloud yet, or the cloud does not answer") },
        },
      },
      "/health": { get: { responses: { "200": json(HealthResponse, "healthy or degraded"), "503": json(HealthResponse, "unhealthy") } } },
      "/metrics": { get: { summary: "Prometheus metrics", responses: { "200": { description: "text exposition format" } } } },
    },
  });
}
