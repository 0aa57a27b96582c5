import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from "prom-client";

/** Every metric the hub exports, on its own registry (no module-level singletons). */
export function createHubMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "hub_", eventLoopMonitoringPrecision: 10 });
  const m = {
    registry,
    dropped: new Counter({ name: "hub_messages_dropped_total", help: "MQTT messages dropped, by reason", labelNames: ["reason"], registers: [registry] }),
    shed: new Counter({ name: "hub_mqtt_shed_total", help: "MQTT packets or connections shed before reaching the broker, by reason", labelNames: ["reason"], registers: [registry] }),
    refused: new Counter({ name: "hub_mqtt_connections_refused_total", help: "MQTT connections refused, by reason", labelNames: ["reason"], registers: [registry] }),
    stored: new Counter({ name: "hub_readings_stored_total", help: "readings committed to SQLite", registers: [registry] }),
    duplicates: new Counter({ name: "hub_readings_duplicate_total", help: "readings already stored (resent PUBLISH), stored once", registers: [registry] }),
    commitSeconds: new Histogram({ name: "hub_ingest_commit_seconds", help: "duration of one group commit", buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5], registers: [registry] }),
    commitBatch: new Histogram({ name: "hub_ingest_commit_batch_size", help: "items per group commit", buckets: [1, 5, 10, 50, 100, 500, 1000, 5000], registers: [registry] }),
    mqttClients: new Gauge({ name: "hub_mqtt_clients", help: "connected MQTT clients", registers: [registry] }),
    devicesOnline: new Gauge({ name: "hub_devices_online", help: "paired devices online", registers: [registry] }),
    commands: new Counter({ name: "hub_commands_total", help: "relay commands, by final status", labelNames: ["status"], registers: [registry] }),
    securityEvents: new Counter({ name: "hub_security_events_total", help: "denied MQTT actions, by kind", labelNames: ["kind"], registers: [registry] }),
    wsClients: new Gauge({ name: "hub_ws_clients", help: "connected WebSocket clients", registers: [registry] }),
    alerts: new Counter({ name: "hub_alerts_total", help: "alerts raised, by kind", labelNames: ["kind"], registers: [registry] }),
    outboxDropped: new Counter({ name: "hub_outbox_dropped_total", help: "outbox rows dropped before reaching the cloud, by reason (max_age, full_rollup_1m, …)", labelNames: ["reason"], registers: [registry] }),
    syncBatches: new Counter({ name: "hub_sync_batches_total", help: "sync batches sent to the cloud, by outcome", labelNames: ["outcome"], registers: [registry] }),
    syncDeadLettered: new Counter({ name: "hub_sync_dead_lettered_total", help: "outbox rows the cloud refused, moved to sync_dead_letters", registers: [registry] }),
    linkFrames: new Counter({ name: "hub_link_frames_total", help: "frames received on the cloud link, by type (bad = refused)", labelNames: ["outcome"], registers: [registry] }),
    outboxDepth: new Gauge({ name: "hub_outbox_rows", help: "rows waiting in the sync outbox", registers: [registry] }),
    outboxBytes: new Gauge({ name: "hub_outbox_bytes", help: "estimated bytes waiting in the sync outbox", registers: [registry] }),
    outboxOldestAge: new Gauge({ name: "hub_outbox_oldest_age_seconds", help: "age of the oldest unsent outbox row", registers: [registry] }),
    syncLastSuccess: new Gauge({ name: "hub_sync_last_success_timestamp_seconds", help: "when the cloud last acknowledged a batch (0 = never)", registers: [registry] }),
    linkConnected: new Gauge({ name: "hub_link_connected", help: "1 while the cloud link is connected", registers: [registry] }),
    httpRequests: new Counter({ name: "hub_http_requests_total", help: "HTTP requests, by status class", labelNames: ["status"], registers: [registry] }),
  };
  return m;
}
export type HubMetrics = ReturnType<typeof createHubMetrics>;

/** Reads a labelled counter's values as a plain object, for /health. */
export async function counterByLabel(c: Counter<string>, label: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await c.get()).values) out[String(v.labels[label])] = v.value;
  return out;
}
