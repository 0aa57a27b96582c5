// Hand-built MQTT 3.1.1 packets and a raw TCP client, for tests that must send bytes a real client
// library refuses to produce (wildcards in a PUBLISH topic, NUL in a client id, lying length headers).
import { connect, type Socket } from "node:net";

/** MQTT's variable-length "remaining length" encoding (1–4 bytes). */
export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** A length-prefixed MQTT string (raw bytes allowed, so tests can put NUL or invalid UTF-8 in it). */
export function mqttString(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : s;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

/** A whole packet: the first byte (type << 4 | flags), the remaining length, the body. */
export function packet(firstByte: number, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);
}

export interface ConnectOptions {
  clientId: string | Buffer;
  username?: string | Buffer;
  password?: string | Buffer;
  keepalive?: number;
  clean?: boolean;
  will?: { topic: string; payload: string; qos?: 0 | 1; retain?: boolean };
}

export function connectPacket(o: ConnectOptions): Buffer {
  let flags = o.clean === false ? 0 : 0x02;
  if (o.will) flags |= 0x04 | ((o.will.qos ?? 0) << 3) | (o.will.retain ? 0x20 : 0);
  if (o.password !== undefined) flags |= 0x40;
  if (o.username !== undefined) flags |= 0x80;
  const parts = [mqttString("MQTT"), Buffer.from([4, flags]), u16(o.keepalive ?? 30), mqttString(o.clientId)];
  if (o.will) parts.push(mqttString(o.will.topic), mqttString(o.will.payload));
  if (o.username !== undefined) parts.push(mqttString(o.username));
  if (o.password !== undefined) parts.push(mqttString(o.password));
  return packet(0x10, Buffer.concat(parts));
}

export function publishPacket(o: { topic: string | Buffer; payload: string | Buffer; qos?: 0 | 1 | 2; messageId?: number; dup?: boolean; retain?: boolean }): Buffer {
  const qos = o.qos ?? 0;
  const first = 0x30 | (o.dup ? 0x08 : 0) | (qos << 1) | (o.retain ? 1 : 0);
  const parts = [mqttString(o.topic)];
  if (qos > 0) parts.push(u16(o.messageId ?? 1));
  parts.push(typeof o.payload === "string" ? Buffer.from(o.payload) : o.payload);
  return packet(first, Buffer.concat(parts));
}

export function subscribePacket(messageId: number, filters: [string, 0 | 1 | 2][]): Buffer {
  return packet(0x82, Buffer.concat([u16(messageId), ...filters.map(([f, q]) => Buffer.concat([mqttString(f), Buffer.from([q])]))]));
}

export const pubrelPacket = (messageId: number) => packet(0x62, u16(messageId));
export const pubackPacket = (messageId: number) => packet(0x40, u16(messageId));
export const PINGREQ = Buffer.from([0xc0, 0x00]);
export const DISCONNECT = Buffer.from([0xe0, 0x00]);

export const TYPE = { CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7, SUBSCRIBE: 8, SUBACK: 9, PINGRESP: 13 } as const;

export interface InPacket {
  type: number;
  flags: number;
  body: Buffer;
}

/** Splits a byte stream into whole packets; what is left is an incomplete packet. */
export function splitPackets(buf: Buffer): { packets: InPacket[]; rest: Buffer } {
  const packets: InPacket[] = [];
  let pos = 0;
  for (;;) {
    if (buf.length - pos < 2) break;
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let complete = false;
    for (; i < buf.length && i < pos + 5; i++) {
      len += (buf[i]! & 0x7f) * mul;
      mul *= 128;
      if (!(buf[i]! & 0x80)) {
        complete = true;
        i++;
        break;
      }
    }
    if (!complete || buf.length < i + len) break;
    packets.push({ type: buf[pos]! >> 4, flags: buf[pos]! & 0x0f, body: buf.subarray(i, i + len) });
    pos = i + len;
  }
  return { packets, rest: buf.subarray(pos) };
}

/** A TCP client that sends whatever bytes it is given and collects what the broker answers. */
export class RawMqtt {
  /** When the socket closed (Date.now()), or null while open. */
  closedAt: number | null = null;
  readonly closed: Promise<number>;
  private pending = Buffer.alloc(0);
  private readonly inbox: InPacket[] = [];
  private wake: (() => void) | null = null;

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.closedAt = Date.now();
        this.wake?.();
        resolve(this.closedAt);
      });
    });
    socket.on("error", () => {
      /* resets are what a refused connection looks like; 'close' follows */
    });
    socket.on("data", (chunk: Buffer) => {
      const { packets, rest } = splitPackets(Buffer.concat([this.pending, chunk]));
      this.pending = Buffer.from(rest);
      this.inbox.push(...packets);
      if (packets.length) this.wake?.();
    });
  }

  static open(port: number, host = "127.0.0.1"): Promise<RawMqtt> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host });
      s.setNoDelay(true);
      s.once("connect", () => resolve(new RawMqtt(s)));
      s.once("error", reject);
    });
  }

  get isOpen(): boolean {
    return this.closedAt === null;
  }

  send(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** The next packet from the broker; rejects if the socket closes or nothing comes within `ms`. */
  async next(ms = 3000): Promise<InPacket> {
    const end = Date.now() + ms;
    for (;;) {
      const p = this.inbox.shift();
      if (p) return p;
      if (this.closedAt !== null) throw new Error("socket closed before the expected packet");
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no packet within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Packets received so far and not yet taken with next(). */
  drain(): InPacket[] {
    return this.inbox.splice(0);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens a socket, sends CONNECT and returns the CONNACK return code with the open client. */
export async function rawConnect(port: number, o: ConnectOptions): Promise<{ client: RawMqtt; returnCode: number }> {
  const client = await RawMqtt.open(port);
  client.send(connectPacket(o));
  const p = await client.next();
  if (p.type !== TYPE.CONNACK) throw new Error(`expected CONNACK, got packet type ${p.type}`);
  return { client, returnCode: p.body[1]! };
}
