import { z } from "zod";
import { isValidTimeZone } from "../time-zone.js";

const HHMM = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "local time as HH:MM (24 h)");
/** ISO weekdays: 1 = Monday … 7 = Sunday. */
const Days = z.array(z.number().int().min(1).max(7)).min(1).max(7).refine((d) => new Set(d).size === d.length, "days must not repeat");
const Action = z.enum(["on", "off"]);
const common = {
  name: z.string().trim().min(1).max(100).optional(),
  enabled: z.boolean().default(true),
  time_zone: z.string().refine(isValidTimeZone, "must be an IANA time zone such as Europe/Berlin").optional().meta({ description: "defaults to the hub's time zone" }),
  reassert_on_boot: z.boolean().default(false).meta({ description: "after a hub restart or the plug coming back, switch it to the current slot's state again even if it was switched by hand" }),
};

export const WeeklyRule = z.strictObject({ type: z.literal("weekly"), days: Days, at: HHMM, action: Action, ...common });
export const WindowRule = z.strictObject({
  type: z.literal("window"),
  days: Days.default([1, 2, 3, 4, 5, 6, 7]),
  from: HHMM,
  to: HHMM.meta({ description: "end of the window; earlier than `from` means the next day" }),
  action: Action.default("on").meta({ description: "state inside the window; the opposite is set when it ends" }),
  ...common,
});
export const OnceRule = z.strictObject({
  type: z.literal("once"),
  at: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$/, "local date-time as YYYY-MM-DDTHH:MM"),
  action: Action,
  ...common,
});

export const CreateScheduleRequest = z.discriminatedUnion("type", [WeeklyRule, WindowRule, OnceRule]).meta({ id: "CreateScheduleRequest" });
export type CreateScheduleRequest = z.infer<typeof CreateScheduleRequest>;

export const UpdateScheduleRequest = z
  .strictObject({ name: z.string().trim().min(1).max(100).optional(), enabled: z.boolean().optional(), reassert_on_boot: z.boolean().optional() })
  .meta({ id: "UpdateScheduleRequest", description: "rename, enable/disable; to change timing, delete and create" });

export const Schedule = z
  .object({
    id: z.string(),
    device_id: z.string(),
    type: z.enum(["weekly", "window", "once"]),
    name: z.string().nullable(),
    days: z.array(z.number().int()).nullable(),
    at: z.string().nullable(),
    from: z.string().nullable(),
    to: z.string().nullable(),
    action: Action,
    time_zone: z.string(),
    enabled: z.boolean(),
    reassert_on_boot: z.boolean(),
    next_run: z.string().nullable().meta({ description: "the next instant this schedule switches the plug" }),
    created_at: z.string(),
  })
  .meta({ id: "Schedule" });
export type Schedule = z.infer<typeof Schedule>;
