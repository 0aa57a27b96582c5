// The byte guard frames MQTT packets from raw socket chunks without decoding them (RELIABILITY fact 3,
// rows A6–A9). These tests feed it exact chunkings through a fake socket — every split point, single
// bytes, seeded random cuts — and check what reaches aedes byte for byte; one test uses real sockets.
import { EventEmitter, once } from "node:events";
import { createServer, connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { guardSocket, type GuardEvents, type GuardLimits } from "../../../hub/broker/byte-guard.js";
import { TokenBucket } from "../../../hub/broker/rate-limit.js";
import { connectPacket, packet, publishPacket, pubackPacket, subscribePacket, PINGREQ, DISCONNECT } from "../../helpers/mqtt-raw.js";

/** The parts of net.Socket the guard uses; 'data' is emitted by the test with exactly the chunks it wants. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  paused = false;
  readonly remoteAddress = "192.0.2.7";
  readonly written: Buffer[] = [];
  pause() {
    this.paused = true;
    return this;
  }
  resume() {
    this.paused = false;
    return this;
  }
  write(b: Buffer, cb?: (err?: Error | null) => void) {
    this.written.push(b);
    cb?.(null);
    return true;
  }
  end(cb?: () => void) {
    cb?.();
    return this;
  }
  destroy() {
    if (!this.destroyed) {
      this.destroyed = true;
      this.emit("close");
    }
    return this;
  }
}

const LIMITS: GuardLimits = { maxPacketBytes: 20_000, connectTimeoutMs: 10_000, msgRate: 1000, msgBurst: 1000, maxShedPerConnection: 1000 };

interface Guarded {
  socket: FakeSocket;
  duplex: Duplex;
  rejected: string[];
  shed: string[];
  feed(chunks: Buffer[]): void;
  /** Everything the guard has forwarded so far (synchronous: the duplex is read in paused mode). */
  forwarded(): Buffer;
  clock: { now: number };
}

function guard(limits: Partial<GuardLimits> = {}, globalBudget?: TokenBucket): Guarded {
  const socket = new FakeSocket();
  const rejected: string[] = [];
  const shed: string[] = [];
  const clock = { now: 1_000_000 };
  const events: GuardEvents = { reject: (r) => rejected.push(r), shed: (r) => shed.push(r) };
  const duplex = guardSocket(socket as unknown as Socket, { ...LIMITS, ...limits }, globalBudget ?? new TokenBucket(1e9, 1e9, clock.now), events, () => clock.now);
  duplex.on("error", () => {});
  const got: Buffer[] = [];
  return {
    socket,
    duplex,
    rejected,
    shed,
    clock,
    feed(chunks) {
      for (const c of chunks) socket.emit("data", c);
    },
    forwarded() {
      for (let b: Buffer | null; (b = duplex.read() as Buffer | null) !== null; ) got.push(b);
      return Buffer.concat(got);
    },
  };
}

/** Cuts `bytes` at the given offsets. */
function cut(bytes: Buffer, at: number[]): Buffer[] {
  const points = [0, ...at, bytes.length];
  return points.slice(1).map((end, k) => bytes.subarray(points[k], end));
}

/** mulberry32: a small seeded PRNG, so a failing chunking can be replayed from the printed seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = Number(process.env.GUARD_SEED ?? 20260115);

function randomCuts(len: number, next: () => number): number[] {
  const at = new Set<number>();
  const n = 1 + Math.floor(next() * 40);
  for (let k = 0; k < n; k++) at.add(1 + Math.floor(next() * (len - 1)));
  return [...at].sort((x, y) => x - y);
}

// A session's worth of packets with every fixed-header shape: 1-, 2- and 3-byte remaining lengths,
// zero-length packets (PINGREQ, DISCONNECT), QoS 0/1/2 PUBLISH, and non-PUBLISH control packets.
const CONNECT = connectPacket({ clientId: "plug-1", username: "plug-1", password: "secret", keepalive: 30, will: { topic: "smartplug/plug-1/status", payload: '{"status":"offline"}', qos: 1, retain: true } });
const SMALL_PUB = publishPacket({ topic: "smartplug/plug-1/telemetry", payload: '{"power":60.5}' });
const MID_PUB = publishPacket({ topic: "smartplug/plug-1/telemetry", payload: "m".repeat(300), qos: 1, messageId: 2 });
const BIG_PUB = publishPacket({ topic: "smartplug/plug-1/telemetry", payload: "b".repeat(16_500), qos: 2, messageId: 3 });
const SUB = subscribePacket(4, [["smartplug/plug-1/control", 1]]);
const ACK = pubackPacket(9);
const SESSION = [CONNECT, SMALL_PUB, PINGREQ, MID_PUB, SUB, ACK, SMALL_PUB, PINGREQ, PINGREQ, BIG_PUB, SMALL_PUB, DISCONNECT];

describe("guardSocket framing", () => {
  it("builds the fixed headers this suite relies on (1-, 2- and 3-byte remaining lengths)", () => {
    expect(SMALL_PUB[1]! & 0x80).toBe(0);
    expect(MID_PUB.subarray(1, 3).map((b) => b & 0x80)).toEqual(Buffer.from([0x80, 0]));
    expect(BIG_PUB.subarray(1, 4).map((b) => b & 0x80)).toEqual(Buffer.from([0x80, 0x80, 0]));
  });

  it("forwards a session byte-identical whether it arrives whole, split at any single byte boundary, or byte by byte", () => {
    const bytes = Buffer.concat(SESSION);
    const whole = guard();
    whole.feed([bytes]);
    expect(whole.forwarded().equals(bytes)).toBe(true);

    // Every boundary of the stream, including inside each fixed header and its length bytes.
    for (let at = 1; at < bytes.length; at++) {
      const g = guard();
      g.feed(cut(bytes, [at]));
      const out = g.forwarded();
      if (!out.equals(bytes)) expect.fail(`split at byte ${at}: forwarded ${out.length} of ${bytes.length} bytes, or different ones`);
      expect(g.rejected).toEqual([]);
      g.socket.destroy();
    }

    const bytewise = guard();
    bytewise.feed(cut(bytes, Array.from({ length: bytes.length - 1 }, (_, k) => k + 1)));
    expect(bytewise.forwarded().equals(bytes)).toBe(true);
  });

  it(`forwards byte-identical under seeded random chunkings (seed ${SEED}, GUARD_SEED to replay)`, () => {
    const bytes = Buffer.concat(SESSION);
    const next = rng(SEED);
    for (let run = 0; run < 300; run++) {
      const at = randomCuts(bytes.length, next);
      const g = guard();
      g.feed(cut(bytes, at));
      if (!g.forwarded().equals(bytes)) expect.fail(`seed ${SEED} run ${run}: cuts at ${at.join(",")} changed the stream`);
      g.socket.destroy();
    }
  });

  it("passes answers from aedes back to the socket untouched", () => {
    const g = guard();
    g.duplex.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    expect(g.socket.written).toEqual([Buffer.from([0x20, 0x02, 0x00, 0x00])]);
  });

  it("pauses the socket when aedes is not reading, and resumes it when aedes reads", () => {
    const g = guard();
    g.feed([CONNECT, BIG_PUB, BIG_PUB]); // beyond the duplex's 16 KiB high-water mark
    expect(g.socket.paused).toBe(true);
    g.forwarded();
    expect(g.socket.paused).toBe(false);
  });
});

describe("guardSocket shedding", () => {
  // Two PUBLISH tokens and a clock that never moves: the third and later PUBLISH packets are shed.
  const stream = [CONNECT, SMALL_PUB, PINGREQ, MID_PUB, SMALL_PUB, SUB, BIG_PUB, ACK, MID_PUB, PINGREQ];
  const expected = Buffer.concat([CONNECT, SMALL_PUB, PINGREQ, MID_PUB, SUB, ACK, PINGREQ]);
  const shedLimits = { msgRate: 1, msgBurst: 2 };

  it("skips exactly the shed PUBLISH packets while the packets around them pass, at every split point", () => {
    const bytes = Buffer.concat(stream);
    const whole = guard(shedLimits);
    whole.feed([bytes]);
    expect(whole.forwarded().equals(expected)).toBe(true);
    expect(whole.shed).toEqual(["connection_rate", "connection_rate", "connection_rate"]);

    for (let at = 1; at < bytes.length; at++) {
      const g = guard(shedLimits);
      g.feed(cut(bytes, [at]));
      if (!g.forwarded().equals(expected)) expect.fail(`split at byte ${at}: shed the wrong bytes`);
      expect(g.shed.length).toBe(3);
      g.socket.destroy();
    }
    const next = rng(SEED + 1);
    for (let run = 0; run < 300; run++) {
      const at = randomCuts(bytes.length, next);
      const g = guard(shedLimits);
      g.feed(cut(bytes, at));
      if (!g.forwarded().equals(expected)) expect.fail(`seed ${SEED + 1} run ${run}: cuts at ${at.join(",")} shed the wrong bytes`);
      g.socket.destroy();
    }
    const bytewise = guard(shedLimits);
    bytewise.feed(cut(bytes, Array.from({ length: bytes.length - 1 }, (_, k) => k + 1)));
    expect(bytewise.forwarded().equals(expected)).toBe(true);
  });

  it("lets PUBLISH through again once the bucket refills", () => {
    const g = guard(shedLimits);
    g.feed([CONNECT, SMALL_PUB, SMALL_PUB, SMALL_PUB]);
    g.clock.now += 1000; // one token at 1 msg/s
    g.feed([MID_PUB, MID_PUB]);
    expect(g.forwarded().equals(Buffer.concat([CONNECT, SMALL_PUB, SMALL_PUB, MID_PUB]))).toBe(true);
    expect(g.shed).toEqual(["connection_rate", "connection_rate"]);
  });

  it("disconnects a connection once its shed allowance is used up", () => {
    const g = guard({ msgRate: 1, msgBurst: 1, maxShedPerConnection: 3 });
    g.feed([CONNECT, SMALL_PUB, SMALL_PUB, SMALL_PUB, SMALL_PUB]);
    expect(g.shed.length).toBe(3);
    expect(g.socket.destroyed).toBe(false);
    g.feed([Buffer.concat([PINGREQ, SMALL_PUB, PINGREQ])]);
    expect(g.shed.length).toBe(4);
    expect(g.rejected).toEqual(["rate_limit_disconnect"]);
    expect(g.socket.destroyed).toBe(true);
    expect(g.duplex.destroyed).toBe(true);
    g.feed([SMALL_PUB]); // late bytes after the kill are ignored
    expect(g.shed.length).toBe(4);
  });

  it("sheds against the hub-wide budget shared by all connections", () => {
    const global = new TokenBucket(1, 1, 1_000_000);
    const a = guard({}, global);
    const b = guard({}, global);
    a.feed([CONNECT, SMALL_PUB]);
    b.feed([CONNECT, SMALL_PUB, PINGREQ]);
    expect(a.forwarded().equals(Buffer.concat([CONNECT, SMALL_PUB]))).toBe(true);
    expect(b.forwarded().equals(Buffer.concat([CONNECT, PINGREQ]))).toBe(true);
    expect(b.shed).toEqual(["global_budget"]);
    expect(b.socket.destroyed).toBe(false); // the global budget sheds, it does not disconnect
  });
});

describe("guardSocket rejections", () => {
  it.each([
    ["PUBLISH", SMALL_PUB],
    ["PINGREQ", PINGREQ],
    ["SUBSCRIBE", SUB],
    ["PUBACK", ACK],
    ["an HTTP request", Buffer.from("GET / HTTP/1.1\r\n\r\n")],
    ["DISCONNECT", DISCONNECT],
    ["a CONNACK", Buffer.from([0x20, 0x02, 0x00, 0x00])],
    ["reserved type 0", Buffer.from([0x00, 0x00])],
  ])("rejects %s as the first packet without forwarding a byte", (_what, first) => {
    for (const chunks of [[first], cut(first, [1]), cut(first, [1, 2])]) {
      const g = guard();
      g.feed(chunks);
      expect(g.rejected).toEqual(["first_packet_not_connect"]);
      expect(g.forwarded().length).toBe(0);
      expect(g.socket.destroyed).toBe(true);
    }
  });

  it("rejects a packet declaring more than the limit as soon as its header is read, without waiting for the body", () => {
    const g = guard();
    g.feed([Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])]); // CONNECT declaring 256 MiB
    expect(g.rejected).toEqual(["packet_too_large"]);
    expect(g.socket.destroyed).toBe(true);

    const over = guard({ maxPacketBytes: 100 });
    over.feed([packet(0x10, Buffer.alloc(101))]);
    expect(over.rejected).toEqual(["packet_too_large"]);

    const after = guard({ maxPacketBytes: 100 });
    after.feed([CONNECT]);
    after.feed([publishPacket({ topic: "t", payload: Buffer.alloc(100) })]);
    expect(after.rejected).toEqual(["packet_too_large"]);
    expect(after.forwarded().equals(CONNECT)).toBe(true); // what came before passed; nothing after

    const atLimit = guard({ maxPacketBytes: 100 });
    const exact = Buffer.concat([CONNECT.subarray(0, 1), Buffer.from([100]), CONNECT.subarray(2), Buffer.alloc(100 - (CONNECT.length - 2))]);
    atLimit.feed([exact]);
    expect(atLimit.rejected).toEqual([]);
    expect(atLimit.forwarded().equals(exact)).toBe(true);
  });

  it("rejects a remaining length with more than four bytes", () => {
    for (const chunks of [[Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])], cut(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), [1, 2, 3, 4, 5])]) {
      const g = guard();
      g.feed(chunks);
      expect(g.rejected).toEqual(["malformed_header"]);
      expect(g.socket.destroyed).toBe(true);
    }
  });

  it("closes a connection whose CONNECT does not start within the connect timeout; a CONNECT stops the clock", async () => {
    const silent = guard({ connectTimeoutMs: 30 });
    const talker = guard({ connectTimeoutMs: 30 });
    talker.feed([CONNECT]);
    await new Promise((r) => setTimeout(r, 80));
    expect(silent.rejected).toEqual(["connect_timeout"]);
    expect(silent.socket.destroyed).toBe(true);
    expect(talker.rejected).toEqual([]);
    expect(talker.socket.destroyed).toBe(false);
    talker.socket.destroy();
  });
});

describe("guardSocket over a real TCP connection", () => {
  it("forwards a session written in many small writes byte-identical", async () => {
    const bytes = Buffer.concat(SESSION);
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const accepted = once(server, "connection") as Promise<[Socket]>;
    const client = connect({ port, host: "127.0.0.1" });
    client.setNoDelay(true);
    const [socket] = await accepted;
    const rejected: string[] = [];
    const duplex = guardSocket(socket, LIMITS, new TokenBucket(1e9, 1e9, Date.now()), { reject: (r) => rejected.push(r), shed: () => {} }, Date.now);
    const got: Buffer[] = [];
    let n = 0;
    const all = new Promise<void>((resolve) =>
      duplex.on("data", (b: Buffer) => {
        got.push(b);
        if ((n += b.length) >= bytes.length) resolve();
      }),
    );
    const next = rng(SEED + 2);
    for (const piece of cut(bytes, randomCuts(bytes.length, next))) {
      client.write(piece);
      await new Promise((r) => setImmediate(r));
    }
    await all;
    expect(Buffer.concat(got).equals(bytes)).toBe(true);
    expect(rejected).toEqual([]);
    client.destroy();
    socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
