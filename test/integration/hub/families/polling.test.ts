// Issue 3 §2: the hub polls metered Tasmota (`Status 10`) and Shelly Gen2 (`Switch.GetStatus`) plugs;
// "polling stops while a plug is offline and never piles up requests". The plug here is a real MQTT client
// holding the plug's credentials and subscribed to the family's command topic, so every request the hub
// sends reaches it and is counted, even while it tells the hub it is offline, and it answers only when
// the test says so. The hub polls every 200 ms.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../helpers/hub.js";
import type { MqttClient } from "../../../helpers/mqtt.js";
import { buildEnergy, buildStatus10, tasmotaTime, tasmotaTopics } from "../../../sim/tasmota-payloads.js";
import { gen2Topics } from "../../../sim/shelly-gen2-payloads.js";
import { FAMILY_HUB_ENV, connectAs, freshId, sleep, storedReadings, untilDevice } from "./support.js";

const INTERVAL_MS = Number(FAMILY_HUB_ENV.HUB_POLL_INTERVAL_MS);
type Family = "tasmota" | "shelly-gen2";

const clients: MqttClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.end(true);
});

/** A plug of the family that counts the hub's polls and answers them only while `answering` is set. */
interface PollProbe {
  id: string;
  /** Receive times (Date.now) of every poll request. */
  polls: number[];
  answering: boolean;
  /** Announces availability the family's way (retained), staying connected. */
  announce(online: boolean): Promise<void>;
}

async function probe(t: TestHub, family: Family): Promise<PollProbe> {
  const id = freshId(family);
  const code = await t.pair(id, { family });
  const c = await connectAs(t, id, code, clients);
  let energyWh = 1000;
  const p: PollProbe = {
    id,
    polls: [],
    answering: false,
    async announce(online) {
      if (family === "tasmota") await c.publishAsync(tasmotaTopics(id).lwt, online ? "Online" : "Offline", { qos: 1, retain: true });
      else await c.publishAsync(gen2Topics(id).online, online ? "true" : "false", { qos: 1, retain: true });
    },
  };
  if (family === "tasmota") {
    await c.subscribeAsync(`cmnd/${id}/#`, { qos: 0 });
    c.on("message", (topic, payload) => {
      if (topic !== `cmnd/${id}/Status` || payload.toString() !== "10") return;
      p.polls.push(Date.now());
      if (!p.answering) return;
      energyWh += 0.1;
      const energy = buildEnergy({ power: 100, voltage: 230, powerFactor: 0.95, totalWh: energyWh, todayWh: 0, yesterdayWh: 0, totalStartTime: "2026-01-01T00:00:00" }, undefined, 5);
      // Time without an offset (as shipped): the hub stamps the reading with its receive time.
      c.publish(tasmotaTopics(id).status(10), JSON.stringify(buildStatus10(tasmotaTime(Date.now(), 0, false), energy)));
    });
  } else {
    await c.subscribeAsync(gen2Topics(id).rpc, { qos: 1 });
    c.on("message", (_topic, payload) => {
      const req = JSON.parse(payload.toString()) as { id: number; src: string; method: string };
      if (req.method !== "Switch.GetStatus") return;
      p.polls.push(Date.now());
      if (!p.answering) return;
      energyWh += 0.1;
      const result = { id: 0, source: "init", output: true, apower: 100, voltage: 230, current: 0.46, aenergy: { total: energyWh } };
      c.publish(`${req.src}/rpc`, JSON.stringify({ id: req.id, src: id, dst: req.src, result }), { qos: 1 });
    });
  }
  await p.announce(true);
  await untilDevice(t, id, (d) => d.status, (s) => s === "online", "online");
  return p;
}

/** Polls received in [from, to). */
const between = (polls: number[], from: number, to: number) => polls.filter((x) => x >= from && x < to);
/** The shortest gap between consecutive polls, ms (Infinity with fewer than two). */
const minGap = (polls: number[]) => polls.slice(1).reduce((m, x, i) => Math.min(m, x - polls[i]!), Infinity);
/** At most one poll per interval over `ms` (a send at both ends of the window). */
const atMost = (ms: number) => Math.floor(ms / INTERVAL_MS) + 1;
/**
 * The poller looks every interval/10 (≥ 50 ms) and keeps each plug's turns a whole interval apart, so two
 * polls are at least an interval minus one look apart; 20 ms more for delivery over loopback.
 */
const MIN_GAP_MS = INTERVAL_MS - Math.max(50, INTERVAL_MS / 10) - 20;
/** An unanswered poll counts as outstanding for a whole interval: the next one waits for it to expire. */
const MIN_GAP_SILENT_MS = INTERVAL_MS - 20;

describe.each(["tasmota", "shelly-gen2"] as const)("%s: polling (issue 3 §2)", (family) => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ env: FAMILY_HUB_ENV });
    await t.owner();
  });
  afterAll(async () => {
    await t.close();
  });

  it("a plug that never answers gets one poll per interval at most (never a second one outstanding), and no burst once it answers again", async () => {
    const p = await probe(t, family);
    const start = Date.now();
    await sleep(3000);
    const silent = between(p.polls, start, Date.now());
    expect(silent.length).toBeGreaterThanOrEqual(3); // it is still asked (a QoS 0 poll can be lost)…
    expect(silent.length).toBeLessThanOrEqual(atMost(3000)); // …but requests never pile up
    expect(minGap(silent)).toBeGreaterThanOrEqual(MIN_GAP_SILENT_MS);
    expect(await storedReadings(t, p.id)).toEqual([]);

    // It answers from now on: the cadence stays one poll per interval, nothing was queued meanwhile.
    p.answering = true;
    const resumed = Date.now();
    await sleep(2000);
    const answered = between(p.polls, resumed, Date.now());
    expect(answered.length).toBeGreaterThanOrEqual(5);
    expect(answered.length).toBeLessThanOrEqual(atMost(2000));
    expect(minGap(answered)).toBeGreaterThanOrEqual(MIN_GAP_MS);
    expect((await storedReadings(t, p.id)).length).toBeGreaterThanOrEqual(answered.length - 2);
  });

  it("polling stops while the plug is offline (not one request) and resumes, without a burst, when it is back", async () => {
    const p = await probe(t, family);
    p.answering = true;
    await sleep(600);
    expect(p.polls.length).toBeGreaterThanOrEqual(1);
    // Offline by the family's availability message; the link stays up, so any poll would arrive here.
    await p.announce(false);
    await untilDevice(t, p.id, (d) => d.status, (s) => s === "offline", "offline");
    await sleep(50); // a poll already on the wire when the hub learnt it
    const offline = Date.now();
    await sleep(2000);
    expect(between(p.polls, offline, Date.now())).toEqual([]);

    await p.announce(true);
    await untilDevice(t, p.id, (d) => d.status, (s) => s === "online", "online again");
    const back = Date.now();
    await sleep(1500);
    const after = between(p.polls, back, Date.now());
    expect(after.length).toBeGreaterThanOrEqual(3);
    expect(after.length).toBeLessThanOrEqual(atMost(1500));
    expect(minGap(after)).toBeGreaterThanOrEqual(MIN_GAP_MS);
  });
});

describe("polling across wall-clock jumps (issue 3 §2, RELIABILITY F10)", () => {
  let t: TestHub;
  let offsetMs = 0;
  beforeAll(async () => {
    // Only the wall clock jumps (NTP correction, RTC-less boot); time itself goes on.
    t = await startTestHub({ env: FAMILY_HUB_ENV, hubOptions: { clock: { now: () => Date.now() + offsetMs, monotonic: () => performance.now() } } });
    await t.owner();
  });
  afterAll(async () => {
    await t.close();
  });

  it.each([
    ["back 1 h", -3_600_000],
    ["forward 1 day", 86_400_000],
    ["back 1 day", -86_400_000],
  ])("a jump %s neither stalls polling nor causes a burst", async (_what, jump) => {
    const p = await probe(t, "tasmota");
    p.answering = true;
    await sleep(600);
    offsetMs += jump;
    const jumped = Date.now();
    await sleep(1500);
    const after = between(p.polls, jumped, Date.now());
    expect(after.length).toBeGreaterThanOrEqual(4);
    expect(after.length).toBeLessThanOrEqual(atMost(1500));
    expect(minGap(after)).toBeGreaterThanOrEqual(MIN_GAP_MS);
  });
});
