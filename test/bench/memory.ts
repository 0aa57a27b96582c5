// Figure: memory. Resident set size of the hub process with 100 plugs connected and reporting at 1 Hz
// (sampled every 250 ms over the latency window; the figure is the largest sample), against bare aedes
// with the same plugs and subscriber. Both run under the tsx loader, as `npm run hub` does; the loader's
// own share is measured separately (an idle script under `node --import tsx` vs plain `node`).
import { spawn } from "node:child_process";
import { Child, ROOT, readMem, sleep } from "./procs.js";

export const MEMORY_LIMIT = 120 * 2 ** 20;

async function idleRss(args: string[]): Promise<number> {
  const proc = spawn(process.execPath, [...args, "-e", "process.send({ type: 'ready' }); setInterval(() => {}, 1000); process.on('disconnect', () => process.exit(0));"], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "ignore", "ipc"],
  });
  const child = new Child("idle", proc);
  await child.waitFor("ready", 30_000);
  await sleep(1000);
  const rss = readMem(child.pid)?.rss ?? NaN;
  proc.disconnect();
  await child.stop(2000);
  return rss;
}

/** RSS of an idle Node process with and without the tsx loader, bytes. */
export async function loaderOverhead(): Promise<{ plainNode: number; withTsx: number }> {
  return { plainNode: await idleRss([]), withTsx: await idleRss(["--import", "tsx"]) };
}
