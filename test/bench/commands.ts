// Figure: command round trip. Hub: REST POST /devices/{id}/command → MQTT control → the simulated plug
// switches and reports its state with the command id → confirmed → HTTP response (fetch, keep-alive).
// Baselines: the MQTT part alone through bare aedes / Mosquitto — a client publishes the same control
// message and waits for the plug's status carrying the id. Sequential, one command in flight, while the
// 100 plugs keep reporting at 1 Hz.
import mqtt from "mqtt";
import { randomUUID } from "node:crypto";
import type { Target } from "./targets.js";
import { summarize, type Summary } from "./stats.js";

export const COMMANDS = 300;
export const WARMUP = 20;

export interface CommandResult {
  target: string;
  ok: number;
  failed: number;
  rtt: Summary;
}

const commandFor = (i: number) => (Math.floor(i / 100) % 2 === 0 ? "relay_off" : "relay_on");

export async function measureCommands(t: Target, n = COMMANDS): Promise<CommandResult> {
  const samples: number[] = [];
  let failed = 0;
  const plugs = t.plugs;
  if (t.api) {
    for (let i = 0; i < n + WARMUP; i++) {
      const id = plugs[i % plugs.length]!.id;
      const t0 = performance.now();
      const res = await t.api(`/devices/${id}/command`, { body: { command: commandFor(i) } });
      const body = (await res.json()) as { status?: string };
      const ms = performance.now() - t0;
      if (res.status !== 200 || body.status !== "confirmed") failed++;
      else if (i >= WARMUP) samples.push(ms);
    }
  } else {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${t.mqttPort}`, { clientId: `bench-commander-${process.pid}`, protocolVersion: 4, reconnectPeriod: 0 });
    await c.subscribeAsync("smartplug/+/status", { qos: 1 });
    const waiting = new Map<string, () => void>();
    c.on("message", (_topic, payload) => {
      const m = JSON.parse(payload.toString()) as { command_id?: string };
      if (m.command_id) waiting.get(m.command_id)?.();
    });
    for (let i = 0; i < n + WARMUP; i++) {
      const id = plugs[i % plugs.length]!.id;
      const commandId = randomUUID();
      const t0 = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 3000);
        waiting.set(commandId, () => {
          clearTimeout(timer);
          resolve(true);
        });
        c.publish(`smartplug/${id}/control`, JSON.stringify({ command: commandFor(i), id: commandId }), { qos: 1 });
      });
      waiting.delete(commandId);
      const ms = performance.now() - t0;
      if (!ok) failed++;
      else if (i >= WARMUP) samples.push(ms);
    }
    await c.endAsync(true);
  }
  return { target: t.name, ok: samples.length, failed, rtt: summarize(samples) };
}
