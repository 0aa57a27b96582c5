import { z } from "zod";

/** Device ids are also MQTT client ids and topic levels: no wildcards, no '/', ≤ 64 bytes (A3). */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const DeviceId = z.string().regex(DEVICE_ID_PATTERN, "1–64 characters: letters, digits, '_', '-', '.', ':'");

export const IsoTime = z.iso.datetime({ offset: true }).meta({ description: "ISO-8601 date-time", example: "2024-01-15T10:45:30Z" });

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
  })
  .catchall(z.unknown())
  .meta({ id: "Problem", description: "RFC 9457 problem details" });
