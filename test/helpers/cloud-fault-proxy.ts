// An HTTP proxy on loopback between the hub and the real cloud, for the sync fault rows (RELIABILITY F2–F8).
// Requests are forwarded to the cloud unless a fault is set for `POST /hub/sync`:
//   down      — the socket is destroyed at once (connection reset: the cloud is unreachable)
//   hang      — the request is read and never answered (F4)
//   status    — answered with `status` (and `retryAfter`) without reaching the cloud, `times` times (F5, F6)
//   drop-after-commit — forwarded, the cloud commits and answers, and the answer is thrown away (F8)
//   hook      — `onSync(req)` decides per request (F2: kill the hub before/after forwarding; F7: a WAF that
//               answers `{ status }` itself for batches it dislikes)
// WebSocket upgrades (the link) are piped to the cloud untouched unless `linkDown` is set.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

export type SyncFault =
  | { kind: "none" }
  | { kind: "down" }
  | { kind: "hang" }
  | { kind: "status"; status: number; times: number; retryAfter?: string }
  | { kind: "drop-after-commit"; times: number }
  | { kind: "hook"; onSync: (body: Buffer) => Promise<"forward" | "drop" | "forward-then-drop" | { status: number }> };

export interface SyncRequestLog {
  at: number;
  /** Other /hub/sync requests open at the proxy when this one arrived. */
  concurrent: number;
  outcome: string;
}

export class CloudFaultProxy {
  fault: SyncFault = { kind: "none" };
  linkDown = false;
  readonly syncRequests: SyncRequestLog[] = [];
  private open = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: () => number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(targetPort: () => number, port = 0): Promise<CloudFaultProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    const p = new CloudFaultProxy(server, (server.address() as AddressInfo).port, targetPort);
    server.on("connection", (s: Socket) => {
      p.sockets.add(s);
      s.on("close", () => p.sockets.delete(s));
    });
    server.on("request", (req, res) => void p.handle(req, res));
    server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => p.upgrade(req, socket, head));
    return p;
  }

  /** Drops every open connection (links included), as a cloud restart would. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const isSync = req.method === "POST" && req.url === "/hub/sync";
    if (!isSync) return this.forward(req, body, res, false);
    const log: SyncRequestLog = { at: Date.now(), concurrent: this.open, outcome: "forwarded" };
    this.syncRequests.push(log);
    this.open++;
    res.on("close", () => this.open--);
    const f = this.fault;
    if (f.kind === "down") {
      log.outcome = "reset";
      return req.socket.destroy();
    }
    if (f.kind === "hang") {
      log.outcome = "hung";
      return; // never answered; the hub's timeout must end it
    }
    if (f.kind === "status" && f.times > 0) {
      f.times--;
      log.outcome = `status ${f.status}`;
      res.writeHead(f.status, { "content-type": "application/problem+json", ...(f.retryAfter ? { "retry-after": f.retryAfter } : {}) });
      return res.end(JSON.stringify({ type: "about:blank", title: "injected", status: f.status }));
    }
    if (f.kind === "drop-after-commit" && f.times > 0) {
      f.times--;
      log.outcome = "committed, answer dropped";
      return this.forward(req, body, res, true);
    }
    if (f.kind === "hook") {
      const what = await f.onSync(body);
      if (typeof what === "object") {
        log.outcome = `status ${what.status}`;
        res.writeHead(what.status, { "content-type": "text/html" });
        return res.end(`<html><body><h1>${what.status}</h1>Request blocked.</body></html>`);
      }
      log.outcome = what;
      if (what === "drop") return req.socket.destroy();
      return this.forward(req, body, res, what === "forward-then-drop");
    }
    return this.forward(req, body, res, false);
  }

  private forward(req: IncomingMessage, body: Buffer, res: ServerResponse, dropAnswer: boolean) {
    const headers = { ...req.headers, "content-length": String(body.length) };
    const up = httpRequest({ host: "127.0.0.1", port: this.target(), method: req.method, path: req.url, headers }, (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on("data", (c: Buffer) => chunks.push(c));
      upRes.on("end", () => {
        if (dropAnswer) return req.socket.destroy();
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        res.end(Buffer.concat(chunks));
      });
    });
    up.on("error", () => req.socket.destroy());
    up.end(body);
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer) {
    if (this.linkDown) return socket.destroy();
    const up = connect(this.target(), "127.0.0.1");
    up.setNoDelay(true);
    socket.setNoDelay(true);
    this.sockets.add(up);
    up.on("close", () => this.sockets.delete(up));
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
    up.once("connect", () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join("\r\n") + "\r\n\r\n");
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    socket.on("close", () => up.destroy());
    up.on("close", () => socket.destroy());
  }
}
