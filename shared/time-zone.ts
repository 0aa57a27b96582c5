// Local-calendar helpers over IANA time zones (luxon), for daily rollups, tariffs and schedules.
import { DateTime, IANAZone } from "luxon";

export function isValidTimeZone(tz: string): boolean {
  return IANAZone.isValidZone(tz);
}

/** The instant (ms) the local day containing `ts` starts, in `tz`. */
export function startOfLocalDay(ts: number, tz: string): number {
  return DateTime.fromMillis(ts, { zone: tz }).startOf("day").toMillis();
}

/** The instant the next local day starts (23, 24 or 25 hours later across DST). */
export function startOfNextLocalDay(ts: number, tz: string): number {
  return DateTime.fromMillis(ts, { zone: tz }).startOf("day").plus({ days: 1 }).toMillis();
}
