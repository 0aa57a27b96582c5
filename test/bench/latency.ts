// Figure: latency plug publish → consumer at 100 plugs × 1 Hz (the project's plug simulator, QoS 1).
// Hub: to a WebSocket client subscribed to every device (pushed on validation, before the commit).
// Baselines: to an MQTT subscriber to `#` on bare aedes / Mosquitto. Latency is the consumer's receive
// time minus the timestamp the plug put in the payload (same machine clock, 1 ms resolution).
import type { Target } from "./targets.js";
import type { Summary } from "./stats.js";
import { sleep } from "./procs.js";

export const LATENCY_PLUGS = 100;
export const LATENCY_WINDOW_MS = 20_000;

export interface LatencyResult {
  target: string;
  received: number;
  expected: number;
  latency: Summary;
}

export async function measureLatency(t: Target, windowMs = LATENCY_WINDOW_MS): Promise<LatencyResult> {
  t.sink.reset();
  await sleep(windowMs);
  const r = { target: t.name, received: t.sink.count, expected: Math.round((LATENCY_PLUGS * windowMs) / 1000), latency: t.sink.latency.summary() };
  return r;
}
