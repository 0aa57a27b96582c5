// A plug process for the families and autonomy benches: the project's family simulators
// (test/sim/sim-plug.ts) in a process of their own, so the hub's /proc counters are the hub's alone.
// Driven over IPC (procs.ts Child): "start" connects plugs, "stats" counts, "close" disconnects them
// cleanly; "stop" (from Child.stop) closes everything and exits.
import { startSimPlug, type SimFamily, type SimPlug } from "../sim/sim-plug.js";
import { clientSocketsNoDelay } from "./no-delay.js";

clientSocketsNoDelay();

export interface PlugsStart {
  type: "start";
  family: SimFamily;
  url: string;
  plugs: { deviceId: string; password: string }[];
  /** native telemetry, Gen1 state period, Gen2 NotifyStatus check, ms */
  intervalMs?: number;
  telePeriodSec?: number;
  startRelay?: boolean;
  /** pause between plug starts, ms (the hub limits connects per IP) */
  staggerMs?: number;
}

let plugs: SimPlug[] = [];
const send = (m: Record<string, unknown>) => process.send?.(m);

async function start(m: PlugsStart): Promise<{ connected: number; failed: string[] }> {
  const started: SimPlug[] = [];
  const waits: Promise<void>[] = [];
  const failed: string[] = [];
  for (const p of m.plugs) {
    const plug = startSimPlug(m.family, {
      url: m.url,
      deviceId: p.deviceId,
      password: p.password,
      loadW: 60,
      intervalMs: m.intervalMs,
      telePeriodSec: m.telePeriodSec,
      startRelay: m.startRelay ?? true,
      reconnect: true,
    });
    started.push(plug);
    waits.push(
      Promise.race([
        plug.connected(),
        new Promise<void>((_r, reject) => setTimeout(() => reject(new Error("no session in 60 s")), 60_000).unref()),
      ]).catch((e: unknown) => {
        failed.push(`${p.deviceId}: ${e instanceof Error ? e.message : String(e)}`);
      }),
    );
    if (m.staggerMs) await new Promise((r) => setTimeout(r, m.staggerMs));
  }
  await Promise.all(waits);
  plugs.push(...started);
  return { connected: started.length - failed.length, failed };
}

function stats() {
  return {
    plugs: plugs.length,
    connected: plugs.filter((p) => p.isConnected).length,
    sent: plugs.reduce((a, p) => a + p.sent, 0),
    acked: plugs.reduce((a, p) => a + p.acked, 0),
    relayOn: plugs.filter((p) => p.relayOn).length,
  };
}

async function closeAll() {
  const list = plugs;
  plugs = [];
  await Promise.allSettled(list.map((p) => p.close()));
}

process.on("message", (m: { type?: string; rid?: number } & Record<string, unknown>) => {
  const reply = (body: Record<string, unknown>) => send({ ...body, rid: m.rid });
  const fail = (e: unknown) => reply({ error: e instanceof Error ? e.message : String(e) });
  if (m.type === "start") start(m as unknown as PlugsStart).then(reply, fail);
  else if (m.type === "stats") reply(stats());
  else if (m.type === "close") closeAll().then(() => reply({ closed: true }), fail);
  else if (m.type === "stop") void closeAll().finally(() => process.exit(0));
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
// The plugs' timers are unref'd; this keeps the process alive until told to stop.
setInterval(() => undefined, 60_000);
