// Live WebSocket at /ws for dashboards and apps (issue 5 §8, RELIABILITY A18): authenticated at upgrade (401),
// Origin checked (403), frames over 64 KiB close the socket with 1009, per-device subscriptions authorized
// exactly like REST (a device you may not see gets the same error frame as a missing one, A10), slow clients
// dropped rather than buffered without bound. The protocol is the hub's: subscribe/unsubscribe frames; pushed
// frames are reading, status, alert, command_result and removed.
import { WebSocketServer, type WebSocket } from "ws";
import type { Server, IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "../../shared/logger.js";
import type { CloudBus } from "../bus.js";
import type { AccountService } from "../auth/account-service.js";
import type { AccessClaims } from "../auth/token-service.js";
import type { DeviceService } from "../devices/device-service.js";
import type { HubService } from "../hubs/hub-service.js";
import type { CloudMetrics } from "../metrics.js";

export const MAX_FRAME = 64 * 1024;
const MAX_BUFFERED = 1024 * 1024;

interface Session {
  ws: WebSocket;
  claims: AccessClaims;
  all: boolean;
  /** devicePk → hub-local device id */
  devices: Map<string, string>;
  alive: boolean;
}

export interface LiveSocket {
  close(): void;
}

export function attachLiveSocket(
  server: Server,
  d: { accounts: AccountService; devices: DeviceService; hubs: Pick<HubService, "access">; bus: CloudBus; metrics: CloudMetrics; log: Logger; allowedOrigins: string[]; maxBufferedBytes?: number },
): LiveSocket {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });
  const sessions = new Set<Session>();
  const maxBuffered = d.maxBufferedBytes ?? MAX_BUFFERED;

  const refuse = (socket: Duplex, code: number, reason: string, extra = "") => {
    socket.end(`HTTP/1.1 ${code} ${reason}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n${extra}Content-Length: 0\r\n\r\n`);
  };

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    const url = new URL(req.url ?? "/", "http://cloud");
    if (url.pathname === "/hub/link") return; // the hub link's own upgrade handler (cloud/link/link-server.ts)
    if (url.pathname !== "/ws") return refuse(socket, 404, "Not Found");
    const origin = req.headers.origin;
    if (origin && !originAllowed(origin, req.headers.host, d.allowedOrigins)) return refuse(socket, 403, "Forbidden");
    const header = req.headers.authorization;
    const token = header?.startsWith("Bearer ") ? header.slice(7) : url.searchParams.get("access_token");
    if (!token) return refuse(socket, 401, "Unauthorized", 'WWW-Authenticate: Bearer realm="smartplug"\r\n');
    d.accounts.authenticate(token).then(
      (claims) => wss.handleUpgrade(req, socket, head, (ws) => open(ws, claims)),
      () => refuse(socket, 401, "Unauthorized", 'WWW-Authenticate: Bearer realm="smartplug", error="invalid_token"\r\n'),
    );
  });

  function open(ws: WebSocket, claims: AccessClaims) {
    const s: Session = { ws, claims, all: false, devices: new Map(), alive: true };
    sessions.add(s);
    d.metrics.wsClients.set(sessions.size);
    ws.on("pong", () => (s.alive = true));
    ws.on("close", (code) => {
      if (code === 1009) d.metrics.wsDropped.inc({ reason: "frame_too_large" });
      sessions.delete(s);
      d.metrics.wsClients.set(sessions.size);
    });
    ws.on("error", () => ws.terminate());
    ws.on("message", (data, isBinary) => {
      handle(s, isBinary ? "" : data.toString()).catch((err: unknown) => {
        d.log.warn({ err: (err as Error).message }, "websocket message failed");
        reply(s, { type: "error", code: "internal", detail: "could not handle the message" });
      });
    });
    reply(s, { type: "welcome", user_id: claims.userId });
  }

  async function handle(s: Session, text: string) {
    let msg: { type?: unknown; device_ids?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return reply(s, { type: "error", code: "bad-json", detail: "send JSON text frames" });
    }
    if (msg.type !== "subscribe" && msg.type !== "unsubscribe") return reply(s, { type: "error", code: "unknown-type", detail: "type must be subscribe or unsubscribe" });
    const ids = msg.device_ids;
    if (ids === "*") {
      s.all = msg.type === "subscribe";
      s.devices = s.all ? await d.devices.visibleKeys(s.claims.userId) : new Map();
      return reply(s, { type: msg.type === "subscribe" ? "subscribed" : "unsubscribed", device_ids: "*" });
    }
    if (!Array.isArray(ids) || ids.length > 1000 || !ids.every((x) => typeof x === "string")) {
      return reply(s, { type: "error", code: "validation", detail: "device_ids must be '*' or an array of device ids" });
    }
    const ok: string[] = [];
    for (const id of ids as string[]) {
      let pk: string;
      try {
        pk = (await d.devices.resolve(s.claims.userId, id)).row.id;
      } catch {
        // Missing and not-yours answer alike, and never with data (A10).
        reply(s, { type: "error", code: "not-found", device_id: id.slice(0, 64), detail: "no such device" });
        continue;
      }
      if (msg.type === "subscribe") s.devices.set(pk, id);
      else s.devices.delete(pk);
      ok.push(id);
    }
    reply(s, { type: msg.type === "subscribe" ? "subscribed" : "unsubscribed", device_ids: ok });
  }

  function reply(s: Session, body: unknown) {
    send(s, JSON.stringify(body));
  }

  function send(s: Session, frame: string) {
    if (s.ws.readyState !== s.ws.OPEN) return;
    if (s.ws.bufferedAmount > maxBuffered) {
      d.log.warn({ userId: s.claims.userId, buffered: s.ws.bufferedAmount }, "websocket client too slow; dropped");
      d.metrics.wsDropped.inc({ reason: "slow" });
      s.ws.close(1013, "too slow");
      s.ws.terminate();
      return;
    }
    s.ws.send(frame);
  }

  function fanout(devicePk: string, body: unknown) {
    if (sessions.size === 0) return;
    let frame: string | null = null;
    for (const s of sessions) {
      if (!s.devices.has(devicePk)) continue;
      frame ??= JSON.stringify(body);
      send(s, frame);
    }
  }

  d.bus.on("readingReported", (r) =>
    fanout(r.devicePk, { type: "reading", device_id: r.deviceId, timestamp: new Date(r.ts).toISOString(), power: r.power, voltage: r.voltage, current: r.current, relay_state: r.relayOn, energy_wh: r.energyWh }),
  );
  d.bus.on("deviceStatusChanged", (e) => fanout(e.devicePk, { type: "status", device_id: e.deviceId, status: e.online ? "online" : "offline", timestamp: new Date(e.at).toISOString() }));
  d.bus.on("commandUpdated", (c) =>
    fanout(c.devicePk, { type: "command_result", command_id: c.commandId, device_id: c.deviceId, command: c.command, status: c.status, relay_state: c.relayOn, timestamp: new Date(c.at).toISOString() }),
  );
  // Alerts keep their order (raised before resolved) even though a hub-wide one waits for access checks.
  let alerts: Promise<void> = Promise.resolve();
  d.bus.on("alertChanged", ({ hubId, devicePk, alert: a }) => {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    const frame = { type: "alert", id: a.id, device_id: a.device_id, kind: a.kind, message: a.message, details: null, started_at: iso(a.started_at), resolved_at: iso(a.resolved_at), acknowledged_at: iso(a.acknowledged_at) };
    alerts = alerts.then(async () => {
      if (a.device_id !== null) {
        // A device the cloud does not know yet has no subscribers.
        if (devicePk) fanout(devicePk, frame);
        return;
      }
      // A hub-wide alert (storage) goes, like on the hub's own /ws, to every session that may see the whole hub:
      // its owner and those it is shared with as a hub; a single-device share does not reveal the hub's state (A10).
      const text = JSON.stringify(frame);
      const audience = await Promise.all([...sessions].map((s) => d.hubs.access(s.claims.userId, hubId).then(() => s, () => null)));
      for (const s of audience) if (s) send(s, text);
    }).catch((err: unknown) => d.log.warn({ err: (err as Error).message }, "alert push failed"));
  });
  d.bus.on("deviceRemoved", ({ devicePk, deviceId }) => {
    fanout(devicePk, { type: "removed", device_id: deviceId });
    for (const s of sessions) s.devices.delete(devicePk);
  });
  d.bus.on("accessChanged", ({ userIds }) => {
    for (const s of sessions) {
      if (userIds !== "*" && !userIds.includes(s.claims.userId)) continue;
      // Re-authorize what this session listens to; whatever it may no longer see stops at once.
      d.devices.visibleKeys(s.claims.userId).then(
        (visible) => {
          if (s.all) s.devices = visible;
          else for (const pk of [...s.devices.keys()]) if (!visible.has(pk)) s.devices.delete(pk);
        },
        () => s.devices.clear(),
      );
    }
  });
  d.accounts.onFamilyRevoked((familyId) => {
    for (const s of sessions) if (s.claims.familyId === familyId) s.ws.close(4001, "sign-in revoked");
  });

  const heartbeat = setInterval(() => {
    for (const s of sessions) {
      if (!s.alive) {
        s.ws.terminate();
        continue;
      }
      s.alive = false;
      s.ws.ping();
    }
  }, 30_000);
  heartbeat.unref();

  return {
    close() {
      clearInterval(heartbeat);
      for (const s of sessions) {
        s.ws.close(1001, "cloud shutting down");
        // A client that never answers the close handshake must not hold the server open.
        setTimeout(() => s.ws.terminate(), 500).unref();
      }
      wss.close();
    },
  };
}

function originAllowed(origin: string, host: string | undefined, allowed: string[]): boolean {
  if (allowed.includes("*") || allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}
