// The claim code on the hub's side (issue 6 §4): only the hub's owner sees it and asks for a new one, and a
// cloud that is down or not reached yet answers 503 problem+json rather than a bare 500.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { SERVICE_START_MS, startTestCloud, type TestCloud } from "../helpers/cloud.js";
import { startTestHub, type TestHub } from "../helpers/hub.js";
import { eventually } from "../helpers/mqtt.js";

let influx: TestInflux;
beforeAll(async () => {
  influx = await startInflux();
}, SERVICE_START_MS);
afterAll(async () => {
  await influx?.close();
});

/** A loopback port nothing listens on: the cloud is down. */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A member of the hub (not its owner), signed in. */
async function member(hub: TestHub): Promise<string> {
  const owner = await hub.owner();
  const creds = { email: "member@example.com", password: "member password 1" };
  expect((await hub.api("/auth/register", { body: creds, token: owner })).status).toBe(201);
  return ((await (await hub.api("/auth/login", { body: creds, token: null })).json()) as { access_token: string }).access_token;
}

describe("claim code on the hub (issue 6 §4)", () => {
  let hub: TestHub | undefined;
  let cloud: TestCloud | undefined;
  afterEach(async () => {
    await hub?.close();
    await cloud?.close();
    hub = cloud = undefined;
  });

  it("with the cloud unreachable, a new claim code is a 503 problem naming the reason; members may not ask", async () => {
    hub = await startTestHub({ env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000" } });
    const owner = await hub.owner();
    const res = await hub.api("/cloud/claim-code", { method: "POST", token: owner });
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toEqual({
      type: "https://smartplug.dev/problems/cloud-unavailable",
      title: "Cloud is unavailable",
      status: 503,
      detail: expect.stringMatching(/not registered with the cloud yet/),
      instance: "/cloud/claim-code",
    });
    const byMember = await hub.api("/cloud/claim-code", { method: "POST", token: await member(hub) });
    expect(byMember.status).toBe(403);
  });

  it("only the owner sees the claim code in GET /cloud and gets a new one; the old one stops working", async () => {
    cloud = await startTestCloud({ influxUrl: influx.url });
    hub = await startTestHub({ env: { HUB_CLOUD_URL: cloud.url, HUB_SYNC_INTERVAL_MS: "200", HUB_SYNC_BACKOFF_BASE_MS: "100", HUB_SYNC_BACKOFF_MAX_S: "1" } });
    const owner = await hub.owner();
    const first = await eventually(async () => (await hub!.api("/cloud", { token: owner })).json(), (s) => typeof s.claim_code === "string", "claim code");
    expect(first.claim_expires_at).toEqual(expect.any(String));

    const kid = await member(hub);
    const seen = await (await hub.api("/cloud", { token: kid })).json();
    expect(seen).toEqual({ ...first, claim_code: null, claim_expires_at: null, outbox: expect.any(Object), uplink: expect.any(Object), link: expect.any(Object) });

    const fresh = await hub.api("/cloud/claim-code", { method: "POST", token: owner });
    expect(fresh.status).toBe(200);
    const next = (await fresh.json()) as { claim_code: string; claim_expires_at: string };
    expect(next.claim_code).not.toBe(first.claim_code);
    expect((await (await hub.api("/cloud", { token: owner })).json()).claim_code).toBe(next.claim_code);

    const alice = await cloud.user("alice");
    // The replaced code is no code at all any more (a used or expired one would be 410, A17).
    const stale = await cloud.api("/hubs/claim", { body: { claim_code: first.claim_code }, token: alice.token });
    expect(stale.status).toBe(404);
    expect(stale.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect((await cloud.api("/hubs/claim", { body: { claim_code: next.claim_code }, token: alice.token })).status).toBe(200);
  });
});
