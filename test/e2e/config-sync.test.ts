// Config sync both ways, end to end (issue 6 §5, "config conflict convergence"): the real cloud (PGlite, express,
// ws) and InfluxDB, the real hub (SQLite, aedes, its uplink and link) behind a fault-injecting proxy, plugs as
// real MQTT clients. Every check is what the apps see: the hub's and the cloud's GET answers, compared whole.
// The conflict rule (shared/schemas/sync.ts): between two edits the higher version (ms at the edit) wins, the
// hub's at a tie; a deletion is final on both sides; only a pairing newer than a deletion brings a device back.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isDeepStrictEqual } from "node:util";
import { rmSync } from "node:fs";
import { and, eq } from "drizzle-orm";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { SERVICE_START_MS, startTestCloud, type TestCloud, type TestUser } from "../helpers/cloud.js";
import { startTestHub, type TestHub } from "../helpers/hub.js";
import { connectNativePlug, eventually, type MqttClient } from "../helpers/mqtt.js";
import { CloudFaultProxy } from "../helpers/cloud-fault-proxy.js";
import { devices } from "../../cloud/db/schema.js";

let influx: TestInflux;
beforeAll(async () => {
  influx = await startInflux();
}, SERVICE_START_MS);
afterAll(async () => {
  await influx?.close();
});

const FAST_SYNC = {
  HUB_SYNC_INTERVAL_MS: "200",
  HUB_SYNC_BACKOFF_BASE_MS: "100",
  HUB_SYNC_BACKOFF_MAX_S: "1",
  HUB_SYNC_TIMEOUT_MS: "3000",
  HUB_LINK_STATE_MS: "100",
  HUB_TIMEZONE: "Europe/Berlin",
};
const CONVERGE_MS = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
/** What both sides hold of a device as config (live state such as power or last_seen is not config). */
const configOf = (d: Json) => (d && typeof d === "object" && "device_id" in d ? { device_id: d.device_id, name: d.name, family: d.family, channel: d.channel, created_at: d.created_at } : d);

describe("config sync both ways, end to end (issue 6 §5)", () => {
  let cloud: TestCloud | undefined;
  let hub: TestHub | undefined;
  let proxy: CloudFaultProxy | undefined;
  const clients: MqttClient[] = [];
  let owner: TestUser;
  let hubId: string;
  let dataDir: string;

  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true);
    await hub?.close();
    await proxy?.close();
    await cloud?.close();
    hub = proxy = cloud = undefined;
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** Cloud, proxy, hub claimed by alice, plug-1 paired on the hub and seen by the cloud. */
  async function setup() {
    cloud = await startTestCloud({ influxUrl: influx.url });
    const c = cloud;
    proxy = await CloudFaultProxy.start(() => c.cloud.httpPort);
    hub = await startTestHub({ env: { HUB_CLOUD_URL: proxy.url, ...FAST_SYNC } });
    dataDir = hub.dataDir;
    owner = await cloud.user("alice");
    const token = await hub.owner();
    const st = await eventually(async () => (await hub!.api("/cloud", { token })).json(), (s) => typeof s.claim_code === "string", "claim code");
    expect((await cloud.api("/hubs/claim", { body: { claim_code: st.claim_code }, token: owner.token })).status).toBe(200);
    hubId = st.hub_id;
    await hub.pair("plug-1", { name: "Lamp" });
    await eventually(async () => (await cloud!.api("/devices/plug-1", { token: owner.token })).status, (s) => s === 200, "plug-1 in the cloud", 10_000);
    await eventually(async () => hub!.hub.sync.link.connected, (c) => c, "hub linked", 10_000);
  }

  const onHub = (path: string, init: { method?: string; body?: unknown } = {}) => hub!.api(path, init);
  const onCloud = (path: string, init: { method?: string; body?: unknown } = {}) => cloud!.api(path, { ...init, token: owner.token });
  const read = async (res: Promise<Response>) => {
    const r = await res;
    return r.status === 200 ? ((await r.json()) as Json) : { status: r.status };
  };

  /**
   * Waits until GET `path` answers the same on the hub and in the cloud (and `until` holds for that answer, when
   * the test waits for an edit to arrive); returns the answer.
   */
  async function converged(path: string, o: { project?: (v: Json) => Json; until?: (v: Json) => boolean } = {}): Promise<Json> {
    const project = o.project ?? ((v: Json) => v);
    const both = await eventually(
      async () => {
        const [h, c] = await Promise.all([read(onHub(path)), read(onCloud(path))]);
        return { hub: project(h), cloud: project(c) };
      },
      (b) => isDeepStrictEqual(b.hub, b.cloud) && (o.until?.(b.cloud) ?? true),
      `hub and cloud to answer GET ${path} the same`,
      CONVERGE_MS,
    );
    return both.cloud;
  }
  const schedulesConverged = (n: number, until?: (l: Json[]) => boolean) => converged("/schedules", { until: (l) => Array.isArray(l) && l.length === n && (until?.(l) ?? true) });
  const devicesConverged = (until?: (l: Json[]) => boolean) => converged("/devices", { project: (l: Json) => (Array.isArray(l) ? l.map(configOf) : l), until: (l) => Array.isArray(l) && (until?.(l) ?? true) });

  async function createOn(side: "hub" | "cloud", body: Json, deviceId = "plug-1"): Promise<Json> {
    const res = await (side === "hub" ? onHub : onCloud)(`/devices/${deviceId}/schedules`, { body });
    expect(res.status).toBe(201);
    return res.json();
  }
  async function patchOn(side: "hub" | "cloud", sid: string, body: Json) {
    const res = await (side === "hub" ? onHub : onCloud)(`/schedules/${sid}`, { method: "PATCH", body });
    expect(res.status).toBe(200);
  }
  async function deleteOn(side: "hub" | "cloud", path: string) {
    expect((await (side === "hub" ? onHub : onCloud)(path, { method: "DELETE" })).status).toBe(204);
  }

  /** The hub offline from the cloud's point of view: link and uplink down. */
  async function cutInternet() {
    proxy!.linkDown = true;
    proxy!.fault = { kind: "down" };
    proxy!.dropConnections();
    await eventually(async () => hub!.hub.sync.link.connected, (c) => !c, "link down");
    await eventually(async () => cloud!.cloud.link.isConnected(hubId), (c) => !c, "cloud sees the link down");
  }
  function restoreInternet() {
    proxy!.linkDown = false;
    proxy!.fault = { kind: "none" };
  }

  it("renames and schedule edits made on either side converge while linked; both answer the same GETs", async () => {
    await setup();
    expect((await onHub("/devices/plug-1", { method: "PATCH", body: { name: "Hub lamp" } })).status).toBe(200);
    expect((await devicesConverged((l) => l[0]?.name === "Hub lamp")).map((d: Json) => d.name)).toEqual(["Hub lamp"]);
    expect((await onCloud("/devices/plug-1", { method: "PATCH", body: { name: "Cloud lamp" } })).status).toBe(200);
    expect((await devicesConverged((l) => l[0]?.name === "Cloud lamp")).map((d: Json) => d.name)).toEqual(["Cloud lamp"]);

    const a = await createOn("hub", { type: "weekly", days: [3, 1], at: "06:30", action: "on", name: "Morning" });
    const b = await createOn("cloud", { type: "window", from: "18:00", to: "23:30", name: "Evening" });
    // The cloud answers in the hub's shape, in the hub's time zone, with next_run from the same schedule math.
    expect(b).toEqual({
      id: expect.any(String),
      device_id: "plug-1",
      type: "window",
      name: "Evening",
      days: [1, 2, 3, 4, 5, 6, 7],
      at: null,
      from: "18:00",
      to: "23:30",
      action: "on",
      time_zone: "Europe/Berlin",
      enabled: true,
      reassert_on_boot: false,
      next_run: expect.any(String),
      created_at: expect.any(String),
    });
    const both = await schedulesConverged(2);
    expect(both.map((s: Json) => s.id)).toEqual([a.id, b.id]);
    expect(await converged(`/schedules/${b.id}`)).toEqual(b);
    expect(await converged("/devices/plug-1/schedules")).toEqual(both);

    await patchOn("cloud", a.id, { enabled: false });
    await patchOn("hub", b.id, { name: "Night", reassert_on_boot: true });
    const edited = await schedulesConverged(2, (l) => l[0].enabled === false && l[1].name === "Night");
    expect(edited).toEqual([
      { ...a, enabled: false, next_run: null },
      { ...b, name: "Night", reassert_on_boot: true, next_run: expect.any(String) },
    ]);

    await deleteOn("cloud", `/schedules/${a.id}`);
    await deleteOn("hub", `/schedules/${b.id}`);
    expect(await schedulesConverged(0)).toEqual([]);
    for (const s of [a, b]) expect(await converged(`/schedules/${s.id}`)).toEqual({ status: 404 });
  });

  it("edits made in the cloud while the hub is stopped are applied when it comes back, a cloud-created device included", async () => {
    await setup();
    const keep = await createOn("hub", { type: "weekly", days: [1, 2, 3, 4, 5], at: "07:15", action: "on", name: "Workdays" });
    const drop = await createOn("hub", { type: "once", at: "2031-05-01T12:00", action: "off" });
    await schedulesConverged(2);

    await hub!.close({ keepData: true });
    hub = undefined;
    await eventually(async () => cloud!.cloud.link.isConnected(hubId), (c) => !c, "cloud sees the hub gone");
    expect((await onCloud("/devices/plug-1", { method: "PATCH", body: { name: "Renamed while away" } })).status).toBe(200);
    await patchOn("cloud", keep.id, { name: "Weekdays", enabled: false });
    await deleteOn("cloud", `/schedules/${drop.id}`);
    const added = await createOn("cloud", { type: "weekly", days: [6, 7], at: "09:00", action: "off", name: "Weekend" });
    // The seed's body: no hub_id, alice owns one hub.
    const made = await onCloud("/devices", { body: { device_id: "cloud-1", name: "Made in the cloud", pairing_code: "cloud-code-123" } });
    expect(made.status).toBe(201);

    hub = await startTestHub({ dataDir, env: { HUB_CLOUD_URL: proxy!.url, ...FAST_SYNC } });
    await hub.owner();
    const schedules = await schedulesConverged(2, (l) => l[0].name === "Weekdays");
    expect(schedules).toEqual([
      { ...keep, name: "Weekdays", enabled: false, next_run: null },
      { ...added, next_run: expect.any(String) },
    ]);
    const devs = await devicesConverged((l) => l.length === 2);
    expect(devs.map((d: Json) => [d.device_id, d.name])).toEqual([
      ["plug-1", "Renamed while away"],
      ["cloud-1", "Made in the cloud"],
    ]);
    expect(devs[1].created_at).toBe((await made.json()).created_at);
    // The plug connects to the hub with the code chosen in the cloud, and shows up online in the cloud.
    await expect(connectNativePlug(hub.mqttUrl, "cloud-1", "wrong-code-999")).rejects.toThrow();
    const plug = await connectNativePlug(hub.mqttUrl, "cloud-1", "cloud-code-123");
    clients.push(plug);
    await plug.publishAsync("smartplug/cloud-1/status", JSON.stringify({ status: "online", relay_state: false, firmware_version: "2.0.0" }), { qos: 1, retain: true });
    await eventually(async () => (await read(onCloud("/devices/cloud-1"))).status, (s) => s === "online", "cloud-1 online in the cloud", CONVERGE_MS);
    // Delivered: the cloud no longer keeps the code's hash, nor owes the hub anything.
    const [row] = await cloud!.cloud.db.orm.select().from(devices).where(and(eq(devices.hubId, hubId), eq(devices.deviceId, "cloud-1")));
    expect(row).toMatchObject({ pairingPending: false, namePending: false, secretHash: null });
  });

  it("conflict convergence: edits on both sides while the link is cut end equal on both, by the documented rule", async () => {
    await setup();
    const spec = (name: string) => ({ type: "weekly", days: [2], at: "20:00", action: "off", name });
    const [s1, s2, s3, s4] = [await createOn("hub", spec("s1")), await createOn("cloud", spec("s2")), await createOn("hub", spec("s3")), await createOn("cloud", spec("s4"))];
    await schedulesConverged(4);

    await cutInternet();
    // Each pair of edits 30 ms apart: the later one has the higher version.
    await patchOn("hub", s1.id, { name: "s1 hub (older)" });
    await sleep(30);
    await patchOn("cloud", s1.id, { name: "s1 cloud (newer)", enabled: false });
    await patchOn("cloud", s2.id, { name: "s2 cloud (older)" });
    await sleep(30);
    await patchOn("hub", s2.id, { name: "s2 hub (newer)" });
    expect((await onCloud("/devices/plug-1", { method: "PATCH", body: { name: "Cloud name (older)" } })).status).toBe(200);
    await sleep(30);
    expect((await onHub("/devices/plug-1", { method: "PATCH", body: { name: "Hub name (newer)" } })).status).toBe(200);
    // A deletion racing an edit: the deletion wins on both sides, even against a later edit.
    await deleteOn("hub", `/schedules/${s3.id}`);
    await sleep(30);
    await patchOn("cloud", s3.id, { name: "s3 edited after the hub deleted it" });
    await deleteOn("cloud", `/schedules/${s4.id}`);
    await sleep(30);
    await patchOn("hub", s4.id, { name: "s4 edited after the cloud deleted it" });
    // Meanwhile each side shows its own edits.
    expect((await read(onHub(`/schedules/${s1.id}`))).name).toBe("s1 hub (older)");
    expect((await read(onCloud(`/schedules/${s1.id}`))).name).toBe("s1 cloud (newer)");

    restoreInternet();
    const schedules = await schedulesConverged(2, (l) => l[0].name === "s1 cloud (newer)" && l[1].name === "s2 hub (newer)");
    expect(schedules).toEqual([
      { ...s1, name: "s1 cloud (newer)", enabled: false, next_run: null },
      { ...s2, name: "s2 hub (newer)", next_run: expect.any(String) },
    ]);
    for (const s of [s3, s4]) expect(await converged(`/schedules/${s.id}`, { until: (v) => v.status === 404 })).toEqual({ status: 404 });
    expect((await devicesConverged((l) => l[0]?.name === "Hub name (newer)")).map((d: Json) => d.name)).toEqual(["Hub name (newer)"]);
    // Settled: nothing owed either way, and the answers stay equal.
    await eventually(async () => hub!.hub.sync.status().outbox.depth, (n) => n === 0, "outbox drained", CONVERGE_MS);
    await sleep(500);
    expect(await converged("/schedules")).toEqual(schedules);
  });

  it("a device deleted in the cloud is removed from the hub (its plug is dropped) and stays deleted, even when the hub renamed it offline", async () => {
    await setup();
    const code = await hub!.pair("doomed-1", { name: "Doomed" });
    const plug = await connectNativePlug(hub!.mqttUrl, "doomed-1", code);
    clients.push(plug);
    const closed = new Promise<void>((r) => plug.once("close", () => r()));
    const sid = (await createOn("hub", { type: "window", from: "07:00", to: "08:00" }, "doomed-1")).id as string;
    await schedulesConverged(1);
    expect((await devicesConverged((l) => l.length === 2)).map((d: Json) => d.device_id)).toEqual(["plug-1", "doomed-1"]);

    await cutInternet();
    await deleteOn("cloud", "/devices/doomed-1");
    await sleep(30);
    // The hub renames it after the cloud deleted it: a rename does not bring a deleted device back.
    expect((await onHub("/devices/doomed-1", { method: "PATCH", body: { name: "Renamed offline" } })).status).toBe(200);
    restoreInternet();

    expect(await converged("/devices/doomed-1", { until: (d) => d.status === 404 })).toEqual({ status: 404 });
    await closed; // the hub dropped the plug's session with its credentials
    await expect(connectNativePlug(hub!.mqttUrl, "doomed-1", code)).rejects.toThrow();
    expect(await converged(`/schedules/${sid}`, { until: (v) => v.status === 404 })).toEqual({ status: 404 });
    expect((await devicesConverged((l) => l.length === 1)).map((d: Json) => d.device_id)).toEqual(["plug-1"]);
    // Stays deleted after the hub has synced everything it had.
    await eventually(async () => hub!.hub.sync.status().outbox.depth, (n) => n === 0, "outbox drained", CONVERGE_MS);
    await sleep(500);
    expect((await onCloud("/devices/doomed-1")).status).toBe(404);

    // A deletion while linked reaches the hub at once; pairing the id again afterwards is a new device.
    await deleteOn("cloud", "/devices/plug-1");
    await eventually(async () => (await onHub("/devices/plug-1")).status, (s) => s === 404, "plug-1 removed from the hub");
    const again = await onCloud("/devices", { body: { device_id: "plug-1", name: "Lamp again", pairing_code: "new-lamp-code" } });
    expect(again.status).toBe(201);
    expect((await devicesConverged((l) => l[0]?.name === "Lamp again")).map((d: Json) => [d.device_id, d.name])).toEqual([["plug-1", "Lamp again"]]);
    clients.push(await connectNativePlug(hub!.mqttUrl, "plug-1", "new-lamp-code"));
  });
});
