// A loopback TCP proxy between a plug and the hub, for link faults (RELIABILITY F14). `blackhole()` makes
// the link die silently: bytes in both directions are dropped and neither side is told — no FIN, no RST,
// and a side that closes its end is not passed on either. Connections opened while the link is down are
// accepted (loopback cannot drop a SYN) and never reach the hub.
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

export class TcpProxy {
  private holed = false;
  private readonly sockets = new Set<Socket>();
  /** Bytes dropped while blackholed, per direction. */
  readonly dropped = { toTarget: 0, toClient: 0 };

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    server.on("connection", (client: Socket) => proxy.accept(client, targetPort, targetHost));
    return proxy;
  }

  private track(s: Socket) {
    this.sockets.add(s);
    s.on("close", () => this.sockets.delete(s));
    s.on("error", () => undefined); // resets are routine; "close" follows
  }

  private accept(client: Socket, targetPort: number, targetHost: string) {
    this.track(client);
    client.setNoDelay(true);
    if (this.holed) {
      client.on("data", (d: Buffer) => (this.dropped.toTarget += d.length));
      return;
    }
    const upstream = connect(targetPort, targetHost);
    this.track(upstream);
    upstream.setNoDelay(true);
    const pending: Buffer[] = [];
    let upstreamReady = false;
    upstream.once("connect", () => {
      upstreamReady = true;
      for (const b of pending.splice(0)) upstream.write(b);
    });
    client.on("data", (d: Buffer) => {
      if (this.holed) this.dropped.toTarget += d.length;
      else if (upstreamReady) upstream.write(d);
      else pending.push(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (this.holed) this.dropped.toClient += d.length;
      else client.write(d);
    });
    // While the link works, a close on one side is passed on; once it is dead, nobody hears about it.
    client.on("close", () => {
      if (!this.holed) upstream.destroy();
    });
    upstream.on("close", () => {
      if (!this.holed) client.destroy();
    });
  }

  /** The link dies silently: nothing more is forwarded in either direction; every socket stays open. */
  blackhole(): void {
    this.holed = true;
  }

  /** Every open connection is reset (RST both ways), as when a router reboots: each side sees ECONNRESET. */
  reset(): void {
    for (const s of this.sockets) s.resetAndDestroy();
  }

  get connections(): number {
    return this.sockets.size;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
