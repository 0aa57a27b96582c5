// The byte guard in front of aedes (RELIABILITY fact 3, rows A6, A8, A9; fact 7: shed load before aedes).
// It frames MQTT packets from the raw socket without decoding them: the first packet must be CONNECT,
// no packet may declare more than `maxPacketBytes`, CONNECT must arrive within `connectTimeoutMs`, and
// PUBLISH packets beyond the connection's rate or the hub's global budget are shed (not forwarded, counted).
import { Duplex } from "node:stream";
import type { Socket } from "node:net";
import { TokenBucket, type InflightGate } from "./rate-limit.js";

export interface GuardLimits {
  maxPacketBytes: number;
  connectTimeoutMs: number;
  /** Sustained PUBLISH packets per second per connection, and the burst allowed above it. */
  msgRate: number;
  msgBurst: number;
  /** Shed packets on one connection after which it is disconnected (A9: rate-limited, then disconnected). */
  maxShedPerConnection: number;
}

export interface GuardEvents {
  reject(reason: "first_packet_not_connect" | "packet_too_large" | "connect_timeout" | "rate_limit_disconnect" | "malformed_header"): void;
  shed(reason: "connection_rate" | "global_budget" | "backlog"): void;
}

/**
 * On the duplex handed to aedes: call once when aedes has finished with one forwarded PUBLISH (the broker
 * calls it from authorizePublish's callback), releasing its place in the in-flight gate.
 */
export const PUBLISH_SETTLED = Symbol("publishSettled");

const CONNECT = 1;
const PUBLISH = 3;

/**
 * Wraps a socket in a Duplex that aedes reads from. Bytes of accepted packets pass through untouched
 * (a slice of the incoming chunk, no copy); shed packets are skipped.
 */
export function guardSocket(socket: Socket, limits: GuardLimits, globalBudget: TokenBucket, events: GuardEvents, now: () => number, gate?: InflightGate): Duplex {
  const bucket = new TokenBucket(limits.msgRate, limits.msgBurst, now());
  let sawConnect = false;
  let header: number[] = []; // bytes of a fixed header split across chunks
  let remaining = 0; // bytes of the current packet's body still to come
  let forwarding = true; // whether the current packet's bytes go to aedes
  let shedCount = 0;
  let dead = false;
  let owed = 0; // PUBLISH packets this connection forwarded that hold a place in the gate

  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (socket.destroyed) return cb();
      socket.write(chunk, (err) => cb(err ?? undefined));
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  (duplex as unknown as { remoteAddress?: string }).remoteAddress = socket.remoteAddress;
  (duplex as unknown as Record<symbol, () => void>)[PUBLISH_SETTLED] = () => {
    if (owed > 0) {
      owed--;
      gate?.leave();
    }
  };
  const releaseAll = () => {
    gate?.leave(owed);
    owed = 0;
  };

  const connectTimer = setTimeout(() => kill("connect_timeout"), limits.connectTimeoutMs);
  connectTimer.unref();

  function kill(reason: Parameters<GuardEvents["reject"]>[0]) {
    if (dead) return;
    dead = true;
    clearTimeout(connectTimer);
    events.reject(reason);
    socket.destroy();
    duplex.destroy();
  }

  socket.on("data", (chunk: Buffer) => {
    if (dead) return;
    const out: Buffer[] = [];
    let passStart = -1; // start of the run of bytes in this chunk being forwarded
    let headerStart = header.length > 0 ? 0 : -1; // where the pending fixed header began in this chunk
    const flushPass = (end: number) => {
      if (passStart >= 0 && end > passStart) out.push(chunk.subarray(passStart, end));
      passStart = -1;
    };
    let i = 0;
    while (i < chunk.length) {
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.length - i);
        if (forwarding && passStart < 0) passStart = i;
        i += take;
        remaining -= take;
        continue;
      }
      // A fixed header: the type byte, then 1..4 bytes of remaining length.
      if (header.length === 0) headerStart = i;
      header.push(chunk[i]!);
      i++;
      if (header.length === 1) continue;
      if (header[header.length - 1]! & 0x80) {
        if (header.length === 5) return kill("malformed_header");
        continue;
      }
      let len = 0;
      for (let k = header.length - 1; k >= 1; k--) len = len * 128 + (header[k]! & 0x7f);
      const type = header[0]! >> 4;
      const carried = header.length - (i - headerStart); // header bytes that arrived in earlier chunks
      const carriedBytes = carried > 0 ? Buffer.from(header.slice(0, carried)) : null;
      header = [];
      if (!sawConnect) {
        if (type !== CONNECT) return kill("first_packet_not_connect");
        sawConnect = true;
        clearTimeout(connectTimer);
      }
      if (len > limits.maxPacketBytes) return kill("packet_too_large");
      let accept = true;
      if (type === PUBLISH) {
        const t = now();
        if (!bucket.take(t)) {
          accept = false;
          events.shed("connection_rate");
          if (++shedCount > limits.maxShedPerConnection) return kill("rate_limit_disconnect");
        } else if (!globalBudget.take(t)) {
          accept = false;
          events.shed("global_budget");
        } else if (gate) {
          if (gate.tryEnter()) owed++;
          else {
            accept = false;
            events.shed("backlog");
          }
        }
      }
      forwarding = accept;
      remaining = len;
      if (accept) {
        if (carriedBytes) {
          flushPass(headerStart);
          out.push(carriedBytes);
        }
        if (passStart < 0) passStart = headerStart;
      } else {
        flushPass(headerStart);
      }
      headerStart = -1;
    }
    // A header still pending at the end of the chunk is held back until its length is known.
    flushPass(header.length > 0 ? headerStart : chunk.length);
    for (const b of out) {
      if (!duplex.push(b)) socket.pause();
    }
  });
  socket.on("end", () => duplex.push(null));
  socket.on("close", () => {
    clearTimeout(connectTimer);
    releaseAll(); // what aedes had not processed is gone with the connection (unacked: the plug resends)
    duplex.destroy();
  });
  socket.on("error", () => {
    /* the close handler tears down; errors are routine (resets) */
  });
  return duplex;
}
