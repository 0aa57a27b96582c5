// The bare-aedes reference line: aedes 1.2 with its defaults behind a plain net server (anonymous,
// no byte guard, no hooks, nothing stored), TCP_NODELAY set as the hub sets it (RELIABILITY fact 8).
// The subscriber to `#` is a separate MQTT client in the orchestrator, as the hub's WebSocket client is.
// Event-loop delay is measured as prom-client does for the hub (monitorEventLoopDelay, 10 ms
// resolution, reset on each read), so the two lines are comparable.
import { Aedes } from "aedes";
import { createServer } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";

const aedes = await Aedes.createBroker();
const server = createServer((socket) => {
  socket.setNoDelay(true);
  aedes.handle(socket);
});
await new Promise<void>((resolve) => server.listen(Number(process.env.BENCH_PORT ?? 0), "127.0.0.1", () => resolve()));
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

process.on("uncaughtException", (err) => {
  // RELIABILITY fact 7: aedes dies of mqemitter recursion under overload; say so before exiting.
  console.error(`aedes-child crashed: ${err.stack ?? String(err)}`);
  process.exit(70);
});

process.send?.({ type: "ready", port: (server.address() as { port: number }).port });
process.on("message", (m: { type?: string; rid?: number }) => {
  if (m.type === "lag") {
    process.send?.({ rid: m.rid, p99Ms: lag.percentile(99) / 1e6, maxMs: lag.max / 1e6 });
    lag.reset();
  } else if (m.type === "stop") {
    server.close();
    aedes.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  }
});
process.on("disconnect", () => process.exit(0));
