// Starts a real InfluxDB 1.x (Debian's `influxdb` package, `influxd`) in a temporary directory on free loopback
// ports, with its own generated influxdb.conf. stop()/start() take it down and bring it back on the same port
// and data (the "InfluxDB down and back" tests).
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface TestInflux {
  url: string;
  port: number;
  dir: string;
  /** Stops influxd (SIGTERM, then SIGKILL after 5 s); data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

/**
 * `walFsyncDelay`: InfluxDB's [data] wal-fsync-delay. Tests batch WAL fsyncs for 100 ms (fewer disk flushes on
 * shared CI disks; every write then takes ≥ 100 ms); benchmarks pass InfluxDB's own default, "0s".
 */
export async function startInflux(o: { walFsyncDelay?: string } = {}): Promise<TestInflux> {
  const bin = await ensureBinary("influxd", "influxdb");
  const dir = mkdtempSync(join(tmpdir(), "influx-test-"));
  const [port, rpcPort] = [await freePort(), await freePort()];
  const conf = join(dir, "influxdb.conf");
  writeFileSync(
    conf,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${dir}/meta"
  logging-enabled = false

[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "${o.walFsyncDelay ?? "100ms"}"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
  pprof-enabled = false
`,
  );
  const logFile = join(dir, "influxd.log");
  const url = `http://127.0.0.1:${port}`;
  let proc: ChildProcess | null = null;

  const start = async () => {
    const fd = openSync(logFile, "a");
    proc = spawn(bin, ["-config", conf], { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    const p = proc;
    let exited = false;
    p.once("exit", () => (exited = true));
    await waitFor(
      `influxd on ${url}`,
      async () => {
        if (exited) throw new Error("influxd exited");
        const r = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
        return r.status === 204;
      },
      30_000,
      () => readFileSync(logFile, "utf8").slice(-2000),
    );
  };
  const stop = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(t);
  };
  await start();
  return {
    url,
    port,
    dir,
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- plumbing shared with postgres.ts: free ports, waiting, and installing a missing Debian package when we
// are root on Debian/Ubuntu (ARCHITECTURE §6), else a clear error naming the package.


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

export function which(bin: string, extraDirs: string[] = []): string | null {
  for (const d of extraDirs) if (existsSync(`${d}/${bin}`)) return `${d}/${bin}`;
  const r = spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : null;
}

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;
const isDebian = () => existsSync("/etc/debian_version") && which("apt-get") !== null;

/**
 * Finds `bin`; when it is missing and we are root on Debian, installs `pkg` with apt-get (one installer at a
 * time across test workers), else throws naming the package.
 */
export async function ensureBinary(bin: string, pkg: string, extraDirs: () => string[] = () => []): Promise<string> {
  const found = which(bin, extraDirs());
  if (found) return found;
  if (!isRoot() || !isDebian()) {
    throw new Error(`'${bin}' not found: install the Debian/Ubuntu package '${pkg}' (apt-get install -y ${pkg}), or run the tests as root on Debian so they install it`);
  }
  const lock = "/tmp/smartplug-test-apt.lock";
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      await sleep(500);
      const now = which(bin, extraDirs());
      if (now) return now;
    }
  }
  try {
    const again = which(bin, extraDirs());
    if (again) return again;
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    execFileSync("apt-get", ["update"], { stdio: "ignore", env });
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", pkg], { stdio: "ignore", env });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  const installed = which(bin, extraDirs());
  if (!installed) throw new Error(`installed '${pkg}' but '${bin}' is still not found`);
  return installed;
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, log: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms\n${log()}`);
    await sleep(100);
  }
}
