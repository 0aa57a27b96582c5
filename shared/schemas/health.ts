import { z } from "zod";

export const ComponentHealth = z.object({ status: z.enum(["healthy", "degraded", "unhealthy"]) }).catchall(z.unknown());
export const HealthResponse = z
  .object({
    status: z.enum(["healthy", "degraded", "unhealthy"]),
    timestamp: z.string(),
    version: z.string(),
    uptime_s: z.number(),
    components: z.record(z.string(), ComponentHealth),
  })
  .meta({ id: "HealthResponse" });
export type HealthResponse = z.infer<typeof HealthResponse>;
