// The results table the README quotes: one row per figure, measured against a baseline from the same run.
import { cpus, totalmem } from "node:os";
import { readFileSync } from "node:fs";

export interface Row {
  figure: string;
  measured: string;
  baseline: string;
  /** measured / baseline (or as described in `ratioNote`), null where there is no baseline value. */
  ratio: number | null;
  ratioNote?: string;
  goal: string;
  pass: boolean | null;
  notes?: string;
}

export interface MachineInfo {
  date: string;
  nproc: number;
  cpuModel: string;
  memTotalGiB: number;
  node: string;
  kernel: string;
  loadavgAtStart: string;
  mosquitto: string;
}

export function machineInfo(mosquittoVersion: string): MachineInfo {
  let kernel = "";
  try {
    kernel = readFileSync("/proc/version", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    /* not Linux */
  }
  let loadavg = "";
  try {
    loadavg = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    /* not Linux */
  }
  return {
    date: new Date().toISOString(),
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? "?",
    memTotalGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel,
    loadavgAtStart: loadavg,
    mosquitto: mosquittoVersion,
  };
}

const fmtRatio = (r: number | null) => (r === null || !Number.isFinite(r) ? "–" : `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`);
const fmtPass = (p: boolean | null) => (p === null ? "n/a" : p ? "pass" : "FAIL");
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function markdownTable(rows: Row[]): string {
  const out = ["| figure | measured | baseline | ratio | goal | result |", "|---|---|---|---|---|---|"];
  for (const r of rows) out.push(`| ${cell(r.figure)} | ${cell(r.measured)} | ${cell(r.baseline)} | ${fmtRatio(r.ratio)}${r.ratioNote ? ` ${cell(r.ratioNote)}` : ""} | ${cell(r.goal)} | ${fmtPass(r.pass)} |`);
  return out.join("\n");
}

export function markdownReport(o: { rows: Row[]; machine: MachineInfo; durationSec: number; config: string[]; notes: string[]; skipped: string[] }): string {
  const m = o.machine;
  return [
    "# Hub core benchmark",
    "",
    `Produced by \`npm run bench\` (test/bench/run.ts) on ${m.date}, in ${Math.round(o.durationSec)} s.`,
    "",
    markdownTable(o.rows),
    "",
    "Ratios compare the hub with the baseline in the same run; absolute numbers depend on the machine.",
    "",
    "## Notes per figure",
    "",
    ...o.rows.filter((r) => r.notes).map((r) => `- **${r.figure}**: ${r.notes}`),
    "",
    ...(o.skipped.length ? ["## Not measured", "", ...o.skipped.map((s) => `- ${s}`), ""] : []),
    "## Setup",
    "",
    ...o.config.map((c) => `- ${c}`),
    ...o.notes.map((c) => `- ${c}`),
    "",
    "## Machine",
    "",
    `- nproc: ${m.nproc} (${m.cpuModel}), memory ${m.memTotalGiB} GiB`,
    `- node: ${m.node}; kernel: ${m.kernel}`,
    `- Mosquitto: ${m.mosquitto}`,
    `- load average at start: ${m.loadavgAtStart}`,
    "",
  ].join("\n");
}

export const MB = 1024 * 1024;
export const fmtMB = (b: number) => `${(b / MB).toFixed(1)} MB`;
export const fmtMs = (ms: number) => (Number.isFinite(ms) ? (ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(1)} ms`) : "–");
export const fmtInt = (n: number) => Math.round(n).toLocaleString("en-US");
