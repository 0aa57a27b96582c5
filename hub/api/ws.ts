// Live WebSocket at /ws (issue 2 §8): authenticated at upgrade; a client subscribes to devices and
// receives readings, status changes and command results as they happen. Slow clients are dropped
// rather than buffered without bound.
import { WebSocketServer, type WebSocket } from "ws";
import type { Server, IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "../../shared/logger.js";
import type { HubBus } from "../bus.js";
import type { AccountService } from "../accounts/account-service.js";
import type { AccessClaims } from "../accounts/token-service.js";
import type { DeviceService } from "../devices/device-service.js";
import type { HubMetrics } from "../metrics.js";

const MAX_FRAME = 64 * 1024;
const MAX_BUFFERED = 1024 * 1024;

interface Session {
  ws: WebSocket;
  /** Kept for cloud users only: their access is checked again when the cloud's access list changes. */
  grant: string | null;
  claims: AccessClaims;
  all: boolean;
  devices: Set<string>;
  alive: boolean;
}

export interface LiveSocket {
  close(): void;
}

export function attachLiveSocket(
  server: Server,
  d: { accounts: AccountService; devices: DeviceService; bus: HubBus; metrics: HubMetrics; log: Logger; allowedOrigins: string[] },
): LiveSocket {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });
  const sessions = new Set<Session>();

  const refuse = (socket: Duplex, code: number, reason: string, extra = "") => {
    socket.end(`HTTP/1.1 ${code} ${reason}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n${extra}Content-Length: 0\r\n\r\n`);
  };

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://hub");
    if (url.pathname !== "/ws") return refuse(socket, 404, "Not Found");
    const origin = req.headers.origin;
    if (origin && !originAllowed(origin, req.headers.host, d.allowedOrigins)) return refuse(socket, 403, "Forbidden");
    const header = req.headers.authorization;
    const token = header?.startsWith("Bearer ") ? header.slice(7) : url.searchParams.get("access_token");
    if (!token) return refuse(socket, 401, "Unauthorized", 'WWW-Authenticate: Bearer realm="smartplug"\r\n');
    d.accounts.authenticate(token).then(
      (claims) => wss.handleUpgrade(req, socket, head, (ws) => open(ws, claims, claims.userId.startsWith("cloud:") ? token : null)),
      () => refuse(socket, 401, "Unauthorized", 'WWW-Authenticate: Bearer realm="smartplug", error="invalid_token"\r\n'),
    );
  });

  function open(ws: WebSocket, claims: AccessClaims, grant: string | null) {
    const s: Session = { ws, grant, claims, all: false, devices: new Set(), alive: true };
    sessions.add(s);
    d.metrics.wsClients.set(sessions.size);
    ws.on("pong", () => (s.alive = true));
    ws.on("close", () => {
      sessions.delete(s);
      d.metrics.wsClients.set(sessions.size);
    });
    ws.on("error", () => ws.terminate());
    ws.on("message", (data, isBinary) => {
      let msg: { type?: unknown; device_ids?: unknown };
      try {
        msg = JSON.parse(isBinary ? "" : data.toString());
      } catch {
        return reply(s, { type: "error", code: "bad-json", detail: "send JSON text frames" });
      }
      if (msg.type !== "subscribe" && msg.type !== "unsubscribe") return reply(s, { type: "error", code: "unknown-type", detail: "type must be subscribe or unsubscribe" });
      const ids = msg.device_ids;
      if (ids === "*") {
        s.all = msg.type === "subscribe";
        if (!s.all) s.devices.clear();
        return reply(s, { type: msg.type === "subscribe" ? "subscribed" : "unsubscribed", device_ids: "*" });
      }
      if (!Array.isArray(ids) || ids.length > 1000 || !ids.every((x) => typeof x === "string")) {
        return reply(s, { type: "error", code: "validation", detail: "device_ids must be '*' or an array of device ids" });
      }
      const ok: string[] = [];
      for (const id of ids as string[]) {
        // Every local user may see every device of the hub; unknown ids get an error frame, never data.
        if (!d.devices.has(id) || (s.claims.deviceIds && !s.claims.deviceIds.includes(id))) {
          reply(s, { type: "error", code: "not-found", device_id: id.slice(0, 64), detail: "no such device" });
          continue;
        }
        if (msg.type === "subscribe") s.devices.add(id);
        else s.devices.delete(id);
        ok.push(id);
      }
      reply(s, { type: msg.type === "subscribe" ? "subscribed" : "unsubscribed", device_ids: ok });
    });
    reply(s, { type: "welcome", user_id: claims.userId });
  }

  function reply(s: Session, body: unknown) {
    send(s, JSON.stringify(body));
  }

  function send(s: Session, frame: string) {
    if (s.ws.readyState !== s.ws.OPEN) return;
    if (s.ws.bufferedAmount > MAX_BUFFERED) {
      d.log.warn({ userId: s.claims.userId }, "websocket client too slow; dropped");
      s.ws.close(1013, "too slow");
      s.ws.terminate();
      return;
    }
    s.ws.send(frame);
  }

  function fanout(deviceId: string, body: unknown) {
    if (sessions.size === 0) return;
    let frame: string | null = null;
    for (const s of sessions) {
      if (!s.all && !s.devices.has(deviceId)) continue;
      if (s.claims.deviceIds && !s.claims.deviceIds.includes(deviceId)) continue;
      frame ??= JSON.stringify(body);
      send(s, frame);
    }
  }

  d.bus.on("readingReceived", ({ deviceId, reading: r }) =>
    fanout(deviceId, { type: "reading", device_id: deviceId, timestamp: new Date(r.ts).toISOString(), power: r.power, voltage: r.voltage, current: r.current, relay_state: r.relayOn, energy_counter_wh: r.counterWh }),
  );
  d.bus.on("deviceStatusChanged", ({ deviceId, online, at }) => fanout(deviceId, { type: "status", device_id: deviceId, status: online ? "online" : "offline", timestamp: new Date(at).toISOString() }));
  d.bus.on("relayChanged", ({ deviceId, relayOn, at }) => fanout(deviceId, { type: "relay", device_id: deviceId, relay_state: relayOn, timestamp: new Date(at).toISOString() }));
  d.bus.on("commandCompleted", (c) =>
    fanout(c.deviceId, { type: "command_result", command_id: c.commandId, device_id: c.deviceId, command: c.command, status: c.status, relay_state: c.relayOn, timestamp: new Date(c.at).toISOString() }),
  );
  d.bus.on("alertChanged", ({ alert }) => {
    const frame = { type: "alert", ...alert };
    if (alert.device_id) fanout(alert.device_id, frame);
    // Hub-wide alerts (storage) go to everyone who sees the whole hub, as GET /alerts lists them.
    else for (const s of sessions) if (!s.claims.deviceIds) send(s, JSON.stringify(frame));
  });
  d.bus.on("deviceRemoved", ({ deviceId }) => {
    fanout(deviceId, { type: "removed", device_id: deviceId });
    for (const s of sessions) s.devices.delete(deviceId);
  });
  // A cloud user's share changed or was revoked in the cloud: the session goes on with what the user may see now
  // (devices no longer shared are unsubscribed), or is closed when the user has no access left.
  d.bus.on("cloudAccessChanged", () => {
    for (const s of sessions) {
      if (!s.grant) continue;
      d.accounts.authenticate(s.grant).then(
        (claims) => {
          s.claims = claims;
          if (claims.deviceIds) for (const id of s.devices) if (!claims.deviceIds.includes(id)) s.devices.delete(id);
        },
        () => s.ws.close(4003, "access revoked"),
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
      for (const s of sessions) s.ws.close(1001, "hub shutting down");
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
