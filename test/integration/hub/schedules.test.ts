import { afterEach, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { connectNativePlug, eventually, type MqttClient } from "../../helpers/mqtt.js";

let t: TestHub;
const plugs: MqttClient[] = [];
afterEach(async () => {
  for (const p of plugs.splice(0)) p.end(true);
  await t.close();
});

const at = (iso: string) => Date.parse(iso);

/** A plug that obeys control messages and counts them. */
async function plug(id: string, code: string, relay: boolean, waitInitial = true) {
  const p = await connectNativePlug(t.mqttUrl, id, code);
  plugs.push(p);
  const got: string[] = [];
  let state = relay;
  await p.subscribeAsync(`smartplug/${id}/control`, { qos: 1 });
  p.on("message", (_t, payload) => {
    const m = JSON.parse(payload.toString()) as { command: string; id: string };
    got.push(m.command);
    state = m.command === "relay_on" ? true : m.command === "relay_off" ? false : !state;
    p.publish(`smartplug/${id}/status`, JSON.stringify({ status: "online", relay_state: state, firmware_version: "1", command_id: m.id }), { qos: 1 });
  });
  await p.publishAsync(`smartplug/${id}/status`, JSON.stringify({ status: "online", relay_state: relay, firmware_version: "1" }), { qos: 1 });
  if (waitInitial) await eventually(async () => (await (await t.api(`/devices/${id}`)).json()).relay_state, (r) => r === relay, "initial relay state");
  return { p, got, state: () => state };
}

async function boot(nowRef: { now: number }, dataDir?: string) {
  t = await startTestHub({ dataDir, env: { HUB_TIMEZONE: "UTC" }, hubOptions: { clock: { now: () => nowRef.now }, scheduleTimers: false } });
  await t.owner();
}

describe("schedules (issue 4 §1)", () => {
  it("validates rules and reports the next run", async () => {
    const clock = { now: at("2026-12-03T12:00:00Z") };
    await boot(clock);
    await t.pair("s0");
    const ok = await t.api("/devices/s0/schedules", { body: { type: "weekly", days: [1, 2, 3, 4, 5], at: "06:30", action: "on", name: "Mornings" } });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toEqual({
      id: expect.any(String),
      device_id: "s0",
      type: "weekly",
      name: "Mornings",
      days: [1, 2, 3, 4, 5],
      at: "06:30",
      from: null,
      to: null,
      action: "on",
      time_zone: "UTC",
      enabled: true,
      reassert_on_boot: false,
      next_run: "2026-12-04T06:30:00.000Z",
      created_at: "2026-12-03T12:00:00.000Z",
    });
    for (const bad of [
      { type: "weekly", days: [0], at: "06:30", action: "on" },
      { type: "weekly", days: [1], at: "24:00", action: "on" },
      { type: "window", from: "18:00", to: "23:30", time_zone: "Mars/Olympus" },
      { type: "once", at: "tomorrow", action: "off" },
      { type: "weekly", days: [1], at: "06:30", action: "on", owner_id: "x" },
      { type: "cron", expr: "* * * * *" },
    ]) {
      const res = await t.api("/devices/s0/schedules", { body: bad });
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
    }
    expect((await t.api("/devices/ghost/schedules", { body: { type: "once", at: "2026-12-24T22:00", action: "off" } })).status).toBe(404);
    expect((await (await t.api("/schedules")).json()).length).toBe(1);
  });

  it("switches the plug at the edge, and F10: a clock jump applies only the edge in force (no burst)", async () => {
    const clock = { now: at("2026-12-03T06:29:59Z") };
    await boot(clock);
    const code = await t.pair("s1");
    const { got } = await plug("s1", code, false);
    await t.api("/devices/s1/schedules", { body: { type: "weekly", days: [1, 2, 3, 4, 5, 6, 7], at: "06:30", action: "on" } });
    await t.api("/devices/s1/schedules", { body: { type: "weekly", days: [1, 2, 3, 4, 5, 6, 7], at: "22:00", action: "off" } });
    await t.hub.schedules.reconcileAll("tick");
    // Edges from before a rule existed do not count: nothing happens until 06:30.
    expect(got).toEqual([]);
    clock.now = at("2026-12-03T06:30:00.200Z");
    await t.hub.schedules.reconcileAll("tick");
    expect(got).toEqual(["relay_on"]);
    await t.hub.schedules.reconcileAll("tick");
    expect(got).toEqual(["relay_on"]);

    // +3 days: six edges were skipped; only the one in force (22:00 off on the 6th) is applied.
    clock.now = at("2026-12-06T23:10:00Z");
    await t.hub.schedules.reconcileAll("jump");
    expect(got).toEqual(["relay_on", "relay_off"]);
    // −1 h and −1 day: nothing newer than what was applied; nothing is replayed.
    clock.now = at("2026-12-06T22:10:00Z");
    await t.hub.schedules.reconcileAll("jump");
    clock.now = at("2026-12-05T23:10:00Z");
    await t.hub.schedules.reconcileAll("jump");
    expect(got).toEqual(["relay_on", "relay_off"]);
  });

  it("a manual switch holds until the next edge", async () => {
    const clock = { now: at("2026-12-03T18:00:00Z") };
    await boot(clock);
    const code = await t.pair("s2");
    const { got } = await plug("s2", code, false);
    await t.api("/devices/s2/schedules", { body: { type: "window", from: "18:00", to: "23:30", action: "on" } });
    await t.hub.schedules.reconcileAll("tick");
    expect(got).toEqual(["relay_on"]);
    clock.now = at("2026-12-03T19:00:00Z");
    expect((await t.api("/devices/s2/command", { body: { command: "relay_off" } })).status).toBe(200);
    clock.now = at("2026-12-03T19:01:00Z");
    await t.hub.schedules.reconcileAll("tick");
    expect(got).toEqual(["relay_on", "relay_off"]); // the schedule does not fight the person
    clock.now = at("2026-12-03T23:30:00Z");
    await t.hub.schedules.reconcileAll("tick");
    // The window's end edge is "off": the plug already is, so nothing is sent; the next start turns it on.
    clock.now = at("2026-12-04T18:00:00Z");
    await t.hub.schedules.reconcileAll("tick");
    expect(got).toEqual(["relay_on", "relay_off", "relay_on"]);
  });

  it("reassert_on_boot re-applies the current slot after a hub restart; without it the manual state stays", async () => {
    const clock = { now: at("2026-12-03T18:00:00Z") };
    await boot(clock);
    const dataDir = t.dataDir;
    const codeA = await t.pair("ra");
    const codeB = await t.pair("rb");
    const a = await plug("ra", codeA, false);
    const b = await plug("rb", codeB, false);
    await t.api("/devices/ra/schedules", { body: { type: "window", from: "18:00", to: "23:30", action: "on", reassert_on_boot: true } });
    await t.api("/devices/rb/schedules", { body: { type: "window", from: "18:00", to: "23:30", action: "on" } });
    await t.hub.schedules.reconcileAll("tick");
    clock.now = at("2026-12-03T19:00:00Z");
    await t.api("/devices/ra/command", { body: { command: "relay_off" } });
    await t.api("/devices/rb/command", { body: { command: "relay_off" } });
    expect([a.state(), b.state()]).toEqual([false, false]);
    for (const p of plugs.splice(0)) p.end(true);
    await t.close({ keepData: true });
    clock.now = at("2026-12-03T19:30:00Z");
    await boot(clock, dataDir);
    const a2 = await plug("ra", codeA, false, false);
    const b2 = await plug("rb", codeB, false, false);
    await eventually(() => a2.state(), (s) => s, "ra re-asserted on");
    await t.hub.schedules.reconcileAll("boot");
    expect(a2.got).toEqual(["relay_on"]);
    expect(b2.got).toEqual([]);
    expect((await (await t.api("/devices/rb")).json()).relay_state).toBe(false);
  });
});

/**
 * A wall clock for the hub that runs at real speed from a chosen instant and can be stepped (NTP, an
 * RTC-less boot); its monotonic clock never steps. The hub's own timers run: nothing is called by hand.
 */
function wallClock(iso: string) {
  let offset = Date.parse(iso) - Date.now();
  return {
    clock: { now: () => Date.now() + offset, monotonic: () => performance.now() },
    now: () => Date.now() + offset,
    step(ms: number) {
      offset += ms;
    },
  };
}

async function bootLive(w: ReturnType<typeof wallClock>, dataDir?: string) {
  t = await startTestHub({ dataDir, env: { HUB_TIMEZONE: "UTC" }, hubOptions: { clock: w.clock } });
  await t.owner();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const daily = (o: Record<string, unknown>) => ({ type: "weekly", days: [1, 2, 3, 4, 5, 6, 7], ...o });

describe("schedules on the hub's own triggers (issue 4 §1, injected clock, no reconcile called by hand)", () => {
  it("the minute tick fires an edge by itself, within 1.5 s of it, once", async () => {
    const w = wallClock("2026-12-03T06:29:54Z");
    await bootLive(w);
    const code = await t.pair("m1");
    const { got } = await plug("m1", code, false);
    const created = await (await t.api("/devices/m1/schedules", { body: daily({ at: "06:30", action: "on" }) })).json();
    expect(Date.parse(created.created_at)).toBeLessThan(at("2026-12-03T06:30:00Z")); // the rule predates its edge
    expect(got).toEqual([]);
    await eventually(() => got.length, (n) => n > 0, "the 06:30 edge", 8000);
    expect(w.now() - at("2026-12-03T06:30:00Z")).toBeLessThan(1500);
    await sleep(1500); // more ticks and jump checks: nothing more
    expect(got).toEqual(["relay_on"]);
    expect(t.hub.schedules.clockJumps).toBe(0);
  });

  it("an edge between minute boundaries (a one-shot at 06:30:30) fires within 1.5 s of its instant, not at the next minute, once", async () => {
    const w = wallClock("2026-12-03T06:30:24Z");
    await bootLive(w);
    const code = await t.pair("s1");
    const { got } = await plug("s1", code, true);
    expect((await t.api("/devices/s1/schedules", { body: { type: "once", at: "2026-12-03T06:30:30", action: "off", time_zone: "UTC" } })).status).toBe(201);
    expect(got).toEqual([]);
    await eventually(() => got.length, (n) => n > 0, "the 06:30:30 edge", 8000);
    expect(w.now() - at("2026-12-03T06:30:30Z")).toBeLessThan(1500);
    await sleep(1500);
    expect(got).toEqual(["relay_off"]);
  });

  it("F10: clock jumps of +1 h, −1 h, +1 day and −1 day are detected (wall vs monotonic) and reconciled at once, at most one action per device each", async () => {
    const w = wallClock("2026-12-03T21:59:00Z");
    await bootLive(w);
    const c1 = await t.pair("j1");
    const c2 = await t.pair("j2");
    const d1 = await plug("j1", c1, true);
    const d2 = await plug("j2", c2, false);
    // j1: on 06:30, off 22:00 daily. j2: on in the window 22:30–23:30.
    await t.api("/devices/j1/schedules", { body: daily({ at: "06:30", action: "on" }) });
    await t.api("/devices/j1/schedules", { body: daily({ at: "22:00", action: "off" }) });
    await t.api("/devices/j2/schedules", { body: daily({ type: "window", from: "22:30", to: "23:30", action: "on" }) });
    await sleep(1200);
    expect([d1.got, d2.got]).toEqual([[], []]); // no edge since the rules exist

    const jump = async (ms: number, n: number, expected: [string[], string[]]) => {
      w.step(ms);
      await eventually(() => t.hub.schedules.clockJumps, (k) => k === n, `jump ${n} detected`, 3000);
      await eventually(() => [d1.got.length, d2.got.length], ([a, b]) => a === expected[0].length && b === expected[1].length, `actions after jump ${n}`, 3000);
      await sleep(1200); // later ticks and checks add nothing: no burst, no replay of skipped edges
      expect([d1.got, d2.got]).toEqual(expected);
      expect(t.hub.schedules.clockJumps).toBe(n);
    };
    // +1 h → 22:59: j1's 22:00 off and j2's 22:30 on are in force.
    await jump(3_600_000, 1, [["relay_off"], ["relay_on"]]);
    // −1 h → 21:59 again: nothing newer than what was applied; the edges just applied are not undone.
    await jump(-3_600_000, 2, [["relay_off"], ["relay_on"]]);
    // +1 day → Dec 4 21:59: three edges of j1 and one of j2 were skipped; only the ones in force apply.
    await jump(86_400_000, 3, [["relay_off", "relay_on"], ["relay_on", "relay_off"]]);
    // −1 day → Dec 3 21:59: nothing replayed.
    await jump(-86_400_000, 4, [["relay_off", "relay_on"], ["relay_on", "relay_off"]]);
    expect([d1.state(), d2.state()]).toEqual([true, false]);
  });

  it("a plug that was offline at its edge is switched as soon as it comes back (the 'plug returns' trigger)", async () => {
    const w = wallClock("2026-12-03T06:29:55Z");
    await bootLive(w);
    const code = await t.pair("o1");
    const first = await plug("o1", code, false);
    await t.api("/devices/o1/schedules", { body: daily({ at: "06:30", action: "on" }) });
    first.p.stream.destroy(); // power cut before the edge: the will marks it offline
    await eventually(async () => (await (await t.api("/devices/o1")).json()).status, (s) => s === "offline", "offline");
    await eventually(() => w.now(), (n) => n > at("2026-12-03T06:30:01Z"), "past the edge", 8000);
    await sleep(300);
    expect(first.got).toEqual([]);
    // Back at ~06:30:02, long before the next minute tick: it reports its relay state and is switched.
    const back = await plug("o1", code, false, false);
    await eventually(() => back.got, (g) => g.length > 0, "switched on return", 3000);
    expect(w.now()).toBeLessThan(at("2026-12-03T06:31:00Z"));
    await sleep(800);
    expect(back.got).toEqual(["relay_on"]);
    expect((await (await t.api("/devices/o1")).json()).relay_state).toBe(true);
  });

  it("after a hub restart, reassert_on_boot: true re-applies the slot over a manual switch; false keeps the manual state, across the next minute tick too", async () => {
    const w = wallClock("2026-12-03T18:59:56Z");
    await bootLive(w);
    const dataDir = t.dataDir;
    const codeA = await t.pair("ba");
    const codeB = await t.pair("bb");
    const a = await plug("ba", codeA, false);
    const b = await plug("bb", codeB, false);
    await t.api("/devices/ba/schedules", { body: daily({ type: "window", from: "19:00", to: "23:30", action: "on", reassert_on_boot: true }) });
    await t.api("/devices/bb/schedules", { body: daily({ type: "window", from: "19:00", to: "23:30", action: "on" }) });
    await eventually(() => [a.got, b.got], (g) => g.every((x) => x.length > 0), "the 19:00 tick", 8000);
    expect([a.got, b.got]).toEqual([["relay_on"], ["relay_on"]]);
    // The person switches both off; the hub goes down and comes back (still in the window).
    expect((await t.api("/devices/ba/command", { body: { command: "relay_off" } })).status).toBe(200);
    expect((await t.api("/devices/bb/command", { body: { command: "relay_off" } })).status).toBe(200);
    for (const p of plugs.splice(0)) p.end(true);
    await t.close({ keepData: true });
    w.step(Math.max(0, at("2026-12-03T19:00:57Z") - w.now())); // down for a while: back just before 19:01
    await bootLive(w, dataDir);
    const a2 = await plug("ba", codeA, false, false);
    const b2 = await plug("bb", codeB, false, false);
    await eventually(() => a2.got, (g) => g.length > 0, "ba re-asserted", 3000);
    await eventually(() => w.now(), (n) => n > at("2026-12-03T19:01:00.500Z"), "past the 19:01 tick", 8000);
    await sleep(500);
    expect([a2.got, b2.got]).toEqual([["relay_on"], []]);
    expect([a2.state(), b2.state()]).toEqual([true, false]);
    expect((await (await t.api("/devices/bb")).json()).relay_state).toBe(false);
  });
});
