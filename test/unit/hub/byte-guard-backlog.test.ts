// The in-flight gate behind the byte guard (RELIABILITY fact 7): PUBLISH packets admitted to aedes and
// not yet settled are bounded; beyond the bound they are shed and counted as `backlog`, and each settled
// publish or closed connection gives its places back.
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { guardSocket, PUBLISH_SETTLED, type GuardEvents, type GuardLimits } from "../../../hub/broker/byte-guard.js";
import { InflightGate, TokenBucket } from "../../../hub/broker/rate-limit.js";
import { connectPacket, publishPacket, PINGREQ } from "../../helpers/mqtt-raw.js";

class FakeSocket extends EventEmitter {
  destroyed = false;
  readonly remoteAddress = "192.0.2.8";
  pause() {
    return this;
  }
  resume() {
    return this;
  }
  write(_b: Buffer, cb?: (err?: Error | null) => void) {
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

const LIMITS: GuardLimits = { maxPacketBytes: 20_000, connectTimeoutMs: 10_000, msgRate: 1e6, msgBurst: 1e6, maxShedPerConnection: 1e6 };
const CONNECT = connectPacket({ clientId: "plug-1", username: "plug-1", password: "secret", keepalive: 30 });
const PUB = publishPacket({ topic: "smartplug/plug-1/telemetry", payload: '{"power":60.5}', qos: 1, messageId: 1 });

function guarded(gate: InflightGate) {
  const socket = new FakeSocket();
  const shed: string[] = [];
  const events: GuardEvents = { reject: () => {}, shed: (r) => shed.push(r) };
  const duplex: Duplex = guardSocket(socket as unknown as Socket, LIMITS, new TokenBucket(1e9, 1e9, 0), events, () => 0, gate);
  duplex.on("error", () => {});
  const settle = (duplex as unknown as Record<symbol, () => void>)[PUBLISH_SETTLED]!;
  return { socket, shed, settle, feed: (...b: Buffer[]) => socket.emit("data", Buffer.concat(b)) };
}

describe("in-flight gate", () => {
  it("sheds PUBLISH packets as `backlog` beyond the bound, and admits again as publishes settle", () => {
    const gate = new InflightGate(3);
    const g = guarded(gate);
    g.feed(CONNECT, PUB, PUB, PUB, PUB, PUB, PINGREQ);
    expect(gate.inflight).toBe(3);
    expect(g.shed).toEqual(["backlog", "backlog"]); // non-PUBLISH packets never take a place
    g.settle();
    g.settle();
    expect(gate.inflight).toBe(1);
    g.feed(PUB, PUB, PUB);
    expect(gate.inflight).toBe(3);
    expect(g.shed).toHaveLength(3);
  });

  it("shares the bound between connections, and a closed connection gives back what it held", () => {
    const gate = new InflightGate(4);
    const a = guarded(gate);
    const b = guarded(gate);
    a.feed(CONNECT, PUB, PUB, PUB);
    b.feed(CONNECT, PUB, PUB);
    expect(gate.inflight).toBe(4);
    expect(b.shed).toEqual(["backlog"]);
    a.socket.destroy();
    expect(gate.inflight).toBe(1);
    a.settle(); // a late settle from a closed connection releases nothing twice
    expect(gate.inflight).toBe(1);
    b.settle();
    b.settle();
    expect(gate.inflight).toBe(0);
  });
});
