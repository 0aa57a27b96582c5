// A cross-process lock for tests that must not overlap: the kill/restart fault tests (F1, F15) each
// restart a real hub process dozens of times and measure restart latency and RSS. Run side by side on
// two cores (vitest runs files in parallel workers), each one's restarts starve the other's, and what they
// measure is the neighbour, not the hub. The lock is a file created with O_EXCL holding the owner's pid;
// a lock whose owner is dead is taken over.
import { openSync, writeSync, closeSync, readFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Waits until this process holds the lock `name` (scoped to this checkout); resolves with its release. */
export async function exclusive(name: string, o: { timeoutMs: number; onWait?: () => void }): Promise<() => void> {
  const path = join(tmpdir(), `smartplug-${createHash("sha256").update(ROOT).digest("hex").slice(0, 12)}-${name}.lock`);
  const end = Date.now() + o.timeoutMs;
  let told = false;
  for (;;) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          unlinkSync(path);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(path, "utf8"));
    } catch {
      continue; // released between our open and read
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      try {
        unlinkSync(path); // its owner died without releasing it
      } catch {
        /* someone else took it over first */
      }
      continue;
    }
    if (Date.now() > end) throw new Error(`lock ${path} still held by pid ${owner} after ${o.timeoutMs} ms`);
    if (!told) {
      told = true;
      o.onWait?.();
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
