// RELIABILITY F15: restart storm. The hub runs as its own process and is stopped with SIGTERM or SIGKILL
// (seeded choice) at seeded random moments after it starts — some while plugs are still reconnecting,
// authenticating or re-sending — and restarted at once, while 20 plugs keep reconnecting and publishing.
// Afterwards the hub's RSS, after the same settle time, is at most 1.2 × the first start's, and no acked
// reading is lost (the same accounting as F1).
//
// F15_CYCLES (default 20, ≈ 60–70 s here) and F15_SEED (default "f15") are read from the environment.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, spawnHub, type HubProcess } from "../../helpers/hub-process.js";
import { PlugFleet, pairPlugs, rssKiB, scrapeMetric, seedFrom, stats, verifyStore } from "../../helpers/plug-fleet.js";
import { createRng } from "../../sim/native-payloads.js";
import { exclusive } from "../../helpers/exclusive.js";

const CYCLES = Math.max(1, Number(process.env.F15_CYCLES ?? 20) || 20);
const SEED = seedFrom(process.env.F15_SEED, "f15");
const PLUGS = 20;
const RATE = 5;
const MAX_UPTIME_MS = 2500; // each stop lands uniformly in [0, this) after "hub started"
const SETTLE_MS = 5000; // RSS is read this long after all plugs are connected, at the first and the last start
const RSS_RATIO_MAX = 1.2;

const dataDir = mkdtempSync(join(tmpdir(), "hub-f15-"));
let hub: HubProcess | undefined;
let fleet: PlugFleet | undefined;
let release: (() => void) | undefined;

// One hub-restarting fault test at a time (see helpers/exclusive.ts); waiting for the other is not our time.
beforeAll(async () => {
  release = await exclusive("hub-process-faults", { timeoutMs: 15 * 60_000, onWait: () => console.log("[F15] waiting for another hub-restarting fault test to finish") });
}, 15 * 60_000);

afterAll(async () => {
  await fleet?.close();
  await hub?.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
  release?.();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Median of five VmRSS samples 200 ms apart, KiB. */
async function settledRss(pid: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    xs.push(rssKiB(pid));
    await sleep(200);
  }
  return stats(xs).median;
}

describe("fault matrix", () => {
  it(
    "F15: restart storm (SIGTERM/SIGKILL cycles while plugs reconnect) — RSS after ≤ 1.2 × baseline, 0 acked lost",
    async () => {
      const began = performance.now();
      const rng = createRng(SEED);
      console.log(`[F15] seed=${SEED} cycles=${CYCLES} plugs=${PLUGS} rate=${RATE}/s each settle=${SETTLE_MS} ms (set F15_SEED / F15_CYCLES to change)`);
      const httpPort = await freePort();
      const mqttPort = await freePort();
      const httpUrl = `http://127.0.0.1:${httpPort}`;
      const start = () => spawnHub({ dataDir, httpPort, mqttPort });

      // Pairing hashes the owner's password and 20 plug secrets: done in a start of its own, so the
      // baseline start does the same work as the last one (plugs authenticating, ingest).
      hub = await start();
      const ids = Array.from({ length: PLUGS }, (_, i) => `f15-plug-${String(i).padStart(2, "0")}`);
      const plugs = await pairPlugs(httpUrl, ids);
      expect(await hub.kill("SIGTERM")).toBe(0);

      hub = await start();
      fleet = new PlugFleet({ url: `mqtt://127.0.0.1:${mqttPort}`, plugs, ratePerSec: RATE, reconnectPeriodMs: 200, rng });
      const f = fleet;
      const t0 = performance.now();
      f.start();
      await f.allBack(t0, "all plugs connected", hub);
      await sleep(SETTLE_MS);
      const baseline = await settledRss(hub.pid);
      console.log(`[F15] baseline: first start, ${SETTLE_MS} ms after all plugs connected: VmRSS ${(baseline / 1024).toFixed(1)} MiB`);

      const stormBegan = performance.now();
      let duplicates = 0;
      const signals = { SIGTERM: 0, SIGKILL: 0 };
      const cleanExits: (number | null)[] = [];
      const allAccept: number[] = [];
      for (let cycle = 1; cycle <= CYCLES; cycle++) {
        const uptime = Math.floor(rng() * MAX_UPTIME_MS);
        const signal = rng() < 0.5 ? "SIGTERM" : "SIGKILL";
        await sleep(uptime);
        duplicates += await scrapeMetric(httpUrl, "hub_readings_duplicate_total");
        const stoppedAt = performance.now();
        const code = await hub.kill(signal);
        const backTimes = f.connackAfter(hub.spawnedAt, stoppedAt);
        const back = backTimes.filter((x) => x !== undefined).length;
        if (back === PLUGS) allAccept.push(Math.max(...(backTimes as number[])) - hub.spawnedAt);
        signals[signal]++;
        if (signal === "SIGTERM") cleanExits.push(code);
        else expect(code).toBeNull();
        const restartedAt = performance.now();
        hub = await start();
        const c = f.counts;
        console.log(
          `[F15] cycle ${cycle}/${CYCLES}: ${signal} ${uptime} ms after "hub started" (${back}/${PLUGS} plugs had reconnected; unacked ${c.outstanding}); ` +
            `"hub started" after ${(performance.now() - restartedAt).toFixed(0)} ms`,
        );
      }
      const stormS = (performance.now() - stormBegan) / 1000;

      await f.allBack(hub.spawnedAt, "all plugs back after the storm", hub);
      await sleep(SETTLE_MS);
      const after = await settledRss(hub.pid);
      const ratio = after / baseline;
      console.log(
        `[F15] after ${CYCLES} cycles (${signals.SIGTERM} SIGTERM, ${signals.SIGKILL} SIGKILL) in ${stormS.toFixed(1)} s: VmRSS ${(after / 1024).toFixed(1)} MiB ` +
          `= ${ratio.toFixed(3)} × baseline (limit ${RSS_RATIO_MAX})`,
      );

      f.stopGenerating();
      const drainFrom = performance.now();
      const backlog = f.counts.outstanding;
      const outstanding = await f.drain(5000);
      console.log(`[F15] final backlog of ${backlog} unacked readings drained in ${((performance.now() - drainFrom) / 1000).toFixed(1)} s (${outstanding} left)`);
      const counts = f.counts;
      duplicates += await scrapeMetric(httpUrl, "hub_readings_duplicate_total");
      await f.close();
      fleet = undefined;
      expect(await hub.kill("SIGTERM")).toBe(0);
      hub = undefined;

      const check = verifyStore(join(dataDir, "hub.sqlite"), f.sent, f.acked);
      const aa = stats(allAccept);
      console.log(
        `[F15] readings sent ${counts.sent}, acked ${counts.acked}, never acked ${outstanding}; rows ${check.rows}; lost acked ${check.lost.length}; ` +
          `rows never sent ${check.unknown.length}; PUBLISHes resent by plugs ${f.wireResends}, of which already stored ${duplicates}; integrity_check ${check.integrity}; ` +
          `spawn→all plugs back ms (in the ${aa.n} lives where all made it before the stop): min ${aa.min.toFixed(0)} median ${aa.median.toFixed(0)} max ${aa.max.toFixed(0)}; ` +
          `test took ${((performance.now() - began) / 1000).toFixed(1)} s`,
      );

      expect(cleanExits.every((c) => c === 0)).toBe(true);
      expect(check.lost).toEqual([]);
      expect(check.unknown).toEqual([]);
      expect(check.rows).toBe(check.distinctKeys);
      expect(check.integrity).toBe("ok");
      expect(outstanding).toBe(0);
      expect(ratio).toBeLessThanOrEqual(RSS_RATIO_MAX);
    },
    90_000 + CYCLES * 8_000,
  );
});
