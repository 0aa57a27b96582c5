// The cloud's composition root: the only module that reads process.env (STYLE.md §1).
import { loadCloudConfig, ConfigError } from "./config.js";
import { createLogger } from "../shared/logger.js";
import { startCloud } from "./cloud.js";

async function main() {
  let config;
  try {
    config = loadCloudConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message); // "fix your config": exit non-zero, listing every bad variable
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger({ app: "cloud", level: config.logLevel });
  const cloud = await startCloud(config, { log });
  log.info({ http: cloud.httpPort, dataDir: config.dataDir, database: cloud.db.backend, influx: config.influx.url }, "cloud started");

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    cloud.close().then(
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
