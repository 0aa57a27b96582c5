import { describe, expect, it } from "vitest";
import { edgesBetween, latestEdge, type RuleSpec } from "../../../shared/schedule-math.js";

const daily = (at: string, zone: string, action: "on" | "off" = "on"): RuleSpec => ({ id: `r-${at}`, type: "weekly", days: [1, 2, 3, 4, 5, 6, 7], at, from: null, to: null, action, timeZone: zone, enabled: true });
const fires = (rule: RuleSpec, fromIso: string, toIso: string) => edgesBetween(rule, Date.parse(fromIso), Date.parse(toIso)).map((e) => new Date(e.ts).toISOString());

// F11: the written DST policy as exact tables of fire instants (UTC) across the 2026 transitions.
describe("F11: DST policy, Europe/Berlin 2026 (spring 29 Mar 02:00→03:00, fall 25 Oct 03:00→02:00)", () => {
  const zone = "Europe/Berlin";
  it("a daily 02:30 rule fires once right after the spring-forward gap", () => {
    expect(fires(daily("02:30", zone), "2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z")).toEqual([
      "2026-03-28T01:30:00.000Z", // 02:30 CET
      "2026-03-29T01:00:00.000Z", // gap: 03:00 CEST, the first instant after it
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
      "2026-03-31T00:30:00.000Z",
    ]);
  });
  it("rules just outside the gap are untouched", () => {
    expect(fires(daily("01:59", zone), "2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z")).toEqual(["2026-03-29T00:59:00.000Z"]);
    expect(fires(daily("03:00", zone), "2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z")).toEqual(["2026-03-29T01:00:00.000Z"]);
    expect(fires(daily("03:30", zone), "2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z")).toEqual(["2026-03-29T01:30:00.000Z"]);
  });
  it("a daily 02:30 rule fires once in the repeated hour, at its first occurrence", () => {
    expect(fires(daily("02:30", zone), "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z")).toEqual([
      "2026-10-25T00:30:00.000Z", // 02:30 CEST; 02:30 CET an hour later does not fire again
      "2026-10-26T01:30:00.000Z", // 02:30 CET
    ]);
  });
});

describe("F11: DST policy, America/New_York 2026 (spring 8 Mar 02:00→03:00, fall 1 Nov 02:00→01:00)", () => {
  const zone = "America/New_York";
  it("a daily 02:30 rule fires once right after the spring-forward gap", () => {
    expect(fires(daily("02:30", zone), "2026-03-07T00:00:00Z", "2026-03-09T12:00:00Z")).toEqual([
      "2026-03-07T07:30:00.000Z", // 02:30 EST
      "2026-03-08T07:00:00.000Z", // gap: 03:00 EDT
      "2026-03-09T06:30:00.000Z", // 02:30 EDT
    ]);
  });
  it("a daily 01:30 rule fires once in the repeated hour, at its first occurrence", () => {
    expect(fires(daily("01:30", zone), "2026-10-31T00:00:00Z", "2026-11-02T12:00:00Z")).toEqual([
      "2026-10-31T05:30:00.000Z", // 01:30 EDT
      "2026-11-01T05:30:00.000Z", // first 01:30 (EDT); 01:30 EST at 06:30Z does not fire
      "2026-11-02T06:30:00.000Z", // 01:30 EST
    ]);
  });
  it("a window 18:00–01:30 crossing midnight and the fall-back", () => {
    const rule: RuleSpec = { id: "w", type: "window", days: [6], at: null, from: "18:00", to: "01:30", action: "on", timeZone: zone, enabled: true };
    expect(edgesBetween(rule, Date.parse("2026-10-31T00:00:00Z"), Date.parse("2026-11-02T00:00:00Z")).map((e) => [new Date(e.ts).toISOString(), e.action])).toEqual([
      ["2026-10-31T22:00:00.000Z", "on"], // Sat 18:00 EDT
      ["2026-11-01T05:30:00.000Z", "off"], // Sun 01:30, first occurrence
    ]);
  });
});

describe("schedule edges", () => {
  it("a one-shot fires once at its local time", () => {
    const once: RuleSpec = { id: "o", type: "once", days: null, at: "2026-12-24T22:00", from: null, to: null, action: "off", timeZone: "Europe/Berlin", enabled: true };
    expect(fires(once, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")).toEqual(["2026-12-24T21:00:00.000Z"]);
  });
  it("weekly rules fire only on their days; disabled rules never", () => {
    const r: RuleSpec = { ...daily("06:30", "UTC"), days: [1, 3] }; // Mon, Wed
    expect(fires(r, "2026-11-30T00:00:00Z", "2026-12-06T23:59:00Z")).toEqual(["2026-11-30T06:30:00.000Z", "2026-12-02T06:30:00.000Z"]);
    expect(fires({ ...r, enabled: false }, "2026-11-30T00:00:00Z", "2026-12-06T23:59:00Z")).toEqual([]);
  });
  it("F10: after any clock jump the state in force is the latest edge only (no burst of missed ones)", () => {
    const rules = [daily("06:30", "UTC", "on"), daily("22:00", "UTC", "off")];
    expect(latestEdge(rules, Date.parse("2026-12-03T07:00:00Z"))).toMatchObject({ action: "on", ts: Date.parse("2026-12-03T06:30:00Z") });
    expect(latestEdge(rules, Date.parse("2026-12-05T23:00:00Z"))).toMatchObject({ action: "off", ts: Date.parse("2026-12-05T22:00:00Z") });
  });
});
