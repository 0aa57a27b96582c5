// The hub's OpenAPI document (issue 2 §7) against the routes the hub really serves: every method and path the
// express app registers is documented and nothing documented is missing, like the cloud's test
// (test/integration/cloud/operations.test.ts); and the document's /cloud schema matches what /cloud answers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { buildHubApi, type HubApiDeps } from "../../../hub/api/app.js";
import { CloudStatus } from "../../../hub/api/openapi.js";
import { createLogger } from "../../../shared/logger.js";
import { startTestHub, type TestHub } from "../../helpers/hub.js";

/** A loopback port nothing listens on: the hub's cloud is down (the /cloud routes exist all the same). */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("hub OpenAPI document", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ env: { HUB_CLOUD_URL: `http://127.0.0.1:${await deadPort()}`, HUB_SYNC_INTERVAL_MS: "3600000" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("OpenAPI covers every route: each method and path the hub serves is in /openapi.json, and nothing else is", async () => {
    // Routes are registered without touching the services; only the logger is captured while building.
    const app = buildHubApi({ log: createLogger({ app: "openapi-test", level: "silent" }) } as unknown as HubApiDeps);
    const stack = (app as unknown as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } }).router.stack;
    const served = stack
      .filter((l) => l.route)
      .flatMap((l) => Object.keys(l.route!.methods).map((m) => `${m.toUpperCase()} ${l.route!.path.replace(/:(\w+)/g, "{$1}")}`))
      .filter((r) => r !== "GET /openapi.json");
    const doc = await (await t.api("/openapi.json", { token: null })).json();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    expect(served.length).toBeGreaterThan(25);
    expect(served).toContain("GET /cloud");
    expect(served).toContain("POST /cloud/claim-code");
    expect(served.filter((r) => !documented.includes(r))).toEqual([]);
    expect(documented.filter((r) => !served.includes(r))).toEqual([]);
  });

  it("documents /cloud with the shape the hub answers", async () => {
    const token = await t.owner();
    await t.pair("doc-1");
    const body = await (await t.api("/cloud", { token })).json();
    expect(CloudStatus.strict().safeParse(body).error?.issues ?? []).toEqual([]);
    const doc = await (await t.api("/openapi.json", { token: null })).json();
    expect(doc.paths["/cloud"].get.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/CloudStatus" });
    expect(Object.keys(doc.components.schemas.CloudStatus.properties)).toEqual(Object.keys(body));
  });
});
