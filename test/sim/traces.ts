// Loads the shipped appliance traces (tracebase subset, ODbL; see traces/README.md).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

export interface Trace {
  appliance: string;
  /** Grid spacing, seconds; point i is the mean power over [i·stepSec, (i+1)·stepSec) after local midnight. */
  stepSec: number;
  /** One day of active power, integer watts. */
  watts: Int32Array | number[];
}

const DAY_SEC = 86_400;
const TRACES_FILE = fileURLToPath(new URL("./traces/traces.json.gz", import.meta.url));

interface TracesFile {
  format: string;
  stepSec: number;
  traces: Array<{ appliance: string; watts: number[] }>;
}

let cache: Trace[] | undefined;

/** Synchronous so simulators can pick a trace in a constructor; parsed once per process (~100 kB JSON). */
export function loadTraces(): Trace[] {
  if (!cache) {
    const doc = JSON.parse(gunzipSync(readFileSync(TRACES_FILE)).toString("utf8")) as TracesFile;
    if (doc.format !== "tracebase-subset/v1") throw new Error(`unexpected trace file format: ${doc.format}`);
    cache = doc.traces.map((t) => {
      if (t.watts.length * doc.stepSec !== DAY_SEC) throw new Error(`trace ${t.appliance} does not cover 24 h`);
      return { appliance: t.appliance, stepSec: doc.stepSec, watts: Int32Array.from(t.watts) };
    });
  }
  // Fresh array each call so a caller reordering it cannot affect others; the traces themselves are shared.
  return [...cache];
}

/**
 * Power at a time of day (seconds since local midnight, any real number): linear between grid points,
 * wrapping at 24 h. Point i sits at i·stepSec (the start of its averaging bin): a half-step (5 s) shift that
 * keeps powerAt(t, i·stepSec) === watts[i] and does not matter at telemetry cadence.
 */
export function powerAt(trace: Trace, secondsSinceMidnight: number): number {
  const n = trace.watts.length;
  const day = n * trace.stepSec;
  const t = ((secondsSinceMidnight % day) + day) % day;
  const pos = t / trace.stepSec;
  const i = Math.floor(pos) % n;
  const frac = pos - Math.floor(pos);
  const a = trace.watts[i]!;
  const b = trace.watts[(i + 1) % n]!;
  return a + (b - a) * frac;
}
