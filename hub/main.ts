// The hub's composition root: the only module that reads process.env (STYLE.md §1).
import { loadHubConfig, ConfigError } from "./config.js";
import { createLogger } from "../shared/logger.js";
import { startHub } from "./hub.js";
import { backupHubDb } from "./db/backup.js";

async function main() {
  let config;
  try {
    config = loadHubConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message); // "fix your config": exit non-zero, listing every bad variable
      process.exit(1);
    }
    throw err;
  }
  if (process.argv[2] === "backup") {
    const target = process.argv[3];
    if (!target) {
      console.error("usage: npm run hub -- backup FILE");
      process.exit(2);
    }
    const r = await backupHubDb(config.dataDir, target);
    console.log(`backup written to ${target}: ${r.bytes} bytes, ${r.readings} raw readings, integrity ok`);
    return;
  }
  const log = createLogger({ app: "hub", level: config.logLevel });
  const hub = await startHub(config, { log });
  log.info({ http: hub.httpPort, mqtt: hub.mqttPort, dataDir: config.dataDir }, "hub started");

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    hub.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "unclean stop");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
