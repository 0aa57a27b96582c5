// `npm run bench`: every benchmark of the project, one after another (never two at once: they share two
// cores), each in its own process, each writing its own bench-results/<name>.md and .json. Afterwards the
// figure tables are gathered into bench-results/summary.md, which the README quotes.
//
//   npm run bench                       all of them (~35 minutes)
//   npm run bench -- --only sync,cloud  a subset
//   npm run bench -- --summary          only gathers summary.md again (after running one bench by itself)
//   npm run bench -- --quick            shorter windows where a bench has a quick mode (figures for iterating,
//                                       not for the README)
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface Bench {
  name: string;
  issue: string;
  script: string;
  /** Its own --quick flag, when it has one. */
  quick: boolean;
}

const BENCHES: Bench[] = [
  { name: "hub-core", issue: "#2 hub core", script: "test/bench/run.ts", quick: false },
  { name: "families", issue: "#3 Tasmota and Shelly", script: "test/bench/families.ts", quick: true },
  { name: "autonomy", issue: "#4 hub autonomy", script: "test/bench/autonomy.ts", quick: true },
  { name: "cloud", issue: "#5 cloud core", script: "test/bench/cloud.ts", quick: true },
  { name: "sync", issue: "#6 hub ↔ cloud", script: "test/bench/sync.ts", quick: true },
];

function argValue(flag: string): string | null {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? (process.argv[i + 1] ?? null) : null;
}

function run(b: Bench, quick: boolean): Promise<number> {
  return new Promise((resolve) => {
    const args = ["--import", "tsx", b.script, ...(quick && b.quick ? ["--quick"] : [])];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: "inherit" });
    const stop = () => child.kill("SIGTERM");
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    child.once("exit", (code, signal) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

/** The results table of a bench's markdown (from its first table row to the first blank line after it). */
function figureTable(markdown: string): string | null {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => l.startsWith("| figure |"));
  if (start < 0) return null;
  let end = start;
  while (end < lines.length && lines[end]!.startsWith("|")) end++;
  return lines.slice(start, end).join("\n");
}

function producedLine(markdown: string): string {
  return markdown.split("\n").find((l) => l.startsWith("Produced by")) ?? "";
}

async function main() {
  const quick = process.argv.includes("--quick");
  const only = new Set((argValue("--only") ?? "").split(",").filter(Boolean));
  const unknown = [...only].filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length) {
    console.error(`unknown bench ${unknown.join(", ")}; known: ${BENCHES.map((b) => b.name).join(", ")}`);
    process.exit(2);
  }
  const outcomes: { bench: Bench; code: number; seconds: number }[] = [];
  for (const b of BENCHES) {
    if (process.argv.includes("--summary") || (only.size && !only.has(b.name))) continue;
    console.log(`\n=== bench ${b.name} (${b.issue}): ${b.script}${quick && b.quick ? " --quick" : ""}`);
    const t0 = performance.now();
    const code = await run(b, quick);
    outcomes.push({ bench: b, code, seconds: Math.round((performance.now() - t0) / 1000) });
    if (code !== 0) console.error(`=== bench ${b.name} exited ${code}`);
  }

  // The summary covers every bench's latest results, also those not re-run this time.
  const dir = join(ROOT, "bench-results");
  mkdirSync(dir, { recursive: true });
  const parts = ["# Benchmark summary", "", "Each section is the figure table of one benchmark's latest full report (`bench-results/<name>.md`, with notes and setup).", ""];
  for (const b of BENCHES) {
    const file = join(dir, `${b.name}.md`);
    parts.push(`## ${b.issue} — [${b.name}.md](${b.name}.md)`, "");
    if (!existsSync(file)) {
      parts.push("_Not measured yet._", "");
      continue;
    }
    const md = readFileSync(file, "utf8");
    parts.push(producedLine(md), "", figureTable(md) ?? "_No figure table in the report._", "");
  }
  writeFileSync(join(dir, "summary.md"), parts.join("\n"));
  console.log("\n=== benches");
  for (const o of outcomes) console.log(`${o.code === 0 ? "ok    " : "FAILED"} ${o.bench.name} (${o.seconds} s)`);
  console.log("wrote bench-results/summary.md");
  process.exit(outcomes.every((o) => o.code === 0) ? 0 : 1);
}

await main();
