// Figure: memory. Resident set size of the hub process with 100 plugs connected and reporting at 1 Hz
// (sampled every 250 ms over the latency window; the figure is the largest sample), against bare aedes
// with the same plugs and subscriber. Both run bundled under plain node, as the systemd unit runs the hub;
// an idle plain node process is measured alongside for scale.
import { spawn } from "node:child_process";
import { Child, ROOT, readMem, sleep } from "./procs.js";

export const MEMORY_LIMIT = 120 * 2 ** 20;

/** RSS of an idle plain node process, bytes. */
export async function idleNodeRss(): Promise<number> {
  const proc = spawn(process.execPath, ["-e", "process.send({ type: 'ready' }); setInterval(() => {}, 1000); process.on('disconnect', () => process.exit(0));"], {
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
