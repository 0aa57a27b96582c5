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
