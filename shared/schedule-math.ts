// Schedule edges in local time (issue 4 §1, RELIABILITY F10/F11). In shared/ because the hub runs schedules
// and the cloud answers `next_run` for the same rules (issue 6 §5: the same GET answers on both). The DST policy:
//   - a time inside the spring-forward gap (02:30 when clocks jump 02:00 → 03:00) fires once, right after
//     the gap (at the first instant that exists past it);
//   - a time inside the repeated hour of fall-back (01:30 when clocks go 02:00 → 01:00) fires once, at its
//     first occurrence.
// Both are "the first instant whose local wall-clock time is at or past the rule's time".
import { DateTime } from "luxon";

export interface Edge {
  ts: number;
  action: "on" | "off";
  scheduleId: string;
}

export interface RuleSpec {
  id: string;
  type: "weekly" | "window" | "once";
  days: number[] | null;
  at: string | null;
  from: string | null;
  to: string | null;
  action: "on" | "off";
  timeZone: string;
  enabled: boolean;
  /** Edges before the rule existed do not count, except the start of a window that is still open. */
  createdAt?: number;
}

const hm = (s: string) => ({ hour: Number(s.slice(0, 2)), minute: Number(s.slice(3, 5)) });

/** The instant a local date + local time fires, by the DST policy above. */
export function fireInstant(date: DateTime, time: { hour: number; minute: number; second?: number }, zone: string): number {
  const want = { year: date.year, month: date.month, day: date.day, hour: time.hour, minute: time.minute, second: time.second ?? 0 };
  const dt = DateTime.fromObject(want, { zone });
  const same = (d: DateTime) => d.hour === want.hour && d.minute === want.minute && d.day === want.day;
  if (same(dt)) {
    // In a repeated hour luxon picks the later occurrence; the policy is the first one. DST shifts are
    // 1 h (30 min on Lord Howe), so an earlier occurrence, if any, is that much before.
    for (const back of [3_600_000, 1_800_000]) {
      const earlier = dt.toMillis() - back;
      if (same(DateTime.fromMillis(earlier, { zone }))) return earlier;
    }
    return dt.toMillis();
  }
  // In a gap: luxon moved it forward by the gap length. Search the first instant whose wall time is ≥ the
  // wanted one; around a spring-forward the wall clock only moves forward, so it is monotonic there.
  const key = (d: DateTime) => d.year * 1e10 + d.month * 1e8 + d.day * 1e6 + d.hour * 1e4 + d.minute * 100 + d.second;
  const target = want.year * 1e10 + want.month * 1e8 + want.day * 1e6 + want.hour * 1e4 + want.minute * 100 + want.second;
  let lo = dt.toMillis() - 4 * 3_600_000;
  let hi = dt.toMillis();
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (key(DateTime.fromMillis(mid, { zone })) >= target) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** Every edge of one rule between `from` and `to` (ms), in time order. */
export function edgesBetween(rule: RuleSpec, from: number, to: number): Edge[] {
  if (!rule.enabled) return [];
  const zone = rule.timeZone;
  const out: Edge[] = [];
  if (rule.type === "once") {
    const d = DateTime.fromISO(rule.at!, { zone });
    const ts = fireInstant(d, { hour: d.hour, minute: d.minute, second: d.second }, zone);
    if (ts >= from && ts <= to && ts >= (rule.createdAt ?? -Infinity)) out.push({ ts, action: rule.action, scheduleId: rule.id });
    return out;
  }
  // Local dates from a day before `from` to a day after `to`, so windows crossing midnight are covered.
  let day = DateTime.fromMillis(from, { zone }).startOf("day").minus({ days: 1 });
  const last = DateTime.fromMillis(to, { zone }).startOf("day").plus({ days: 1 });
  const opposite = rule.action === "on" ? "off" : "on";
  while (day <= last) {
    if (rule.days!.includes(day.weekday)) {
      if (rule.type === "weekly") out.push({ ts: fireInstant(day, hm(rule.at!), zone), action: rule.action, scheduleId: rule.id });
      else {
        const f = hm(rule.from!);
        const t = hm(rule.to!);
        const endDay = t.hour * 60 + t.minute <= f.hour * 60 + f.minute ? day.plus({ days: 1 }) : day;
        const end = fireInstant(endDay, t, zone);
        if (end >= (rule.createdAt ?? -Infinity)) out.push({ ts: fireInstant(day, f, zone), action: rule.action, scheduleId: rule.id }, { ts: end, action: opposite, scheduleId: rule.id });
      }
    }
    day = day.plus({ days: 1 });
  }
  const born = rule.type === "window" ? -Infinity : (rule.createdAt ?? -Infinity);
  return out.filter((e) => e.ts >= from && e.ts <= to && e.ts >= born).sort((a, b) => a.ts - b.ts);
}

/** How far back the latest edge is looked for: a weekly rule has one at least every 7 days. */
export const LOOKBACK_MS = 8 * 86_400_000;

/** The edge in force at `now`: the latest edge at or before it over all rules (ties: the last listed wins). */
export function latestEdge(rules: RuleSpec[], now: number): Edge | null {
  let best: Edge | null = null;
  for (const r of rules) {
    const edges = edgesBetween(r, now - LOOKBACK_MS, now);
    const e = edges[edges.length - 1];
    if (e && (!best || e.ts >= best.ts)) best = e;
  }
  return best;
}

/** The next edge after `now` for one rule (for `next_run`), looking up to 8 days ahead. */
export function nextEdge(rule: RuleSpec, now: number): Edge | null {
  const once = rule.type === "once";
  return edgesBetween(rule, now + 1, now + (once ? 100 * 365 * 86_400_000 : LOOKBACK_MS))[0] ?? null;
}
