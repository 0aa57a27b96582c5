// The embedded MQTT 3.1.1 broker (aedes), deny by default (issue 2 §2, RELIABILITY A1–A9).
import { Aedes, type Client, type AuthenticateError, type PublishPacket, type Subscription } from "aedes";
import { createServer, type Server, type Socket } from "node:net";
import type { Logger } from "../../shared/logger.js";
import type { HubMetrics } from "../metrics.js";
import type { PlugIdentity } from "../adapters/types.js";
import { guardSocket, PUBLISH_SETTLED, type GuardLimits } from "./byte-guard.js";
import { InflightGate, KeyedBuckets, TokenBucket } from "./rate-limit.js";

/** PUBLISH packets past the byte guard and not yet settled (acked or refused) before new ones are shed. */
export const DEFAULT_MAX_INFLIGHT = 2000;

/** Client ids are MQTT topic levels and device ids here: no wildcards, separators or NUL (A3). */
const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export interface BrokerLimits extends GuardLimits {
  maxConnections: number;
  connectsPerIpPerSec: number;
  connectsPerIpBurst: number;
  globalMsgRate: number;
  maxKeepaliveSec: number;
  maxTopicLevels: number;
  /** Bound on admitted, unsettled PUBLISH packets (default DEFAULT_MAX_INFLIGHT); beyond it they are shed as `backlog`. */
  maxInflight?: number;
}

export interface BrokerHooks {
  /** Resolves the plug for these credentials, or null (wrong or unknown: the same answer, A1). */
  authenticate(username: string, password: Buffer): Promise<PlugIdentity | null>;
  /** Called for every accepted PUBLISH; `done(err)` closes the connection, `done(null)` acks (QoS 1). */
  onPublish(plug: PlugIdentity, packet: PublishPacket, done: (err: Error | null) => void): void;
  maySubscribe(plug: PlugIdentity, filter: string): boolean;
  onConnected(plug: PlugIdentity): void;
  onDisconnected(plug: PlugIdentity): void;
}

export interface Broker {
  readonly port: number;
  readonly aedes: Aedes;
  publish(topic: string, payload: string, qos: 0 | 1, retain?: boolean): Promise<void>;
  /** Drops a plug's session (removal revokes it at once). */
  disconnect(clientId: string): void;
  isConnected(clientId: string): boolean;
  close(): Promise<void>;
}

type PlugClient = Client & { plug?: PlugIdentity; requestedKeepalive?: number };

export class AuthError extends Error {
  constructor(
    readonly returnCode: 2 | 4 | 5,
    message: string,
  ) {
    super(message);
  }
}

export async function startBroker(
  opts: { host: string; port: number; limits: BrokerLimits; hooks: BrokerHooks; now?: () => number },
  log: Logger,
  metrics: HubMetrics,
): Promise<Broker> {
  const { limits, hooks } = opts;
  const now = opts.now ?? Date.now;
  const aedes = await Aedes.createBroker({
    connectTimeout: limits.connectTimeoutMs,
    // Keepalive is checked in authenticate (A8): aedes's own keepaliveLimit refuses with CONNACK 6, a
    // code MQTT 3.1.1 reserves, and its refusals would not be counted.
    keepaliveLimit: 0,
    maxClientsIdLength: 64,
    maxTopicLevels: 100, // we check our own, lower limit in authorizePublish so the drop is counted
    heartbeatInterval: 60_000,
    preConnect(client, packet, done) {
      (client as PlugClient).requestedKeepalive = packet.keepalive;
      done(null, true);
    },
    authenticate(client, username, password, done) {
      const c = client as PlugClient;
      const fail = (code: 2 | 4 | 5, reason: string) => {
        metrics.refused.inc({ reason });
        // A refused client still carries the id it claimed; aedes's close would then clear that id's
        // inbound QoS 2 state as if its clean session ended — the session of the plug it impersonated (A1).
        c.clean = false;
        done(new AuthError(code, reason) as unknown as AuthenticateError, false);
      };
      if (!CLIENT_ID.test(c.id ?? "")) return fail(2, "bad_client_id");
      const keepalive = c.requestedKeepalive ?? 0;
      if (keepalive === 0 || keepalive > limits.maxKeepaliveSec) return fail(2, "bad_keepalive");
      if (typeof username !== "string" || !password) return fail(4, "no_credentials");
      if (username !== c.id) return fail(5, "client_id_mismatch");
      hooks.authenticate(username, password).then(
        (plug) => {
          if (!plug) return fail(4, "bad_credentials");
          c.plug = plug;
          done(null, true);
        },
        (err: unknown) => {
          log.error({ err }, "plug authentication failed unexpectedly");
          fail(5, "auth_error");
        },
      );
    },
    authorizePublish(client, packet, settle) {
      // However this publish ends, its place in the in-flight gate is released when aedes is told.
      const release = (client as { conn?: Record<symbol, (() => void) | undefined> } | null)?.conn?.[PUBLISH_SETTLED];
      const done = release
        ? (err: Error | null) => {
            release();
            settle(err);
          }
        : settle;
      const plug = (client as PlugClient | null)?.plug;
      if (!plug) return done(new Error("not authorized"));
      if (packet.topic.startsWith("$")) {
        metrics.securityEvents.inc({ kind: "publish_sys" });
        return done(new Error("not authorized"));
      }
      if (packet.topic.split("/").length > limits.maxTopicLevels) {
        metrics.dropped.inc({ reason: "too_many_topic_levels" });
        return done(new Error("too many topic levels"));
      }
      hooks.onPublish(plug, packet as PublishPacket, done);
    },
    authorizeSubscribe(client, sub: Subscription, done) {
      const plug = (client as PlugClient | null)?.plug;
      if (!plug || !hooks.maySubscribe(plug, sub.topic)) {
        metrics.securityEvents.inc({ kind: "subscribe_denied" });
        log.warn({ clientId: client?.id, filter: sub.topic }, "subscription denied");
        // null marks this filter failed in the SUBACK (0x80) without closing the connection (A5).
        return done(null, null as unknown as Subscription);
      }
      done(null, sub);
    },
    authorizeForward(client, packet) {
      // Retained or routed messages reach a plug only inside its own namespace (A5).
      const plug = (client as PlugClient | null)?.plug;
      if (!plug || !hooks.maySubscribe(plug, packet.topic)) return null as unknown as undefined;
      return packet;
    },
  });

  const clients = (aedes as unknown as { clients: Record<string, PlugClient | undefined> }).clients;
  aedes.on("client", (client) => {
    const plug = (client as PlugClient).plug;
    metrics.mqttClients.inc();
    if (plug) hooks.onConnected(plug);
  });
  aedes.on("clientDisconnect", (client) => {
    const c = client as PlugClient;
    metrics.mqttClients.dec();
    // A plug that reconnected has already taken over this id: the old session's end is not "offline".
    const current = clients[c.id] ;
    if (c.plug && (!current || current === c)) hooks.onDisconnected(c.plug);
  });
  aedes.on("clientError", (client, err) => {
    // Only aedes's own refusals: ours (authorizePublish) are counted where they are made.
    const reason = /# is not allowed|\+ is not allowed/.test(err.message) ? "wildcard_in_publish_topic" : /^topic has too many levels/.test(err.message) ? "too_many_topic_levels" : null;
    if (reason) metrics.dropped.inc({ reason });
    log.debug({ clientId: client?.id, err: err.message }, "mqtt client error");
  });
  aedes.on("keepaliveTimeout", (client) => log.info({ clientId: client.id }, "plug keepalive timed out"));
  aedes.on("connectionError", (client, err) => log.debug({ clientId: client?.id, err: err.message }, "mqtt connection error"));

  const globalBudget = new TokenBucket(limits.globalMsgRate, limits.globalMsgRate, now());
  const gate = new InflightGate(limits.maxInflight ?? DEFAULT_MAX_INFLIGHT);
  const perIp = new KeyedBuckets(limits.connectsPerIpPerSec, limits.connectsPerIpBurst);
  let open = 0;
  const sockets = new Set<Socket>();
  const guardEvents = {
    reject: (reason: string) => metrics.refused.inc({ reason }),
    shed: (reason: string) => metrics.shed.inc({ reason }),
  };

  const server: Server = createServer((socket) => {
    if (open >= limits.maxConnections) {
      metrics.refused.inc({ reason: "max_connections" });
      socket.destroy();
      return;
    }
    if (!perIp.take(socket.remoteAddress ?? "?", now())) {
      metrics.refused.inc({ reason: "connect_rate" });
      socket.destroy();
      return;
    }
    open++;
    sockets.add(socket);
    socket.once("close", () => {
      open--;
      sockets.delete(socket);
    });
    socket.setNoDelay(true); // RELIABILITY fact 8: Nagle + delayed ACK stall each round trip 44 ms
    aedes.handle(guardSocket(socket, limits, globalBudget, guardEvents, now, gate));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : opts.port;
  log.info({ port }, "mqtt broker listening");

  return {
    port,
    aedes,
    publish(topic, payload, qos, retain = false) {
      return new Promise((resolve, reject) => {
        aedes.publish({ cmd: "publish", topic, payload: Buffer.from(payload), qos, retain, dup: false }, (err) => (err ? reject(err) : resolve()));
      });
    },
    disconnect(clientId) {
      const c = clients[clientId];
      if (c) c.close();
    },
    isConnected(clientId) {
      return Boolean(clients[clientId]?.connected);
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
