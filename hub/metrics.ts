import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from "prom-client";

/** What the sync gauges show, read at scrape time (issue 6 §8). */
export interface SyncGaugeValues {
  outboxRows: number;
  outboxBytes: number;
  oldestAgeS: number;
  /** Seconds since the epoch of the last acknowledged batch; 0 = never. */
  lastSuccessS: number;
  linkConnected: boolean;
  /** Persisted totals (sync_drops, sync_dead_letters): they survive a restart. */
  dropped: Record<string, number>;
  deadLettered: number;
}

/** Every metric the hub exports, on its own registry (no module-level singletons). */
export function createHubMetrics() {
  const registry = new Registry();
  // The sync service plugs in its reader; a scrape reads current values (prom-client collect callbacks), so
  // /metrics is right without a /health call before it. One read serves every metric of the same scrape.
  let syncSource: (() => SyncGaugeValues) | null = null;
  let lastRead: SyncGaugeValues | null = null;
  const sync = (): SyncGaugeValues | null => {
    if (!syncSource) return null;
    if (!lastRead) {
      lastRead = syncSource();
      // prom-client calls every collect() of one scrape in the same turn of the event loop.
      setImmediate(() => (lastRead = null));
    }
    return lastRead;
  };
  const syncGauge = (name: string, help: string, read: (v: SyncGaugeValues) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const v = sync();
        if (v) this.set(read(v));
      },
    });
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
    outboxDropped: new Counter({
      name: "hub_outbox_dropped_total",
      help: "outbox rows dropped before reaching the cloud, by reason (max_age, full_rollup_1m, …); persisted across restarts",
      labelNames: ["reason"],
      registers: [registry],
      collect() {
        const v = sync();
        if (!v) return;
        this.reset();
        for (const [reason, n] of Object.entries(v.dropped)) this.inc({ reason }, n);
      },
    }),
    syncBatches: new Counter({ name: "hub_sync_batches_total", help: "sync batches sent to the cloud, by outcome", labelNames: ["outcome"], registers: [registry] }),
    syncDeadLettered: new Counter({
      name: "hub_sync_dead_lettered_total",
      help: "outbox rows the cloud refused, moved to sync_dead_letters (the rows in that table)",
      registers: [registry],
      collect() {
        const v = sync();
        if (!v) return;
        this.reset();
        this.inc(v.deadLettered);
      },
    }),
    linkFrames: new Counter({ name: "hub_link_frames_total", help: "frames received on the cloud link, by type (bad = refused)", labelNames: ["outcome"], registers: [registry] }),
    outboxDepth: syncGauge("hub_outbox_rows", "rows waiting in the sync outbox", (v) => v.outboxRows),
    outboxBytes: syncGauge("hub_outbox_bytes", "bytes the sync outbox takes on disk (estimated per row, see hub/sync/outbox.ts)", (v) => v.outboxBytes),
    outboxOldestAge: syncGauge("hub_outbox_oldest_age_seconds", "age of the oldest unsent outbox row (0 when empty)", (v) => v.oldestAgeS),
    syncLastSuccess: syncGauge("hub_sync_last_success_timestamp_seconds", "when the cloud last acknowledged a batch (0 = never since start)", (v) => v.lastSuccessS),
    linkConnected: syncGauge("hub_link_connected", "1 while the cloud link is connected", (v) => (v.linkConnected ? 1 : 0)),
    httpRequests: new Counter({ name: "hub_http_requests_total", help: "HTTP requests, by status class", labelNames: ["status"], registers: [registry] }),
    /** Where the sync gauges read from at scrape time (set once by the sync service). */
    setSyncSource(read: () => SyncGaugeValues) {
      syncSource = read;
      lastRead = null;
    },
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
