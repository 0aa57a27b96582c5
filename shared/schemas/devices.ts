import { z } from "zod";
import { DeviceId, IsoTime } from "./common.js";

export const PLUG_FAMILIES = ["native", "tasmota", "shelly-gen1", "shelly-gen2"] as const;
export const PlugFamily = z.enum(PLUG_FAMILIES);
export type PlugFamily = z.infer<typeof PlugFamily>;

export const CreateDeviceRequest = z
  .strictObject({
    device_id: DeviceId,
    name: z.string().trim().min(1).max(100),
    pairing_code: z.string().min(8, "at least 8 characters").max(64).regex(/^[\x21-\x7e]+$/, "printable ASCII, no spaces"),
    family: PlugFamily.default("native"),
    channel: z.number().int().min(0).max(7).default(0).meta({ description: "relay/meter channel on a multi-channel plug (0 = first)" }),
  })
  .meta({ id: "CreateDeviceRequest" });
export type CreateDeviceRequest = z.infer<typeof CreateDeviceRequest>;

export const UpdateDeviceRequest = z.strictObject({ name: z.string().trim().min(1).max(100) }).meta({ id: "UpdateDeviceRequest" });

export const Device = z
  .object({
    device_id: z.string(),
    name: z.string(),
    family: PlugFamily,
    channel: z.number().int(),
    status: z.enum(["online", "offline"]),
    relay_state: z.boolean().nullable(),
    firmware_version: z.string().nullable(),
    last_seen: z.string().nullable(),
    power: z.number().nullable().meta({ description: "latest active power, W" }),
    energy_kwh: z.number().meta({ description: "total energy since pairing, kWh (reset-aware counter, or integrated power)" }),
    created_at: z.string(),
  })
  .meta({ id: "Device" });
export type Device = z.infer<typeof Device>;

export const MqttPairing = z
  .object({
    host: z.string().meta({ description: "the hub's address as the plug should reach it" }),
    port: z.number().int(),
    client_id: z.string(),
    username: z.string(),
    password: z.string().meta({ description: "the pairing code you chose" }),
    topic: z.string().meta({ description: "topic or prefix to configure on the plug" }),
  })
  .meta({ id: "MqttPairing" });

export const CreatedDevice = Device.extend({ mqtt: MqttPairing }).meta({ id: "CreatedDevice" });

export const COMMANDS = ["relay_on", "relay_off", "relay_toggle"] as const;
export const CommandName = z.enum(COMMANDS);
export type CommandName = z.infer<typeof CommandName>;

export const CommandRequest = z
  .strictObject({
    command: CommandName,
    command_id: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/).optional().meta({ description: "idempotency key; a repeated id returns the first result and never re-executes" }),
    timeout_ms: z.number().int().min(100).max(30_000).optional(),
  })
  .meta({ id: "CommandRequest" });

export const CommandStatus = z.enum(["confirmed", "offline", "timeout", "failed", "pending"]);
export const CommandResponse = z
  .object({
    command_id: z.string(),
    device_id: z.string(),
    command: CommandName,
    status: CommandStatus,
    relay_state: z.boolean().nullable(),
    timestamp: IsoTime,
  })
  .meta({ id: "CommandResponse" });
export type CommandResponse = z.infer<typeof CommandResponse>;
