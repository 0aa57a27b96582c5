// Starts a real PostgreSQL 15 (Debian's `postgresql-15`, issue 5 §1) in a temporary directory on a free loopback
// port: initdb, then `postgres -D … -p PORT -k DIR -h 127.0.0.1`, unsynced (tests, not durability). PostgreSQL
// refuses to run as root, so as root it runs as the `postgres` system user the Debian package creates.
// Binaries: /usr/lib/postgresql/15/bin first; as root on Debian 12 `postgresql-15` is installed when it is missing
// (even if another major is present); elsewhere the newest installed major or one in PATH, with a warning.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { ensureBinary, freePort, waitFor } from "./influx.js";

export interface TestPostgres {
  /** Superuser URL of the `postgres` database. */
  url: string;
  port: number;
  /** Major version of the server binaries in use (15 wherever it can be had). */
  major: number;
  /** Creates a fresh database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  close(): Promise<void>;
}

/** The major version the cloud targets (issue 5 §1). */
export const PG_MAJOR = 15;
const PG_BASE = "/usr/lib/postgresql";
const binDir = (major: number | string) => `${PG_BASE}/${major}/bin`;
const complete = (dir: string) => existsSync(join(dir, "postgres")) && existsSync(join(dir, "initdb"));

/** Debian keeps the server binaries out of PATH: 15 first, then the other installed majors, newest first. */
export function pgBinDirs(): string[] {
  const others = existsSync(PG_BASE)
    ? readdirSync(PG_BASE)
        .filter((v) => /^\d+$/.test(v) && Number(v) !== PG_MAJOR)
        .sort((a, b) => Number(b) - Number(a))
        .map(binDir)
    : [];
  return [binDir(PG_MAJOR), ...others];
}

/** `postgres` and `initdb` from one directory (never two majors mixed), with that directory's major version. */
async function serverBinaries(): Promise<{ postgres: string; initdb: string; major: number }> {
  const debian12 = existsSync("/etc/debian_version") && readFileSync("/etc/debian_version", "utf8").startsWith("12");
  if (!complete(binDir(PG_MAJOR)) && debian12 && process.getuid?.() === 0) {
    // Only the 15 directory is searched here, so a newer major elsewhere does not stop the install.
    await ensureBinary("initdb", `postgresql-${PG_MAJOR}`, () => [binDir(PG_MAJOR)]);
    // The package starts its own cluster on 5432 where an init system runs; the tests use their own servers.
    spawnSync("service", ["postgresql", "stop"], { stdio: "ignore" });
  }
  const dir = pgBinDirs().find(complete);
  const postgres = dir ? join(dir, "postgres") : await ensureBinary("postgres", debian12 ? `postgresql-${PG_MAJOR}` : "postgresql");
  const initdb = dir ? join(dir, "initdb") : await ensureBinary("initdb", debian12 ? `postgresql-${PG_MAJOR}` : "postgresql");
  const version = execFileSync(postgres, ["--version"], { encoding: "utf8" }); // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
  const major = Number(/\(PostgreSQL\) (\d+)/.exec(version)?.[1] ?? NaN);
  if (major !== PG_MAJOR) process.stderr.write(`test/helpers/postgres: PostgreSQL ${PG_MAJOR} not found; using ${version.trim()} from ${postgres}\n`);
  return { postgres, initdb, major };
}

function runAs(): { uid: number; gid: number } | null {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return null;
  const id = (flag: string) => spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
  let u = id("-u");
  if (u.status !== 0) {
    spawnSync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"]);
    u = id("-u");
    if (u.status !== 0) throw new Error("running as root and could not find or create the 'postgres' user PostgreSQL must run as");
  }
  return { uid: Number(u.stdout.trim()), gid: Number(id("-g").stdout.trim()) };
}

export async function startPostgres(): Promise<TestPostgres> {
  const { postgres, initdb, major } = await serverBinaries();
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), "pg-test-"));
  const data = join(dir, "data");
  const sock = join(dir, "sock");
  mkdirSync(sock);
  if (user) {
    chownSync(dir, user.uid, user.gid);
    chownSync(sock, user.uid, user.gid);
  }
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  const init = spawnSync(initdb, ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"], { encoding: "utf8", ...as, cwd: dir });
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr || init.error?.message}`);

  const port = await freePort();
  const logFile = join(dir, "postgres.log");
  const fd = openSync(logFile, "a");
  if (user) chownSync(logFile, user.uid, user.gid);
  const proc: ChildProcess = spawn(
    postgres,
    ["-D", data, "-p", String(port), "-k", sock, "-h", "127.0.0.1", "-F", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=64MB"],
    { stdio: ["ignore", fd, fd], ...as, cwd: dir },
  );
  closeSync(fd);
  let exited = false;
  proc.once("exit", () => (exited = true));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitFor(
    `postgres on port ${port}`,
    async () => {
      if (exited) throw new Error("postgres exited");
      const c = new pg.Client({ connectionString: url });
      try {
        await c.connect();
        await c.query("SELECT 1");
        return true;
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    30_000,
    () => readFileSync(logFile, "utf8").slice(-2000),
  );

  return {
    url,
    port,
    major,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad database name ${name}`);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async close() {
      if (!exited) {
        const gone = new Promise<void>((r) => proc.once("exit", () => r()));
        proc.kill("SIGINT"); // fast shutdown
        const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
