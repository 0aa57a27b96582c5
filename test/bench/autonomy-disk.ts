// The autonomy bench's disk phase alone (figure (a): bytes written per stored reading with rollups and retention
// running), with extra hub environment, to see what each part costs. Not part of `npm run bench`.
//
//   npx tsx test/bench/autonomy-disk.ts                                                   as in the bench
//   BENCH_EXTRA_ENV='{"HUB_RETENTION_RAW_DAYS":"3650","HUB_RETENTION_1M_DAYS":"3650"}' npx tsx test/bench/autonomy-disk.ts
//                                                                                        retention deletes nothing
//   BENCH_EXTRA_ENV='{"HUB_ROLLUP_INTERVAL_MS":"100000000"}' npx tsx test/bench/autonomy-disk.ts   no rollups
import { diskPhase } from "./autonomy.js";

const plan = { diskPlugs: 1000, diskWindowMs: 75_000, baselineRows: 500, historyPlugs: 50, scheduleMinutes: 3, queriesPerShape: 300, warmupQueries: 10 };
const d = await diskPhase(plan, (s) => console.log(s));
console.log(`extra env ${process.env.BENCH_EXTRA_ENV ?? "{}"}: ${d.perReading.toFixed(1)} B written per stored reading (retention in the window: ${d.retentionInWindow}, raw rows purged ${d.purgedRaw})`);
process.exit(0);
