import { describe, expect, it } from "vitest";
import { minuteInstants, nearAny, onceAt, retainedFootprint, scheduleDelays, ROWS } from "../../bench/autonomy-math.js";

describe("autonomy bench arithmetic", () => {
  it("minute instants start at the first boundary at least the lead away", () => {
    const now = Date.UTC(2026, 11, 3, 22, 18, 50);
    expect(minuteInstants(now, 2, 15_000).map((t) => new Date(t).toISOString())).toEqual(["2026-12-03T22:20:00.000Z", "2026-12-03T22:21:00.000Z"]);
    expect(minuteInstants(Date.UTC(2026, 11, 3, 22, 18, 0), 1, 0)[0]).toBe(Date.UTC(2026, 11, 3, 22, 18, 0));
  });

  it("one-shot 'at' is local date-time in the zone, seconds only when not on the minute", () => {
    expect(onceAt(Date.UTC(2026, 11, 3, 22, 19, 0), "UTC")).toBe("2026-12-03T22:19");
    expect(onceAt(Date.UTC(2026, 11, 3, 22, 19, 30), "UTC")).toBe("2026-12-03T22:19:30");
    expect(onceAt(Date.UTC(2026, 6, 1, 10, 0, 0), "Europe/Berlin")).toBe("2026-07-01T12:00");
  });

  it("schedule delays match each switch to the first event in the wanted state before the next switch", () => {
    const t = 1_000_000;
    const expected = [
      { deviceId: "a", at: t, relayOn: false },
      { deviceId: "a", at: t + 60_000, relayOn: true },
      { deviceId: "b", at: t, relayOn: false },
    ];
    const events = [
      { deviceId: "a", relayOn: true, recvAt: t - 5000 }, // before: ignored
      { deviceId: "a", relayOn: false, recvAt: t + 80 },
      { deviceId: "a", relayOn: true, recvAt: t + 60_120 },
      { deviceId: "b", relayOn: true, recvAt: t + 50 }, // wrong state: b is missed
    ];
    const r = scheduleDelays(expected, events, 1000);
    expect(r.delays.sort((x, y) => x - y)).toEqual([80, 120]);
    expect(r.missed).toEqual([{ deviceId: "b", at: t, relayOn: false }]);
  });

  it("an event after the device's next switch does not count for the earlier one", () => {
    const t = 0;
    const r = scheduleDelays(
      [
        { deviceId: "a", at: t, relayOn: false },
        { deviceId: "a", at: t + 60_000, relayOn: true },
        { deviceId: "a", at: t + 120_000, relayOn: false },
      ],
      [{ deviceId: "a", relayOn: false, recvAt: t + 120_010 }],
    );
    expect(r.delays).toEqual([10]);
    expect(r.missed.map((m) => m.at)).toEqual([0, 60_000]);
  });

  it("nearAny brackets instants", () => {
    expect(nearAny(1000, [3000], 2000, 4000)).toBe(true);
    expect(nearAny(999, [3000], 2000, 4000)).toBe(false);
    expect(nearAny(7000, [3000], 2000, 4000)).toBe(true);
    expect(nearAny(7001, [3000], 2000, 4000)).toBe(false);
  });

  it("footprint per plug under retention multiplies bytes per row by rows kept", () => {
    expect(ROWS.rawPerDay(1)).toBe(86_400);
    const f = retainedFootprint({ raw: 30, m1: 60, h1: 60, d1: 70 }, { raw: 7, m1: 30, h1: 365, d1: 1825 }, 1);
    expect(f.raw).toBe(30 * 86_400 * 7);
    expect(f.m1).toBe(60 * 1440 * 30);
    expect(f.h1).toBe(60 * 24 * 365);
    expect(f.d1).toBe(70 * 1825);
    expect(f.total).toBe(f.raw + f.m1 + f.h1 + f.d1);
  });
});
