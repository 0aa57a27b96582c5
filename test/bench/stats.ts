// Small, dependency-free statistics for the benchmark: exact percentiles over arrays, a mergeable
// log-bucketed histogram (load workers send theirs over IPC and the orchestrator merges them), and a
// Prometheus text-format reader for the hub's /metrics.

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN when empty. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return percentileSorted(sorted, p);
}

/** Nearest-rank percentile of values already sorted ascending. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (p <= 0) return sorted[0]!;
  if (p >= 100) return sorted[n - 1]!;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

export interface Summary {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(values: ArrayLike<number>): Summary {
  const n = values.length;
  if (n === 0) return { n: 0, min: NaN, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    n,
    min: sorted[0]!,
    mean: sum / n,
    p50: percentileSorted(sorted, 50),
    p90: percentileSorted(sorted, 90),
    p99: percentileSorted(sorted, 99),
    max: sorted[n - 1]!,
  };
}

/** Serialized form of a LogHistogram: sparse bucket index → count. */
export interface HistogramData {
  counts: Record<string, number>;
  n: number;
  sum: number;
  max: number;
}

/**
 * Log-bucketed histogram of non-negative values (here: milliseconds). Bucket k holds values in
 * (FLOOR·G^(k-1), FLOOR·G^k]; values ≤ FLOOR go to bucket 0. Percentiles are reported as the bucket's
 * upper bound (never better than the truth), capped at the largest value seen. G = 1.02: ≤ 2 % error.
 */
export class LogHistogram {
  static readonly FLOOR = 0.001;
  static readonly GROWTH = 1.02;
  private readonly counts = new Map<number, number>();
  n = 0;
  sum = 0;
  max = 0;

  record(v: number): void {
    if (!Number.isFinite(v)) return;
    const x = Math.max(0, v);
    const k = x <= LogHistogram.FLOOR ? 0 : Math.ceil(Math.log(x / LogHistogram.FLOOR) / Math.log(LogHistogram.GROWTH) - 1e-9);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    this.n++;
    this.sum += x;
    if (x > this.max) this.max = x;
  }

  merge(o: LogHistogram | HistogramData): this {
    const entries: [number, number][] = o instanceof LogHistogram ? [...o.counts] : Object.entries(o.counts).map(([k, c]) => [Number(k), c]);
    for (const [k, c] of entries) this.counts.set(k, (this.counts.get(k) ?? 0) + c);
    this.n += o.n;
    this.sum += o.sum;
    this.max = Math.max(this.max, o.max);
    return this;
  }

  percentile(p: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil((Math.min(100, Math.max(0, p)) / 100) * this.n));
    let seen = 0;
    for (const k of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(k)!;
      if (seen >= rank) return Math.min(this.max, LogHistogram.FLOOR * LogHistogram.GROWTH ** k);
    }
    return this.max;
  }

  summary(): Summary {
    if (this.n === 0) return summarize([]);
    return { n: this.n, min: this.percentile(0), mean: this.sum / this.n, p50: this.percentile(50), p90: this.percentile(90), p99: this.percentile(99), max: this.max };
  }

  toJSON(): HistogramData {
    return { counts: Object.fromEntries(this.counts), n: this.n, sum: this.sum, max: this.max };
  }

  static from(d: HistogramData): LogHistogram {
    return new LogHistogram().merge(d);
  }
}

/** One sample of a Prometheus text exposition: metric name, labels, value. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (as prom-client writes it); comments and malformed lines are skipped. */
export function parsePrometheus(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const value = Number(m[3]);
    if (!Number.isNaN(value) || m[3] === "NaN") out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** Sum of a metric's samples over all label sets (0 when absent). */
export function metricSum(samples: PromSample[], name: string): number {
  let s = 0;
  for (const x of samples) if (x.name === name) s += x.value;
  return s;
}

/** A labelled counter as label value → number. */
export function metricByLabel(samples: PromSample[], name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of samples) if (x.name === name) out[x.labels[label] ?? ""] = (out[x.labels[label] ?? ""] ?? 0) + x.value;
  return out;
}
