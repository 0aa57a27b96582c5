// SNTP (RFC 4330) on the LAN (issue 4 §2): Tasmota and Shelly timers need a time source, and during an
// internet outage the hub is the only one the plugs can reach. The hub answers from its own clock
// (which the Pi keeps with systemd-timesyncd/chrony while online); stratum 3, reference id "HUB".
import { createSocket, type Socket } from "node:dgram";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";

const NTP_EPOCH_OFFSET_S = 2_208_988_800; // 1900-01-01 → 1970-01-01

export function writeNtpTime(buf: Buffer, offset: number, ms: number): void {
  const seconds = Math.floor(ms / 1000) + NTP_EPOCH_OFFSET_S;
  const fraction = Math.floor(((ms % 1000) / 1000) * 2 ** 32);
  buf.writeUInt32BE(seconds >>> 0, offset);
  buf.writeUInt32BE(fraction >>> 0, offset + 4);
}

export function readNtpTime(buf: Buffer, offset: number): number {
  return (buf.readUInt32BE(offset) - NTP_EPOCH_OFFSET_S) * 1000 + Math.round((buf.readUInt32BE(offset + 4) / 2 ** 32) * 1000);
}

/** The answer to one client request, or null for anything that is not a client-mode NTP packet. */
export function sntpReply(req: Buffer, receivedAt: number, now: number): Buffer | null {
  if (req.length < 48) return null;
  const mode = req[0]! & 0x07;
  const version = (req[0]! >> 3) & 0x07;
  if (mode !== 3 || version < 1 || version > 4) return null;
  const res = Buffer.alloc(48);
  res[0] = (0 << 6) | (version << 3) | 4; // LI 0, client's version, mode 4 (server)
  res[1] = 3; // stratum
  res[2] = req[2]!; // poll
  res[3] = 0xec; // precision 2^-20 s
  res.writeUInt32BE(0, 4); // root delay
  res.writeUInt32BE(0x0000_0a00, 8); // root dispersion ~40 ms
  res.write("HUB\0", 12, "latin1"); // reference id
  writeNtpTime(res, 16, now); // reference timestamp
  req.copy(res, 24, 40, 48); // originate = the client's transmit timestamp
  writeNtpTime(res, 32, receivedAt);
  writeNtpTime(res, 40, now);
  return res;
}

export interface SntpServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startSntpServer(opts: { host: string; port: number }, clock: Clock, log: Logger): Promise<SntpServer | null> {
  const socket: Socket = createSocket("udp4");
  socket.on("message", (msg, rinfo) => {
    const reply = sntpReply(msg, clock.now(), clock.now());
    if (reply) socket.send(reply, rinfo.port, rinfo.address);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(opts.port, opts.host, () => resolve());
    });
  } catch (err) {
    // Port 123 needs CAP_NET_BIND_SERVICE (the systemd unit grants it); without it the hub runs on, without SNTP.
    log.warn({ err: (err as Error).message, port: opts.port }, "SNTP server not started");
    socket.close();
    return null;
  }
  socket.on("error", (err) => log.warn({ err: err.message }, "SNTP socket error"));
  const port = socket.address().port;
  log.info({ port }, "SNTP server listening");
  return { port, close: () => new Promise((r) => socket.close(() => r())) };
}
