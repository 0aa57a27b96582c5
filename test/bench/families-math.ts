// Pure arithmetic of the families bench (issue 3), unit-tested in test/unit/bench/families-math.test.ts.
import type { Row } from "./report.js";
import type { Summary } from "./stats.js";

export const FAMILY_ORDER = ["native", "tasmota", "shelly-gen1", "shelly-gen2"] as const;
export type BenchFamily = (typeof FAMILY_ORDER)[number];

export const CPU_RATIO_GOAL = 1.5;
export const RTT_P99_GOAL_MS = 25;

/** One measured window of one family against the hub process. */
export interface FamilyWindow {
  family: BenchFamily;
  plugs: number;
  windowMs: number;
  /** hub utime+stime over the window, s */
  cpuSec: number;
  /** readings the hub stored over the window (hub_readings_stored_total delta) */
  stored: number;
}

/** Hub CPU per stored reading, µs; NaN when nothing was stored. */
export function cpuPerReadingUs(w: Pick<FamilyWindow, "cpuSec" | "stored">): number {
  return w.stored > 0 ? (w.cpuSec * 1e6) / w.stored : NaN;
}

/** How many readings each plug delivered per `periodMs` (the cadence check: ~1 per plug per 2 s). */
export function readingsPerPlugPerPeriod(w: Pick<FamilyWindow, "stored" | "plugs" | "windowMs">, periodMs: number): number {
  return w.plugs > 0 && w.windowMs > 0 ? w.stored / w.plugs / (w.windowMs / periodMs) : NaN;
}

/**
 * Pools several windows of a family (e.g. native measured first and last, bracketing the others, so a
 * drift in the machine's load shows up) into one: CPU and readings summed, so the pooled figure is the
 * total CPU over the total readings.
 */
export function pool(ws: FamilyWindow[]): FamilyWindow | null {
  if (ws.length === 0) return null;
  return {
    family: ws[0]!.family,
    plugs: ws[0]!.plugs,
    windowMs: ws.reduce((a, w) => a + w.windowMs, 0),
    cpuSec: ws.reduce((a, w) => a + w.cpuSec, 0),
    stored: ws.reduce((a, w) => a + w.stored, 0),
  };
}

export const ratioOf = (a: number, b: number): number | null => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : null);

export interface FamilyFigures {
  family: BenchFamily;
  window: FamilyWindow;
  cpuUs: number;
  /** cpuUs / native cpuUs in the same run; 1 for native itself */
  cpuRatio: number | null;
  cadence: number;
  rtt: Summary;
  commandsOk: number;
  commandsFailed: number;
}

/** The results rows: CPU per reading vs native (goal ≤ 1.5×) and command round-trip p99 (goal ≤ 25 ms) per family. */
export function familyRows(figs: FamilyFigures[], nativeWindows: FamilyWindow[], fmtMs: (ms: number) => string): Row[] {
  const native = figs.find((f) => f.family === "native");
  const rows: Row[] = [];
  for (const f of figs) {
    const isNative = f.family === "native";
    const nativeSpread = nativeWindows.length > 1 ? ` Native windows separately: ${nativeWindows.map((w) => `${cpuPerReadingUs(w).toFixed(0)} µs`).join(", ")}.` : "";
    rows.push({
      figure: `${f.family}: hub CPU per stored reading (${f.window.plugs} plugs, ~1 reading per plug per 2 s)`,
      measured: `${Number.isFinite(f.cpuUs) ? f.cpuUs.toFixed(0) : "–"} µs`,
      baseline: isNative ? "is the baseline" : `native ${native && Number.isFinite(native.cpuUs) ? native.cpuUs.toFixed(0) : "–"} µs`,
      ratio: f.cpuRatio,
      ratioNote: "vs native",
      goal: isNative ? "(reference)" : `≤ ${CPU_RATIO_GOAL}× native`,
      pass: isNative ? null : f.cpuRatio !== null && f.cpuRatio <= CPU_RATIO_GOAL,
      notes:
        `${f.window.cpuSec.toFixed(2)} s of hub CPU (utime+stime from /proc/<hub pid>/stat) over ${(f.window.windowMs / 1000).toFixed(0)} s / ${f.window.stored} readings stored; ` +
        `${f.cadence.toFixed(2)} readings per plug per 2 s.` +
        (isNative ? nativeSpread : ""),
    });
  }
  for (const f of figs) {
    rows.push({
      figure: `${f.family}: command round trip p99 (REST → plug → confirmed → response)`,
      measured: `${fmtMs(f.rtt.p99)} (p50 ${fmtMs(f.rtt.p50)})`,
      baseline: f.family === "native" ? "is the baseline" : `native ${native ? fmtMs(native.rtt.p99) : "–"}`,
      ratio: native ? ratioOf(f.rtt.p99, native.rtt.p99) : null,
      ratioNote: "vs native",
      goal: `p99 ≤ ${RTT_P99_GOAL_MS} ms`,
      pass: f.commandsFailed === 0 && f.rtt.n > 0 && f.rtt.p99 <= RTT_P99_GOAL_MS,
      notes: `${f.commandsOk} sequential commands confirmed, ${f.commandsFailed} not; max ${fmtMs(f.rtt.max)}; the family's plugs reporting meanwhile.`,
    });
  }
  return rows;
}
