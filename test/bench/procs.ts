// Process plumbing for the benchmark: every measured server (hub, bare aedes, Mosquitto) and every load
// generator runs in its own process, so /proc/<pid>/{status,io,stat} describe one of them alone.
// TypeScript children are forked as `node --import tsx script.ts` rather than through the tsx CLI, which
// would put a wrapper process between us and the one we measure.
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
export const MOSQUITTO_BIN = "/usr/sbin/mosquitto";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The last lines a child printed, kept for error messages (the pipe must be drained or the child blocks). */
class Tail {
  private lines: string[] = [];
  push(chunk: Buffer | string) {
    for (const l of chunk.toString().split("\n")) if (l.trim()) this.lines.push(l);
    if (this.lines.length > 200) this.lines.splice(0, this.lines.length - 200);
  }
  text(n = 30) {
    return this.lines.slice(-n).join("\n");
  }
}

const live = new Set<Child>();

/** SIGKILLs every child this process started that is still running (each by its own pid). */
export function killChildren(): void {
  for (const c of live) c.proc.kill("SIGKILL");
}

/** A child process that speaks JSON messages over IPC; `request` waits for the reply carrying the same `rid`. */
export class Child {
  readonly tail = new Tail();
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;
  private rid = 0;
  private readonly pending = new Map<number, { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private readonly listeners: ((m: Record<string, unknown>) => void)[] = [];

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    live.add(this);
    proc.stdout?.on("data", (c: Buffer) => this.tail.push(c));
    proc.stderr?.on("data", (c: Buffer) => this.tail.push(c));
    this.exited = new Promise((resolve) =>
      proc.once("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        live.delete(this);
        for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${code ?? signal}) during a request:\n${this.tail.text()}`));
        this.pending.clear();
        resolve(code);
      }),
    );
    proc.on("message", (m: Record<string, unknown>) => {
      const id = typeof m.rid === "number" ? m.rid : undefined;
      if (id !== undefined && this.pending.has(id)) {
        const p = this.pending.get(id)!;
        this.pending.delete(id);
        if (typeof m.error === "string") p.reject(new Error(`${name}: ${m.error}`));
        else p.resolve(m);
        return;
      }
      for (const l of this.listeners) l(m);
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  request<T = Record<string, unknown>>(msg: Record<string, unknown>, timeoutMs = 120_000): Promise<T> {
    if (!this.alive) return Promise.reject(new Error(`${this.name} is not running:\n${this.tail.text()}`));
    const rid = ++this.rid;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new Error(`${this.name}: no answer to ${String(msg.type)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(rid, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ ...msg, rid });
    });
  }

  /** Resolves with the first unsolicited message of this type. */
  waitFor(type: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no '${type}' within ${timeoutMs} ms:\n${this.tail.text()}`)), timeoutMs);
      const l = (m: Record<string, unknown>) => {
        if (m.type !== type) return;
        clearTimeout(timer);
        this.listeners.splice(this.listeners.indexOf(l), 1);
        resolve(m);
      };
      this.listeners.push(l);
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code}) before '${type}':\n${this.tail.text()}`));
      });
    });
  }

  /** Asks politely (IPC 'stop' or SIGTERM), then SIGKILLs this one process after `graceMs`. */
  async stop(graceMs = 10_000): Promise<number | null> {
    if (!this.alive) return this.exitCode ?? null;
    if (this.proc.connected) this.proc.send({ type: "stop" });
    else this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** The production bundle (`npm run build`), as systemd/smartplug-hub.service runs it. */
export const HUB_BUNDLE = join(ROOT, "dist", "hub", "main.mjs");
/** Bench-only entry points (hub-child, aedes-child) bundled with the build's esbuild options. */
export const BENCH_BUNDLE_DIR = join(ROOT, "dist", "bench");
/** The node flags and environment systemd/smartplug-hub.service runs the hub with (kept equal by a unit test). */
export const PROD_NODE_ARGS = ["--enable-source-maps", "--max-semi-space-size=2"];
export const PROD_ENV = { MALLOC_ARENA_MAX: "2" };

const childNodeArgs = (name: string) => (process.env.BENCH_CHILD_NODE_ARGS && name === "hub" ? process.env.BENCH_CHILD_NODE_ARGS.split(" ").filter(Boolean) : []);

/**
 * `npm run build` (dist/hub/main.mjs, its migrations and writer thread), then the bench's own entry points
 * bundled the same way into dist/bench/ next to copies of the migrations and writer thread, so every
 * server the bench measures runs as plain node on bundled code, as the shipped hub does.
 */
export async function buildBundles(): Promise<number> {
  const t0 = performance.now();
  execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  const esbuild = await import("esbuild");
  rmSync(BENCH_BUNDLE_DIR, { recursive: true, force: true });
  await esbuild.build({
    entryPoints: [join(BENCH_DIR, "hub-child.ts"), join(BENCH_DIR, "aedes-child.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    sourcemap: true,
    outdir: BENCH_BUNDLE_DIR,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  cpSync(join(ROOT, "dist", "hub", "migrations"), join(BENCH_BUNDLE_DIR, "migrations"), { recursive: true });
  copyFileSync(join(ROOT, "dist", "hub", "writer-worker.mjs"), join(BENCH_BUNDLE_DIR, "writer-worker.mjs"));
  return performance.now() - t0;
}

/** Forks a bundled bench entry (dist/bench/<name>.mjs) under plain node with the production flags. */
export function forkBundle(name: string, entry: string, env: Record<string, string> = {}): Child {
  const proc = fork(join(BENCH_BUNDLE_DIR, entry), [], {
    cwd: ROOT,
    execArgv: [...PROD_NODE_ARGS, ...childNodeArgs(name)],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...(name === "hub" ? PROD_ENV : {}), ...env },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  return new Child(name, proc);
}

/** Runs dist/hub/main.mjs exactly as the systemd unit does (no IPC: it is stopped with SIGTERM). */
export function spawnHubBundle(env: Record<string, string>): Child {
  const proc = spawn(process.execPath, [...PROD_NODE_ARGS, ...childNodeArgs("hub"), HUB_BUNDLE], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...PROD_ENV, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Child("hub", proc);
}

/** Forks `test/bench/<script>` under node with the tsx loader (load generators and the disk baseline). */
export function forkTs(name: string, script: string, env: Record<string, string> = {}, args: string[] = []): Child {
  const proc = fork(join(BENCH_DIR, script), args, {
    cwd: ROOT,
    execArgv: ["--import", "tsx", ...childNodeArgs(name)],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  return new Child(name, proc);
}

/** Starts Mosquitto on 127.0.0.1:port with anonymous access and no persistence; null if the binary is absent. */
export async function startMosquitto(port: number): Promise<Child | null> {
  if (!existsSync(MOSQUITTO_BIN)) return null;
  const dir = tempDir("bench-mosquitto-");
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [`listener ${port} 127.0.0.1`, "allow_anonymous true", "persistence false", "set_tcp_nodelay true", "log_dest stderr", "log_type error", "log_type warning", ""].join("\n"),
  );
  const proc = spawn(MOSQUITTO_BIN, ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
  const child = new Child("mosquitto", proc);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (!child.alive) throw new Error(`mosquitto exited: ${child.tail.text()}`);
    if (await portOpen(port)) return child;
    await sleep(50);
  }
  throw new Error(`mosquitto did not listen on ${port}: ${child.tail.text()}`);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

// ---- /proc readers (Linux) ----

export interface ProcMem {
  rss: number;
  hwm: number;
}

/** Current and peak resident set size, bytes. */
export function readMem(pid: number): ProcMem | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
  } catch {
    return null;
  }
}

export interface ProcIo {
  rchar: number;
  wchar: number;
  read_bytes: number;
  write_bytes: number;
  cancelled_write_bytes: number;
}

export function readIo(pid: number): ProcIo | null {
  try {
    const out: Record<string, number> = {};
    for (const line of readFileSync(`/proc/${pid}/io`, "utf8").split("\n")) {
      const [k, v] = line.split(":");
      if (k && v) out[k.trim()] = Number(v.trim());
    }
    return out as unknown as ProcIo;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function readCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** Samples RSS of a process every `everyMs` until stopped; keeps the maximum. */
export class RssSampler {
  max = 0;
  last = 0;
  samples = 0;
  private timer: NodeJS.Timeout;
  constructor(
    private readonly pid: number,
    everyMs = 250,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.sample();
  }
  sample() {
    const m = readMem(this.pid);
    if (!m) return;
    this.last = m.rss;
    this.max = Math.max(this.max, m.rss);
    this.samples++;
  }
  stop() {
    clearInterval(this.timer);
    this.sample();
    return this;
  }
}

export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m?.[1] === "unlimited" ? Infinity : Number(m?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

// ---- who else is using the CPU ----

interface StatLine {
  ppid: number;
  /** utime + stime, s */
  own: number;
  /** cutime + cstime (children that exited and were waited for), s */
  reaped: number;
}

function readStat(pid: number | "self"): StatLine | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), own: (Number(f[11]) + Number(f[12])) / 100, reaped: (Number(f[13]) + Number(f[14])) / 100 };
  } catch {
    return null;
  }
}

/** CPU seconds used so far by this process and all its descendants, living or reaped. */
function benchCpuSeconds(): number {
  const self = readStat("self");
  if (!self) return NaN;
  const children = new Map<number, number[]>();
  const stats = new Map<number, StatLine>();
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = readStat(pid);
    if (!s) continue;
    stats.set(pid, s);
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  let total = self.own + self.reaped;
  const queue = [...(children.get(process.pid) ?? [])];
  while (queue.length) {
    const pid = queue.pop()!;
    const s = stats.get(pid)!;
    total += s.own + s.reaped;
    queue.push(...(children.get(pid) ?? []));
  }
  return total;
}

function machineCpu(): { busy: number; steal: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: (user + nice + system + irq + softirq) / 100, steal: steal / 100 };
}

export interface CpuShare {
  /** average cores busy on the whole machine (user+system+irq+softirq) */
  machineBusyCores: number;
  /** average cores used by the bench's own processes (orchestrator, servers, load generators) */
  benchCores: number;
  /** the rest: other work on the machine, plus kernel network time not charged to a process */
  otherCores: number;
  stealCores: number;
}

/** Measures, over an interval, how much of the machine the bench used and how much went elsewhere. */
export class CpuAudit {
  private t0 = performance.now();
  private m0 = machineCpu();
  private b0 = benchCpuSeconds();
  stop(): CpuShare {
    const sec = (performance.now() - this.t0) / 1000;
    const m = machineCpu();
    const b = benchCpuSeconds();
    const busy = (m.busy - this.m0.busy) / sec;
    const bench = (b - this.b0) / sec;
    const r = (x: number) => Math.round(x * 100) / 100;
    return { machineBusyCores: r(busy), benchCores: r(bench), otherCores: r(Math.max(0, busy - bench)), stealCores: r((m.steal - this.m0.steal) / sec) };
  }
}
