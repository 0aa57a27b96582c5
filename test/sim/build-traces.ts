// Derives the shipped trace subset (test/sim/traces/) from the tracebase copy in /work/shared.
// Run: npx tsx test/sim/build-traces.ts [--source DIR]
// The output is committed, so a fresh clone never needs the source; rerunning must give the same bytes.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync, gunzipSync } from "node:zlib";

const OUT_DIR = join(dirname(fileURLToPath(import.meta.url)), "traces");
const DEFAULT_SOURCE = "/work/shared/datasets/tracebase";
// Snapshot named in the source README; the manifest's blob ids pin every file to it.
const UPSTREAM_COMMIT = "8e7cd45749dda8e7adef6e5eada526aa859a2193";
const STEP_SEC = 10;
const DAY_SEC = 86_400;
// A day qualifies only if no two readings are further apart than this (median interval is 5 s),
// so zero-order hold never bridges more than two grid steps' worth of missing data.
const MAX_GAP_SEC = 120;
// Upstream folder → appliance name used by the simulator. Order is the round-robin order of the CLI.
const APPLIANCES: ReadonlyArray<{ folder: string; appliance: string }> = [
  { folder: "Refrigerator", appliance: "fridge" },
  { folder: "WaterKettle", appliance: "kettle" },
  { folder: "Washingmachine", appliance: "washing machine" },
  { folder: "TV-LCD", appliance: "LCD TV" },
  { folder: "PC-Desktop", appliance: "desktop PC" },
  { folder: "Coffeemaker", appliance: "coffee maker" },
];

interface ManifestRow {
  path: string;
  appliance_type: string;
  plug_id: string;
  date: string;
  rows: number;
  first_ts: string;
  last_ts: string;
  max_gap_s: number;
  source_git_blob_sha1: string;
}

interface Sample {
  sec: number;
  watts: number;
}

interface BuiltTrace {
  appliance: string;
  applianceType: string;
  plugId: string;
  date: string;
  source: string;
  sourceGitBlobSha1: string;
  rows: number;
  uniqueSeconds: number;
  maxGapSec: number;
  candidates: number;
  dailyWh: number;
  watts: number[];
}

function readManifest(sourceDir: string): ManifestRow[] {
  const [header, ...lines] = readFileSync(join(sourceDir, "manifest.csv"), "utf8").trim().split(/\r?\n/);
  const cols = header!.split(",");
  return lines.map((line) => {
    const cells = line.split(",");
    const get = (name: string): string => cells[cols.indexOf(name)] ?? "";
    return {
      path: get("path"),
      appliance_type: get("appliance_type"),
      plug_id: get("plug_id"),
      date: get("date"),
      rows: Number(get("rows")),
      first_ts: get("first_ts"),
      last_ts: get("last_ts"),
      max_gap_s: Number(get("max_gap_s")),
      source_git_blob_sha1: get("source_git_blob_sha1"),
    };
  });
}

/** Decompresses and checks the bytes against the upstream git blob id, so the README's claim holds. */
function readSourceCsv(sourceDir: string, row: ManifestRow): string {
  const raw = gunzipSync(readFileSync(join(sourceDir, row.path)));
  const blobSha1 = createHash("sha1").update(`blob ${raw.length}\0`).update(raw).digest("hex");
  if (blobSha1 !== row.source_git_blob_sha1) throw new Error(`blob id mismatch for ${row.path}`);
  return raw.toString("utf8");
}

/** `DD/MM/YYYY HH:MM:SS;p1s;p8s` → samples sorted by second, same-second duplicates averaged. */
function parseDay(csv: string): Sample[] {
  const bySec = new Map<number, { sum: number; n: number }>();
  for (const line of csv.split(/\r?\n/)) {
    const m = /^\d\d\/\d\d\/\d{4} (\d\d):(\d\d):(\d\d);(-?\d+);/.exec(line);
    if (!m) continue;
    const sec = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
    const acc = bySec.get(sec) ?? { sum: 0, n: 0 };
    acc.sum += Number(m[4]);
    acc.n += 1;
    bySec.set(sec, acc);
  }
  return [...bySec.entries()].sort((a, b) => a[0] - b[0]).map(([sec, { sum, n }]) => ({ sec, watts: sum / n }));
}

/**
 * Time-weighted mean per grid bin [i·step, (i+1)·step) of the zero-order-hold signal: each reading holds
 * until the next one; the first reading is held back to 00:00:00 and the last one on to 24:00:00.
 * Energy-preserving, unlike picking the nearest sample.
 */
function resample(samples: Sample[], stepSec: number): number[] {
  const bins = DAY_SEC / stepSec;
  const integral = new Float64Array(bins);
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    const from = i === 0 ? 0 : s.sec;
    const to = i + 1 < samples.length ? samples[i + 1]!.sec : DAY_SEC;
    for (let t = from; t < to; ) {
      const bin = Math.floor(t / stepSec);
      const end = Math.min(to, (bin + 1) * stepSec);
      integral[bin]! += s.watts * (end - t);
      t = end;
    }
  }
  return Array.from(integral, (ws) => Math.round(ws / stepSec));
}

function isFullDay(row: ManifestRow): boolean {
  return row.first_ts.slice(11) <= "00:01:00" && row.last_ts.slice(11) >= "23:59:00";
}

/** Among full days without big gaps, the one with the median daily energy: a typical day, not an outlier. */
function buildAppliance(sourceDir: string, manifest: ManifestRow[], folder: string, appliance: string): BuiltTrace {
  const candidates = manifest
    .filter((r) => r.appliance_type === folder && isFullDay(r) && r.max_gap_s <= MAX_GAP_SEC)
    .sort((a, b) => a.date.localeCompare(b.date));
  if (candidates.length === 0) throw new Error(`no full day without gaps for ${folder}`);
  const days = candidates.map((row) => {
    const samples = parseDay(readSourceCsv(sourceDir, row));
    const watts = resample(samples, STEP_SEC);
    const dailyWh = watts.reduce((a, w) => a + w, 0) * (STEP_SEC / 3600);
    return { row, samples, watts, dailyWh };
  });
  const ranked = [...days].sort((a, b) => a.dailyWh - b.dailyWh || a.row.date.localeCompare(b.row.date));
  const pick = ranked[Math.floor((ranked.length - 1) / 2)]!;
  return {
    appliance,
    applianceType: folder,
    plugId: pick.row.plug_id,
    date: pick.row.date,
    source: pick.row.path,
    sourceGitBlobSha1: pick.row.source_git_blob_sha1,
    rows: pick.row.rows,
    uniqueSeconds: pick.samples.length,
    maxGapSec: pick.row.max_gap_s,
    candidates: candidates.length,
    dailyWh: Math.round(pick.dailyWh),
    watts: pick.watts,
  };
}

function renderReadme(traces: BuiltTrace[], bytes: number): string {
  const rows = traces
    .map(
      (t) =>
        `| ${t.appliance} | \`${t.source}\` | ${t.date} | ${t.rows} | ${t.maxGapSec} | ${t.candidates} | ${Math.max(...t.watts)} | ${t.dailyWh} | \`${t.sourceGitBlobSha1}\` |`,
    )
    .join("\n");
  return `# Appliance power traces (tracebase subset, resampled)

Contains information from the tracebase data set, which is made available at http://www.tracebase.org under the Open Database License (ODbL).

\`traces.json.gz\` (${bytes} bytes) holds one real day of active power for each of ${traces.length} appliances, measured by
wall-outlet meters in 2012. The simulators in \`test/sim/\` replay it (\`loadTraces()\` / \`powerAt()\` in
\`test/sim/traces.ts\`). This file and \`traces.json.gz\` are generated by \`npx tsx test/sim/build-traces.ts\`;
edit the script, not the output.

## License

- This derived database is released under the **Open Database License (ODbL) v1.0**,
  http://opendatacommons.org/licenses/odbl/1.0/ (share-alike: if you publicly share a database derived from
  it, release that under ODbL too).
- Individual contents: **Database Contents License (DbCL) v1.0**, http://opendatacommons.org/licenses/dbcl/1.0/
- Anything that uses it in a product must show the attribution sentence above. The rest of this repository
  keeps its own license; only the data in this folder is ODbL.

## Source and citation

- Upstream: https://github.com/areinhardt/tracebase, commit \`${UPSTREAM_COMMIT}\`, folder \`complete/\`.
- Cite in scientific publications: Andreas Reinhardt, Paul Baumann, Daniel Burgstahler, Matthias Hollick,
  Hristo Chonov, Marc Werner, Ralf Steinmetz: *On the Accuracy of Appliance Identification Based on
  Distributed Load Metering Data*. Proceedings of the 2nd IFIP Conference on Sustainable Internet and ICT for
  Sustainability (SustainIT), 2012.

## Files used

Paths are upstream paths with \`.gz\` added (the gzip holds the unchanged upstream CSV; the script checks each
decompressed file against its upstream git blob id, last column).

| appliance | file | day | rows | max gap s | candidate days | peak W (10 s mean) | day Wh | upstream blob |
|---|---|---|---|---|---|---|---|---|
${rows}

## How the days were chosen and resampled

1. Candidate days: \`manifest.csv\` rows of the appliance's folder whose first reading is at or before 00:01:00,
   whose last is at or after 23:59:00, and whose \`max_gap_s\` ≤ ${MAX_GAP_SEC}.
2. Every candidate is resampled (below); the day with the median daily energy is kept (ties: earlier date),
   so each trace is a typical day rather than the busiest or an idle one.
3. Parsing: column 1 (local wall-clock time, \`DD/MM/YYYY HH:MM:SS\`, presumably CEST) becomes seconds since
   local midnight; column 2 (active power averaged over 1 s, W) is the value; column 3 (8 s average) is unused.
   Rows are sorted by time; rows with the same second are merged into their mean (this also removes the
   backward timestamp steps some plugs have on 2012-05-21).
4. Resampling: each reading holds until the next one (zero-order hold; the first is held back to 00:00:00 and
   the last on to 24:00:00). Grid point \`i\` is the time-weighted mean of that signal over
   \`[i·${STEP_SEC} s, (i+1)·${STEP_SEC} s)\`, rounded to integer watts: ${DAY_SEC / STEP_SEC} points per day, energy preserved
   up to rounding.

## Format

gzip of one JSON object: \`{"format":"tracebase-subset/v1","attribution":…,"license":…,"upstreamCommit":…,
"stepSec":${STEP_SEC},"traces":[{"appliance":"fridge","applianceType":"Refrigerator","plugId":…,"date":…,"source":…,
"sourceGitBlobSha1":…,"watts":[…${DAY_SEC / STEP_SEC} integers…]}, …]}\`.
`;
}

function main(): void {
  const { values } = parseArgs({ options: { source: { type: "string", default: DEFAULT_SOURCE } } });
  const sourceDir = values.source;
  const manifest = readManifest(sourceDir);
  const traces = APPLIANCES.map(({ folder, appliance }) => buildAppliance(sourceDir, manifest, folder, appliance));
  const doc = {
    format: "tracebase-subset/v1",
    attribution:
      "Contains information from the tracebase data set, which is made available at http://www.tracebase.org under the Open Database License (ODbL).",
    license: "ODbL-1.0 (database), DbCL-1.0 (contents)",
    upstreamCommit: UPSTREAM_COMMIT,
    stepSec: STEP_SEC,
    traces: traces.map((t) => ({
      appliance: t.appliance,
      applianceType: t.applianceType,
      plugId: t.plugId,
      date: t.date,
      source: t.source,
      sourceGitBlobSha1: t.sourceGitBlobSha1,
      watts: t.watts,
    })),
  };
  // Node's gzip header carries no mtime, so identical input gives identical bytes.
  const gz = gzipSync(JSON.stringify(doc), { level: 9 });
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, "traces.json.gz"), gz);
  writeFileSync(join(OUT_DIR, "README.md"), renderReadme(traces, gz.length));
  for (const t of traces) {
    console.log(`${t.appliance}: ${t.source} (${t.candidates} candidates, ${t.dailyWh} Wh, peak ${Math.max(...t.watts)} W)`);
  }
  console.log(`wrote ${join(OUT_DIR, "traces.json.gz")} (${gz.length} bytes)`);
}

main();
