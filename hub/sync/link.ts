// The link (issue 6 §3): one hub-initiated WebSocket to the cloud (works behind NAT), authenticated with the
// hub credential, kept alive with pings, reconnected with capped full-jitter backoff. Down come commands,
// config edits and the access list; up go command results and the latest state of each device (throttled).
import WebSocket from "ws";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import { LinkDown, type LinkUp, type LinkDown as LinkDownFrame } from "../../shared/schemas/sync.js";
import { fullJitter, type UplinkCredential } from "./uplink.js";

export interface LinkOptions {
  pingMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface LinkStatus {
  state: "connected" | "connecting" | "disconnected" | "disabled";
  connected_since: number | null;
  last_error: string | null;
  reconnects: number;
  frames_in: number;
  frames_bad: number;
}

export class CloudLink {
  private ws: WebSocket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ping: NodeJS.Timeout | null = null;
  private attempt = 0;
  private closed = false;
  private alive = false;
  readonly status: LinkStatus = { state: "disconnected", connected_since: null, last_error: null, reconnects: 0, frames_in: 0, frames_bad: 0 };

  constructor(
    private readonly credential: () => UplinkCredential | null,
    private readonly handlers: {
      onFrame: (f: LinkDownFrame) => void;
      onBadFrame: (raw: string, reason: string) => void;
      onOpen: () => void;
      /** The cloud no longer takes this hub: its link closed with 4003 "hub removed", or 401/403 at the upgrade. */
      onRefused?: (reason: string) => void;
    },
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: LinkOptions,
  ) {}

  start(): void {
    this.connect();
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(frame: LinkUp): boolean {
    if (!this.connected) return false;
    this.ws!.send(JSON.stringify(frame));
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.ping) clearInterval(this.ping);
    this.ws?.terminate();
    this.status.state = "disconnected";
  }

  private retry(reason: string) {
    if (this.closed) return;
    this.status.last_error = reason;
    this.status.state = "disconnected";
    this.status.connected_since = null;
    const wait = Math.max(200, fullJitter(++this.attempt, this.opts.backoffBaseMs, this.opts.backoffMaxMs));
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
    this.timer.unref();
  }

  private connect() {
    if (this.closed) return;
    const cred = this.credential();
    if (!cred) {
      this.status.state = "disabled";
      this.timer = setTimeout(() => this.connect(), 1000);
      this.timer.unref();
      return;
    }
    this.status.state = "connecting";
    const url = `${cred.url.replace(/^http/, "ws")}/hub/link`;
    const ws = new WebSocket(url, { headers: { authorization: cred.authorization }, maxPayload: 1024 * 1024, handshakeTimeout: 10_000 });
    this.ws = ws;
    ws.on("open", () => {
      this.attempt = 0;
      this.alive = true;
      this.status.state = "connected";
      this.status.connected_since = this.clock.now();
      this.status.last_error = null;
      this.status.reconnects++;
      this.log.info({ url }, "cloud link connected");
      if (this.ping) clearInterval(this.ping);
      this.ping = setInterval(() => {
        if (!this.alive) {
          this.log.warn("cloud link missed a heartbeat; reconnecting");
          ws.terminate();
          return;
        }
        this.alive = false;
        ws.ping();
      }, this.opts.pingMs);
      this.ping.unref();
      this.handlers.onOpen();
    });
    ws.on("pong", () => (this.alive = true));
    ws.on("ping", () => (this.alive = true));
    ws.on("message", (data, isBinary) => {
      this.alive = true;
      this.status.frames_in++;
      const raw = isBinary ? "" : String(data);
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        this.status.frames_bad++;
        return this.handlers.onBadFrame(raw, "not JSON");
      }
      const r = LinkDown.safeParse(parsed);
      if (!r.success) {
        this.status.frames_bad++;
        return this.handlers.onBadFrame(raw, r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
      }
      this.handlers.onFrame(r.data);
    });
    ws.on("unexpected-response", (_req, res) => {
      const reason = `cloud refused the link: HTTP ${res.statusCode}`;
      this.log.warn({ status: res.statusCode }, reason);
      this.status.last_error = reason;
      if (res.statusCode === 401 || res.statusCode === 403) this.handlers.onRefused?.(reason);
      ws.terminate();
    });
    ws.on("error", (err) => {
      this.status.last_error = err.message;
    });
    ws.on("close", (code) => {
      if (code === 4003) this.handlers.onRefused?.("the cloud removed this hub (link closed 4003)");
      if (this.ping) clearInterval(this.ping);
      this.ping = null;
      if (this.ws === ws) this.ws = null;
      if (!this.closed) {
        if (this.status.state === "connected") this.log.warn("cloud link closed; reconnecting");
        this.retry(this.status.last_error ?? "closed");
      }
    });
  }
}
