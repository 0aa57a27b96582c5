// Wire shapes that only the cloud serves (issue 5): hubs and claiming, sharing, profile changes, and the
// cloud's command answer. Device, telemetry, auth and health shapes are the hub's, from their own files.
import { z } from "zod";
import { IsoTime } from "./common.js";
import { CreateDeviceRequest, CommandName } from "./devices.js";
import { Email, Password } from "./auth.js";
import { isValidTimeZone } from "../time-zone.js";

export const HubId = z.uuid().meta({ description: "hub id, assigned by the cloud at registration" });

export const RegisterHubRequest = z
  .strictObject({
    name: z.string().trim().min(1).max(100).default("Smart plug hub"),
    mqtt_host: z.string().min(1).max(253).meta({ description: "the broker host plugs on the hub's LAN use (the hub's HUB_PUBLIC_HOST)" }),
    mqtt_port: z.number().int().min(1).max(65535),
    time_zone: z.string().refine(isValidTimeZone, "an IANA time zone such as Europe/Berlin").default("UTC").meta({ description: "the hub's HUB_TIME_ZONE: energy periods and tariff hours are local to it" }),
  })
  .meta({ id: "RegisterHubRequest" });
export type RegisterHubRequest = z.infer<typeof RegisterHubRequest>;

export const HubCredential = z
  .object({
    hub_id: z.string(),
    hub_secret: z.string().meta({ description: "the hub's own credential; shown once, stored hashed" }),
    claim_code: z.string().meta({ description: "≥ 40-bit single-use code the hub shows locally; its owner types it into POST /hubs/claim" }),
    claim_expires_at: IsoTime,
  })
  .meta({ id: "HubCredential" });
export type HubCredential = z.infer<typeof HubCredential>;

export const ClaimCode = z
  .object({ claim_code: z.string(), claim_expires_at: IsoTime })
  .meta({ id: "ClaimCode" });

export const ClaimHubRequest = z.strictObject({ claim_code: z.string().min(1).max(32) }).meta({ id: "ClaimHubRequest" });

export const ShareRole = z.enum(["viewer", "controller"]);
export type ShareRole = z.infer<typeof ShareRole>;
export const AccessRole = z.enum(["owner", "controller", "viewer"]);
export type AccessRole = z.infer<typeof AccessRole>;

export const Hub = z
  .object({
    hub_id: z.string(),
    name: z.string(),
    role: AccessRole.meta({ description: "what the signed-in user may do on this hub" }),
    link: z.enum(["connected", "disconnected"]),
    last_seen: z.string().nullable(),
    device_count: z.number().int(),
    time_zone: z.string(),
    created_at: z.string(),
    claimed_at: z.string().nullable(),
  })
  .meta({ id: "Hub" });
export type Hub = z.infer<typeof Hub>;

export const UpdateHubRequest = z.strictObject({ name: z.string().trim().min(1).max(100) }).meta({ id: "UpdateHubRequest" });

/** The seed's body works as is for a user who owns exactly one hub; with several, `hub_id` says which. */
export const CloudCreateDeviceRequest = CreateDeviceRequest.extend({
  hub_id: HubId.optional().meta({ description: "the hub to pair on; may be left out when you own exactly one hub" }),
}).meta({ id: "CloudCreateDeviceRequest" });
export type CloudCreateDeviceRequest = z.infer<typeof CloudCreateDeviceRequest>;

export const ShareRequest = z.strictObject({ email: Email, role: ShareRole }).meta({ id: "ShareRequest" });
export type ShareRequest = z.infer<typeof ShareRequest>;

export const Share = z
  .object({ user_id: z.string(), email: z.string(), name: z.string().nullable(), role: ShareRole, created_at: z.string() })
  .meta({ id: "Share" });
export type Share = z.infer<typeof Share>;

export const UpdateUserRequest = z.strictObject({ name: z.string().trim().min(1).max(100).nullable() }).meta({ id: "UpdateUserRequest" });

export const ChangePasswordRequest = z
  .strictObject({ current_password: z.string().min(1).max(128), new_password: Password })
  .meta({ id: "ChangePasswordRequest" });

/**
 * The cloud's answer to POST /devices/{id}/command: the seed's fields, with statuses for a command that
 * is stored and waits for the hub link (`queued`), was handed to the hub (`sent`), or ran out of time.
 */
export const CloudCommandStatus = z.enum(["queued", "sent", "confirmed", "offline", "timeout", "failed", "expired", "rejected"]);
export type CloudCommandStatus = z.infer<typeof CloudCommandStatus>;
export const CloudCommandResponse = z
  .object({
    command_id: z.string(),
    device_id: z.string(),
    command: CommandName,
    status: CloudCommandStatus,
    relay_state: z.boolean().nullable(),
    timestamp: IsoTime,
    expires_at: IsoTime,
  })
  .meta({ id: "CloudCommandResponse" });
export type CloudCommandResponse = z.infer<typeof CloudCommandResponse>;

// --- local access for cloud users (issue 6 §7) ---

/** JOSE `typ` of a local grant; the hub refuses any other (RELIABILITY fact 4, A12). */
export const LOCAL_GRANT_TYP = "smartplug-grant+jwt";
/** A grant opens exactly one hub: its `aud`. */
export const localGrantAudience = (hubId: string) => `smartplug-hub:${hubId}`;

export const LocalGrantRequest = z.strictObject({}).meta({ id: "LocalGrantRequest", description: "empty (or no body)" });

export const LocalGrant = z
  .object({
    grant: z.string().meta({ description: "Ed25519 JWT for `Authorization: Bearer` on the hub's local API; the hub verifies it offline with the cloud's key" }),
    token_type: z.literal("bearer"),
    hub_id: z.string(),
    user_id: z.string(),
    role: AccessRole.meta({ description: "your strongest role on this hub when issued; the hub applies the access list the cloud last sent it" }),
    device_ids: z.array(z.string()).nullable().meta({ description: "null: the whole hub; else only these devices (device shares)" }),
    issued_at: IsoTime,
    expires_at: IsoTime,
    expires_in: z.number().int().meta({ description: "seconds (CLOUD_GRANT_TTL_S, at least 7 days)" }),
    local_api_url: z.string().nullable().meta({ description: "the hub's local API on its LAN, as the hub last reported it over its link; null when unknown" }),
  })
  .meta({ id: "LocalGrant" });
export type LocalGrant = z.infer<typeof LocalGrant>;
