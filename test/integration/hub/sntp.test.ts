import { afterEach, expect, it } from "vitest";
import { createSocket } from "node:dgram";
import { startTestHub, type TestHub } from "../../helpers/hub.js";
import { readNtpTime, writeNtpTime } from "../../../hub/time/sntp-server.js";

let t: TestHub;
afterEach(async () => {
  await t.close();
});

it("serves SNTP on the LAN so plugs keep time during an outage (issue 4 §2)", async () => {
  const hubNow = Date.parse("2026-12-24T18:00:00Z"); // the hub's clock, whatever the test machine says
  t = await startTestHub({ env: { HUB_SNTP_PORT: "0" }, hubOptions: { clock: { now: () => hubNow } } });
  const port = t.hub.sntp!.port;
  const client = createSocket("udp4");
  const req = Buffer.alloc(48);
  req[0] = (0 << 6) | (4 << 3) | 3; // NTPv4 client
  const sentAt = Date.parse("2000-01-01T00:00:00Z");
  writeNtpTime(req, 40, sentAt);
  const reply = await new Promise<Buffer>((resolve, reject) => {
    client.once("message", (m) => resolve(m));
    client.once("error", reject);
    client.send(req, port, "127.0.0.1");
  });
  client.close();
  expect(reply.length).toBe(48);
  expect(reply[0]! & 0x07).toBe(4); // server mode
  expect((reply[0]! >> 3) & 0x07).toBe(4); // our version
  expect(reply[1]).toBe(3); // stratum
  expect(readNtpTime(reply, 24)).toBe(sentAt); // originate echoes the client's transmit time
  expect(readNtpTime(reply, 40)).toBe(hubNow);
  // Not a client request: no answer (and no crash).
  const junk = createSocket("udp4");
  junk.send(Buffer.from("hello"), port, "127.0.0.1");
  await new Promise((r) => setTimeout(r, 100));
  junk.close();
});
