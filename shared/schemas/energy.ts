import { z } from "zod";
import { IsoTime } from "./common.js";

const WholeHour = z.string().regex(/^([01]\d|2[0-3]):00$|^24:00$/, "a whole hour as HH:00 (tariff windows are applied per hour)");
const Price = z.number().min(0).max(100).meta({ description: "price per kWh" });

export const TariffWindow = z.strictObject({
  days: z.array(z.number().int().min(1).max(7)).min(1).max(7).default([1, 2, 3, 4, 5, 6, 7]),
  from: WholeHour,
  to: WholeHour,
  price_per_kwh: Price,
});

export const Tariff = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("flat"), currency: z.string().regex(/^[A-Z]{3}$/, "ISO 4217 code such as EUR"), price_per_kwh: Price }),
    z.strictObject({
      type: z.literal("time_of_use"),
      currency: z.string().regex(/^[A-Z]{3}$/, "ISO 4217 code such as EUR"),
      default_price_per_kwh: Price.meta({ description: "price outside every window" }),
      windows: z.array(TariffWindow).min(1).max(48).meta({ description: "first matching window wins; local time in the hub's zone" }),
    }),
  ])
  .meta({ id: "Tariff" });
export type Tariff = z.infer<typeof Tariff>;

export const EnergyQuery = z
  .strictObject({
    period: z.enum(["day", "week", "month"]).default("day"),
    start: IsoTime.optional(),
    end: IsoTime.optional(),
  })
  .meta({ id: "EnergyQuery" });

export const EnergyResponse = z
  .object({
    device_id: z.string(),
    period: z.enum(["day", "week", "month"]),
    time_zone: z.string(),
    currency: z.string().nullable(),
    data: z.array(z.object({ start: z.string(), end: z.string(), energy_kwh: z.number(), cost: z.number().nullable() })),
    total_kwh: z.number(),
    total_cost: z.number().nullable(),
  })
  .meta({ id: "EnergyResponse" });
