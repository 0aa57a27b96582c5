import { afterEach, expect, it } from "vitest";
import { startTestHub, OWNER, type TestHub } from "../../helpers/hub.js";

let t: TestHub | null = null;
afterEach(async () => {
  await t?.close();
});

it("a signed-in phone stays signed in through 7+ days without internet, and expires when it stops refreshing", async () => {
  let now = Date.now();
  t = await startTestHub({ hubOptions: { clock: { now: () => now } } });
  await t.owner();
  const first = await (await t.api("/auth/login", { body: OWNER, token: null })).json();
  // The hub needs nothing outside the LAN to refresh: 8 days later the token still rotates.
  now += 8 * 86_400_000;
  const r1 = await t.api("/auth/refresh", { body: { refresh_token: first.refresh_token }, token: null });
  expect(r1.status).toBe(200);
  const second = await r1.json();
  expect((await t.api("/users/me", { token: second.access_token })).status).toBe(200);
  // A refresh token left unused for longer than its 30-day lifetime is dead.
  now += 31 * 86_400_000;
  const r2 = await t.api("/auth/refresh", { body: { refresh_token: second.refresh_token }, token: null });
  expect(r2.status).toBe(401);
});
