import { describe, expect, it } from "vitest";
import { LogHistogram, metricByLabel, metricSum, parsePrometheus, percentile, summarize } from "../../bench/stats.js";

describe("bench statistics", () => {
  it("percentile is nearest-rank over unsorted values", () => {
    const v = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(percentile(v, 50)).toBe(5);
    expect(percentile(v, 90)).toBe(9);
    expect(percentile(v, 99)).toBe(10);
    expect(percentile(v, 0)).toBe(1);
    expect(percentile(v, 100)).toBe(10);
    expect(percentile([], 50)).toBeNaN();
    expect(percentile([7], 99)).toBe(7);
  });

  it("summarize gives count, extremes, mean and percentiles", () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(summarize(v)).toEqual({ n: 100, min: 1, mean: 50.5, p50: 50, p90: 90, p99: 99, max: 100 });
    expect(summarize([]).n).toBe(0);
  });

  it("the log histogram stays within 2 % of the exact percentile, never below it, and merges", () => {
    const a = new LogHistogram();
    const b = new LogHistogram();
    const all: number[] = [];
    for (let i = 1; i <= 5000; i++) {
      const x = (i * 7919) % 1000 / 10 + 0.05; // 0.05 … 100 ms, scrambled
      (i % 2 ? a : b).record(x);
      all.push(x);
    }
    const m = LogHistogram.from(JSON.parse(JSON.stringify(a)) as ReturnType<LogHistogram["toJSON"]>).merge(b);
    expect(m.n).toBe(5000);
    for (const p of [50, 90, 99]) {
      const exact = percentile(all, p);
      expect(m.percentile(p)).toBeGreaterThanOrEqual(exact);
      expect(m.percentile(p)).toBeLessThanOrEqual(exact * 1.02);
    }
    expect(m.percentile(100)).toBe(Math.max(...all));
    expect(new LogHistogram().percentile(50)).toBeNaN();
  });

  it("reads prom-client's text format, summing over labels", () => {
    const text = [
      "# HELP hub_mqtt_shed_total shed",
      "# TYPE hub_mqtt_shed_total counter",
      'hub_mqtt_shed_total{reason="global_budget"} 120',
      'hub_mqtt_shed_total{reason="connection_rate"} 3',
      "hub_nodejs_eventloop_lag_p99_seconds 0.012",
      "hub_readings_stored_total 5e3",
    ].join("\n");
    const s = parsePrometheus(text);
    expect(metricSum(s, "hub_mqtt_shed_total")).toBe(123);
    expect(metricByLabel(s, "hub_mqtt_shed_total", "reason")).toEqual({ global_budget: 120, connection_rate: 3 });
    expect(metricSum(s, "hub_nodejs_eventloop_lag_p99_seconds")).toBe(0.012);
    expect(metricSum(s, "hub_readings_stored_total")).toBe(5000);
    expect(metricSum(s, "absent")).toBe(0);
  });
});
