import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** JSON logs, one line per event; secrets redacted (STYLE.md §6). */
export function createLogger(opts: { app: string; level: LevelWithSilent | string }): Logger {
  return pino({
    level: opts.level,
    base: { app: opts.app },
    redact: {
      paths: ["password", "*.password", "pairing_code", "*.pairing_code", "token", "*.token", "refresh_token", "*.refresh_token", "req.headers.authorization"],
      censor: "[redacted]",
    },
  });
}
