// The hub under benchmark for the 1,000-plug runs (disk, capacity, overload), bundled by run.ts with the
// build's esbuild options into dist/bench/hub-child.mjs and run by plain node: hub/main.ts's wiring
// (config from the environment, startHub), plus two things main.ts does not offer: BENCH_FAST_HASH=1 swaps the scrypt cost for the
// test cost (pairing and first connect of 1,000 plugs would otherwise cost ~90 s of scrypt on two
// cores; steady-state ingest never hashes), and the ready/stop handshake over IPC.
import { loadHubConfig } from "../../hub/config.js";
import { startHub } from "../../hub/hub.js";
import { createLogger } from "../../shared/logger.js";

/** test/helpers/hub.ts's FAST_HASH, repeated here so the bundle pulls in nothing from the test helpers. */
const FAST_HASH = { N: 2 ** 10, r: 8, p: 1 };

const config = loadHubConfig(process.env);
const log = createLogger({ app: "hub-bench", level: config.logLevel });
const fast = process.env.BENCH_FAST_HASH === "1";
const hub = await startHub(config, { log, ...(fast ? { passwordCost: FAST_HASH, secretCost: FAST_HASH } : {}) });
process.send?.({ type: "ready", httpPort: hub.httpPort, mqttPort: hub.mqttPort });

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  hub.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
};
process.on("message", (m: { type?: string }) => {
  if (m.type === "stop") stop();
});
process.on("disconnect", stop);
process.on("SIGTERM", stop);
