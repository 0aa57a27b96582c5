import { Registry, Counter, Gauge, collectDefaultMetrics } from "prom-client";

/** Every metric the cloud exports, on its own registry (no module-level singletons). */
export function createCloudMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "cloud_" });
  return {
    registry,
    httpRequests: new Counter({ name: "cloud_http_requests_total", help: "HTTP requests, by status class", labelNames: ["status"], registers: [registry] }),
    influxWrites: new Counter({ name: "cloud_influx_write_lines_total", help: "line-protocol lines sent to InfluxDB, by outcome", labelNames: ["outcome"], registers: [registry] }),
    influxRetries: new Counter({ name: "cloud_influx_write_retries_total", help: "InfluxDB write attempts retried after a 5xx, 429, timeout or network error", registers: [registry] }),
    commands: new Counter({ name: "cloud_commands_total", help: "commands stored, by initial status", labelNames: ["status"], registers: [registry] }),
    wsClients: new Gauge({ name: "cloud_ws_clients", help: "connected WebSocket clients", registers: [registry] }),
    wsDropped: new Counter({ name: "cloud_ws_dropped_total", help: "WebSocket clients dropped, by reason", labelNames: ["reason"], registers: [registry] }),
  };
}
export type CloudMetrics = ReturnType<typeof createCloudMetrics>;
