// Just enough MQTT 3.1.1 on the wire (OASIS mqtt-v3.1.1 §3.1 CONNECT, §3.3 PUBLISH, §3.4 PUBACK) for the
// high-rate load generator: mqtt.js costs tens of microseconds per QoS 1 publish, which on a 2-core
// machine would take CPU from the broker under test at 10k+ msg/s. Packets built here are what any plug
// sends; nothing about them is special to the bench.

export const PACKET = { CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, SUBSCRIBE: 8, SUBACK: 9, PINGREQ: 12, PINGRESP: 13, DISCONNECT: 14 } as const;

export function encodeLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : s;
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

export interface ConnectOptions {
  clientId: string;
  username?: string;
  password?: string;
  keepaliveSec: number;
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
}

export function encodeConnect(o: ConnectOptions): Buffer {
  let flags = 0x02; // clean session
  const parts: Buffer[] = [str(o.clientId)];
  if (o.will) {
    flags |= 0x04 | (o.will.qos << 3) | (o.will.retain ? 0x20 : 0);
    parts.push(str(o.will.topic), str(o.will.payload));
  }
  if (o.username !== undefined) {
    flags |= 0x80;
    parts.push(str(o.username));
  }
  if (o.password !== undefined) {
    flags |= 0x40;
    parts.push(str(o.password));
  }
  const variable = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, flags, (o.keepaliveSec >> 8) & 0xff, o.keepaliveSec & 0xff]);
  const body = Buffer.concat([variable, ...parts]);
  return Buffer.concat([Buffer.from([PACKET.CONNECT << 4, ...encodeLength(body.length)]), body]);
}

/** A QoS 1 PUBLISH (DUP 0, RETAIN 0). `topic` is pre-encoded once per plug. */
export function encodePublishQos1(topic: Buffer, packetId: number, payload: string): Buffer {
  const payloadLen = Buffer.byteLength(payload, "utf8");
  const remaining = 2 + topic.length + 2 + payloadLen;
  const lenBytes = encodeLength(remaining);
  const out = Buffer.allocUnsafe(1 + lenBytes.length + remaining);
  let o = 0;
  out[o++] = (PACKET.PUBLISH << 4) | 0x02;
  for (const b of lenBytes) out[o++] = b;
  out.writeUInt16BE(topic.length, o);
  o += 2;
  o += topic.copy(out, o);
  out.writeUInt16BE(packetId, o);
  o += 2;
  out.write(payload, o, "utf8");
  return out;
}

export const PINGREQ = Buffer.from([PACKET.PINGREQ << 4, 0]);
export const DISCONNECT = Buffer.from([PACKET.DISCONNECT << 4, 0]);

/** One decoded inbound packet: its type, flags nibble and body (variable header + payload). */
export interface RawPacket {
  type: number;
  flags: number;
  body: Buffer;
}

/** Splits a byte stream into MQTT packets, holding partial packets across chunks. */
export class PacketReader {
  private pending: Buffer | null = null;

  push(chunk: Buffer, onPacket: (type: number, flags: number, buf: Buffer, start: number, end: number) => void): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let i = 0;
    while (i < buf.length) {
      if (buf.length - i < 2) break;
      let len = 0;
      let mult = 1;
      let j = i + 1;
      let complete = false;
      for (; j < buf.length && j < i + 5; j++) {
        const b = buf[j]!;
        len += (b & 0x7f) * mult;
        mult *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          j++;
          break;
        }
      }
      if (!complete) break;
      if (j + len > buf.length) break;
      onPacket(buf[i]! >> 4, buf[i]! & 0x0f, buf, j, j + len);
      i = j + len;
    }
    if (i < buf.length) this.pending = Buffer.from(buf.subarray(i));
  }
}
