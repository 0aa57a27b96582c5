// Runs the hub as a real child process (`node --import tsx hub/main.ts`), for kill -9 and restart tests (F1, F15).
// Not `node_modules/.bin/tsx hub/main.ts`: the tsx CLI runs the script in a *second* node process, so a
// SIGKILL sent to the CLI leaves the real hub running (orphaned, still holding its ports and database),
// and /proc/<pid> would describe the wrapper, not the hub.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Every hub still running, killed if the test process exits without stopping it (a failed test, a timeout). */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface HubProcess {
  proc: ChildProcess;
  /** The hub's own pid (the node process running hub/main.ts). */
  pid: number;
  /** performance.now() when the process was spawned. */
  spawnedAt: number;
  httpPort: number;
  mqttPort: number;
  /** Log lines the hub printed (JSON). */
  lines: string[];
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** Starts the hub and resolves when it logs "hub started". Ports are fixed per data dir so plugs can reconnect. */
export async function spawnHub(o: { dataDir: string; httpPort: number; mqttPort: number; env?: Record<string, string>; timeoutMs?: number; nodeArgs?: string[] }): Promise<HubProcess> {
  const spawnedAt = performance.now();
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), "--import", "tsx", "hub/main.ts"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      HUB_DATA_DIR: o.dataDir,
      HUB_HTTP_HOST: "127.0.0.1",
      HUB_HTTP_PORT: String(o.httpPort),
      HUB_MQTT_HOST: "127.0.0.1",
      HUB_MQTT_PORT: String(o.mqttPort),
      HUB_PUBLIC_HOST: "127.0.0.1",
      HUB_LOG_LEVEL: "info",
      HUB_SNTP_PORT: "off",
      HUB_COMMIT_INTERVAL_MS: "50", // as in test/helpers/hub.ts: quick PUBACKs for tests
      ...o.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  let buf = "";
  live.add(proc);
  const exited = new Promise<number | null>((resolve) =>
    proc.once("exit", (code) => {
      live.delete(proc);
      resolve(code);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`hub did not start in time:\n${lines.slice(-20).join("\n")}`));
    }, o.timeoutMs ?? 20_000);
    const onData = (chunk: Buffer) => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (line.includes('"msg":"hub started"')) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", (c: Buffer) => lines.push(c.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`hub exited (${code}) before starting:\n${lines.slice(-20).join("\n")}`));
    });
  });
  return {
    proc,
    pid: proc.pid!,
    spawnedAt,
    httpPort: o.httpPort,
    mqttPort: o.mqttPort,
    lines,
    exited,
    kill(signal) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
