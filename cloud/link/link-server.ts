// The cloud end of the hub link (issue 6, ARCHITECTURE §3 "cloud → hub control"): one hub-initiated WebSocket
// per hub at `GET /hub/link`, authenticated at upgrade with the hub credential (401 otherwise, never 500).
// Down: LinkCommand (on offer, and on connect every stored command not yet answered nor expired),
// LinkDeviceRemoved / LinkDevicePairing / LinkDeviceConfig / LinkScheduleConfig (cloud edits the hub has not
// echoed back, on connect and on every edit), LinkAccess (on connect and on
// every sharing change). Up: LinkCommandResult, LinkState, LinkHello (the hub's LAN address, for local grants).
// Every frame is validated; bad ones are counted and ignored. A newer link of the same hub replaces the older
// one; a link that misses a ping's pong is dropped.
import { WebSocketServer, type WebSocket } from "ws";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { and, asc, eq, inArray, or, sql } from "drizzle-orm";
import { Counter, Gauge } from "prom-client";
import type { CloudOrm } from "../db/open-db.js";
import { commands, deviceTombstones, deviceUsers, devices, hubUsers, hubs, schedules, users } from "../db/schema.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import { LinkUp, type LinkAccess, type LinkCommand, type LinkDeviceConfig, type LinkDevicePairing, type LinkDown, type LinkScheduleConfig } from "../../shared/schemas/sync.js";
import type { LatestState } from "../../shared/schemas/rollups.js";
import type { CloudBus } from "../bus.js";
import type { CloudMetrics } from "../metrics.js";
import type { CommandResult, HubLink, QueuedCommand } from "./hub-link.js";

export const LINK_PATH = "/hub/link";
export const LINK_MAX_FRAME = 64 * 1024;
/** The hub answers pings automatically (ws); one missed pong drops the link (detected within 2 × 15 s). */
export const LINK_PING_MS = 15_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** hubs.last_seen is written on connect and then at most this often while frames or pongs arrive. */
const LAST_SEEN_EVERY_MS = 30_000;

interface Link {
  hubId: string;
  ws: WebSocket;
  alive: boolean;
  lastSeenWrite: number;
}

interface Waiter {
  hubId: string;
  resolve(r: CommandResult | null): void;
  timer: NodeJS.Timeout;
}

export interface LinkDeps {
  server: Server;
  authenticateHub(hubId: string, secret: string): Promise<string>;
  setLatest: (hubId: string, s: LatestState) => Promise<boolean>;
  publicKeyPem: string;
  /** `iss` of local grants (CLOUD_JWT_ISSUER), sent with the key so the hub pins both. */
  issuer: string;
}

export class LinkServer implements HubLink {
  private readonly links = new Map<string, Link>();
  private readonly waiters = new Map<string, Waiter>();
  /** Each hub's local API URL from its last LinkHello; kept after the link drops (in memory: resent on every connect). */
  private readonly localUrls = new Map<string, string | null>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: LINK_MAX_FRAME });
  private deps: LinkDeps | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private accessPush: Promise<void> | null = null;
  /** Hubs whose pending config is pushed on the next turn (configPending events coalesced). */
  private readonly configPush = new Set<string>();
  private readonly gauge: Gauge;
  private readonly badFrames: Counter<"reason">;
  private readonly frames: Counter<"direction" | "type">;

  constructor(
    private readonly db: CloudOrm,
    private readonly bus: CloudBus,
    private readonly clock: Clock,
    private readonly log: Logger,
    metrics: CloudMetrics,
    private readonly opts: { pingMs?: number } = {},
  ) {
    this.gauge = new Gauge({ name: "cloud_link_hubs", help: "hubs with a connected link", registers: [metrics.registry] });
    this.badFrames = new Counter({ name: "cloud_link_bad_frames_total", help: "link frames from hubs that were ignored, by reason", labelNames: ["reason"], registers: [metrics.registry] });
    this.frames = new Counter({ name: "cloud_link_frames_total", help: "link frames, by direction and type", labelNames: ["direction", "type"], registers: [metrics.registry] });
  }

  start(deps: LinkDeps): void {
    this.deps = deps;
    deps.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(req.url ?? "/", "http://cloud").pathname !== LINK_PATH) return; // /ws is api/ws.ts's
      socket.on("error", () => socket.destroy());
      const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? "");
      const [id, secret] = m ? Buffer.from(m[1]!, "base64").toString("utf8").split(":", 2) : [];
      if (!id || !secret) return refuse(socket, 401, "hubs authenticate with 'Authorization: Basic base64(hub_id:hub_secret)'");
      deps.authenticateHub(id, secret).then(
        (hubId) => this.wss.handleUpgrade(req, socket, head, (ws) => this.open(hubId, ws)),
        (err: unknown) => {
          const status = (err as { status?: number }).status === 401 ? 401 : 503;
          if (status !== 401) this.log.warn({ err: (err as Error).message }, "hub link authentication failed");
          refuse(socket, status, status === 401 ? "hub credential is invalid" : "try again later");
        },
      );
    });
    this.heartbeat = setInterval(() => {
      for (const l of this.links.values()) {
        if (!l.alive) {
          this.log.info({ hubId: l.hubId }, "hub link missed a pong; dropped");
          l.ws.terminate();
          continue;
        }
        l.alive = false;
        l.ws.ping();
      }
    }, this.opts.pingMs ?? LINK_PING_MS);
    this.heartbeat.unref();
    // Sharing changed somewhere: every connected hub gets its access list again (coalesced).
    this.bus.on("accessChanged", () => this.pushAccessAll());
    // Config edited here (or found behind on the hub): push what the hub has not echoed yet, now if connected.
    this.bus.on("configPending", ({ hubId }) => this.pushPending(hubId));
  }

  /** Where the hub's local API answers on its LAN, as its link last said; null when unknown (issue 6 §7). */
  localApiUrl(hubId: string): string | null {
    return this.localUrls.get(hubId) ?? null;
  }

  isConnected(hubId: string): boolean {
    return this.links.has(hubId);
  }

  connectedCount(): number {
    return this.links.size;
  }

  /**
   * Claimed hubs by link state, for /health (issue 6 §8): four counts however many hubs there are (GET /hubs
   * shows each hub's own state). `disconnected_over_24h`: not connected and not seen for a day.
   */
  async linkStates(now: number): Promise<{ connected: number; disconnected: number; disconnected_over_24h: number; unclaimed_connected: number }> {
    const ids = [...this.links.keys()];
    const linked = inArray(hubs.id, ids);
    const dayAgo = new Date(now - 86_400_000).toISOString();
    const [r] = await this.db
      .select({
        claimed: sql<number>`(count(*) filter (where ${hubs.ownerId} is not null))::int`,
        connected: sql<number>`(count(*) filter (where ${hubs.ownerId} is not null and ${linked}))::int`,
        stale: sql<number>`(count(*) filter (where ${hubs.ownerId} is not null and not ${linked} and (${hubs.lastSeen} is null or ${hubs.lastSeen} < ${dayAgo}::timestamptz)))::int`,
      })
      .from(hubs);
    const claimed = Number(r?.claimed ?? 0);
    const connected = Number(r?.connected ?? 0);
    const stale = Number(r?.stale ?? 0);
    return { connected, disconnected: claimed - connected - stale, disconnected_over_24h: stale, unclaimed_connected: Math.max(0, ids.length - connected) };
  }

  offer(cmd: QueuedCommand): boolean {
    const l = this.links.get(cmd.hubId);
    if (!l) return false;
    return this.send(l, toLinkCommand(cmd));
  }

  /** Resolves with the hub's result for a command row, or null after `ms` (or when the hub's link drops). */
  waitForResult(id: string, hubId: string, ms: number): Promise<CommandResult | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        resolve(null);
      }, ms);
      this.waiters.set(id, { hubId, resolve, timer });
    });
  }

  /** A device's name was edited in the cloud: tell the hub now if it is connected (else on connect). */
  async pushDeviceConfig(hubId: string, deviceId: string): Promise<void> {
    const l = this.links.get(hubId);
    if (!l) return;
    const [d] = await this.db.select().from(devices).where(and(eq(devices.hubId, hubId), eq(devices.deviceId, deviceId))).limit(1);
    if (d?.namePending) this.send(l, deviceConfig(d));
  }

  async pushScheduleConfig(hubId: string, scheduleId: string): Promise<void> {
    const l = this.links.get(hubId);
    if (!l) return;
    const [s] = await this.db.select().from(schedules).where(and(eq(schedules.hubId, hubId), eq(schedules.id, scheduleId))).limit(1);
    if (s?.pending) this.send(l, scheduleConfig(s));
  }

  /**
   * Everything edited in the cloud that the hub has not echoed yet (issue 6 §5), in the order the hub needs it:
   * deletions, then pairings (before anything that names the device), names, schedules. Sent on every connect
   * and on every edit while connected; the hub applies each by the conflict rule and echoes its result.
   */
  private async sendPending(l: Link): Promise<void> {
    const hubId = l.hubId;
    const removed = await this.db.select().from(deviceTombstones).where(and(eq(deviceTombstones.hubId, hubId), eq(deviceTombstones.pending, true)));
    for (const t of removed) this.send(l, { type: "device_removed", device_id: t.deviceId, version: t.version });
    const devs = await this.db
      .select()
      .from(devices)
      .where(and(eq(devices.hubId, hubId), or(eq(devices.pairingPending, true), eq(devices.namePending, true))))
      .orderBy(asc(devices.createdAt));
    for (const d of devs) if (d.pairingPending && d.secretHash) this.send(l, devicePairing({ ...d, secretHash: d.secretHash }));
    for (const d of devs) if (d.namePending) this.send(l, deviceConfig(d));
    const sched = await this.db.select().from(schedules).where(and(eq(schedules.hubId, hubId), eq(schedules.pending, true))).orderBy(asc(schedules.createdAt));
    for (const s of sched) this.send(l, scheduleConfig(s));
  }

  private pushPending(hubId: string): void {
    if (!this.links.has(hubId) || this.configPush.has(hubId)) return;
    this.configPush.add(hubId);
    setImmediate(() => {
      this.configPush.delete(hubId);
      const l = this.links.get(hubId);
      if (l) this.sendPending(l).catch((err: unknown) => this.log.warn({ hubId, err: (err as Error).message }, "config push failed; sent again on connect"));
    });
  }

  /** The users who may use this hub's local API with a cloud grant, and the key grants are signed with. */
  async accessList(hubId: string): Promise<LinkAccess | null> {
    const [hub] = await this.db.select({ ownerId: hubs.ownerId, email: users.email }).from(hubs).leftJoin(users, eq(users.id, hubs.ownerId)).where(eq(hubs.id, hubId)).limit(1);
    if (!hub) return null;
    const list: LinkAccess["users"] = [];
    if (hub.ownerId) list.push({ user_id: hub.ownerId, email: hub.email ?? "", role: "owner", device_ids: null });
    const hubShares = await this.db.select({ userId: hubUsers.userId, role: hubUsers.role, email: users.email }).from(hubUsers).innerJoin(users, eq(users.id, hubUsers.userId)).where(eq(hubUsers.hubId, hubId)).orderBy(hubUsers.createdAt);
    for (const s of hubShares) list.push({ user_id: s.userId, email: s.email, role: s.role, device_ids: null });
    const deviceShares = await this.db
      .select({ userId: deviceUsers.userId, role: deviceUsers.role, email: users.email, deviceId: devices.deviceId })
      .from(deviceUsers)
      .innerJoin(devices, eq(devices.id, deviceUsers.deviceId))
      .innerJoin(users, eq(users.id, deviceUsers.userId))
      .where(eq(devices.hubId, hubId))
      .orderBy(deviceUsers.userId, devices.deviceId);
    // One entry per (user, role): a user with controller on one plug and viewer on another gets two entries;
    // the hub merges every entry of a user (hub/sync/grants.ts mergeAccess).
    const grouped = new Map<string, LinkAccess["users"][number]>();
    for (const s of deviceShares) {
      const key = `${s.userId}/${s.role}`;
      let e = grouped.get(key);
      if (!e) grouped.set(key, (e = { user_id: s.userId, email: s.email, role: s.role, device_ids: [] }));
      e.device_ids!.push(s.deviceId);
    }
    list.push(...grouped.values());
    return { type: "access", users: list, public_key_pem: this.deps?.publicKeyPem ?? "", issuer: this.deps?.issuer ?? "", issued_at: this.clock.now() };
  }

  async pushAccess(hubId: string): Promise<void> {
    const l = this.links.get(hubId);
    if (!l) return;
    const access = await this.accessList(hubId);
    if (!access) {
      // The hub was removed: nobody keeps local access through it (an empty list first, then the close the hub
      // also reads as a revocation), and its credential and link stop working.
      this.send(l, { type: "access", users: [], public_key_pem: this.deps?.publicKeyPem ?? "", issuer: this.deps?.issuer ?? "", issued_at: this.clock.now() });
      l.ws.close(4003, "hub removed");
      return;
    }
    this.send(l, access);
  }

  private pushAccessAll(): void {
    if (this.accessPush) return;
    this.accessPush = (async () => {
      await new Promise((r) => setImmediate(r));
      this.accessPush = null;
      for (const hubId of [...this.links.keys()]) await this.pushAccess(hubId);
    })().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, "access push failed"));
  }

  private open(hubId: string, ws: WebSocket) {
    const prev = this.links.get(hubId);
    if (prev) {
      this.log.info({ hubId }, "hub link replaced by a newer one");
      prev.ws.close(4000, "replaced by a newer link");
      setTimeout(() => prev.ws.terminate(), 500).unref();
    }
    const l: Link = { hubId, ws, alive: true, lastSeenWrite: 0 };
    this.links.set(hubId, l);
    this.gauge.set(this.links.size);
    this.log.info({ hubId }, "hub link connected");
    ws.on("pong", () => {
      l.alive = true;
      void this.touch(l); // never rejects
    });
    ws.on("error", () => ws.terminate());
    ws.on("close", (code) => {
      if (code === 1009) this.badFrames.inc({ reason: "too_large" });
      if (this.links.get(hubId) !== l) return;
      this.links.delete(hubId);
      this.gauge.set(this.links.size);
      for (const [id, w] of this.waiters) {
        if (w.hubId !== hubId) continue;
        clearTimeout(w.timer);
        this.waiters.delete(id);
        w.resolve(null);
      }
      this.log.info({ hubId, code }, "hub link disconnected");
    });
    ws.on("message", (data, isBinary) => {
      l.alive = true;
      void this.touch(l);
      this.handle(l, isBinary ? null : data.toString()).catch((err: unknown) => {
        this.badFrames.inc({ reason: "failed" });
        this.log.warn({ hubId, err: (err as Error).message }, "hub link frame failed");
      });
    });
    this.onConnect(l).catch((err: unknown) => this.log.warn({ hubId, err: (err as Error).message }, "hub link catch-up failed"));
  }

  /** On connect: access list, then config the hub has not seen, then every command still owed to it. */
  private async onConnect(l: Link) {
    const access = await this.accessList(l.hubId);
    if (access) this.send(l, access);
    await this.sendPending(l);
    const owed = await this.db
      .select({ c: commands, deviceId: devices.deviceId })
      .from(commands)
      .innerJoin(devices, eq(devices.id, commands.deviceId))
      .where(and(eq(commands.hubId, l.hubId), inArray(commands.status, ["queued", "sent"])))
      .orderBy(commands.createdAt);
    const now = this.clock.now();
    for (const { c, deviceId } of owed) {
      if (c.expiresAt.getTime() <= now) {
        const [done] = await this.db
          .update(commands)
          .set({ status: "expired", completedAt: new Date(now) })
          .where(and(eq(commands.id, c.id), inArray(commands.status, ["queued", "sent"])))
          .returning({ id: commands.id });
        if (done) this.bus.emit("commandUpdated", { devicePk: c.deviceId, deviceId, commandId: c.commandId, command: c.command, status: "expired", relayOn: null, at: now });
        continue;
      }
      if (!this.send(l, toLinkCommand({ id: c.id, commandId: c.commandId, hubId: c.hubId, deviceId, command: c.command, expiresAt: c.expiresAt }))) return;
      if (c.status === "queued") {
        await this.db.update(commands).set({ status: "sent" }).where(and(eq(commands.id, c.id), eq(commands.status, "queued")));
        this.bus.emit("commandUpdated", { devicePk: c.deviceId, deviceId, commandId: c.commandId, command: c.command, status: "sent", relayOn: null, at: now });
      }
    }
    await this.touch(l, true);
  }

  private async handle(l: Link, text: string | null) {
    let json: unknown;
    try {
      if (text === null) throw new Error("binary");
      json = JSON.parse(text);
    } catch {
      this.badFrames.inc({ reason: "not_json" });
      return;
    }
    const parsed = LinkUp.safeParse(json);
    if (!parsed.success) {
      this.badFrames.inc({ reason: "invalid" });
      this.log.info({ hubId: l.hubId, issue: parsed.error.issues[0]?.message }, "invalid link frame ignored");
      return;
    }
    const msg = parsed.data;
    this.frames.inc({ direction: "up", type: msg.type });
    if (msg.type === "state") {
      for (const s of msg.devices) await this.deps!.setLatest(l.hubId, s);
      return;
    }
    if (msg.type === "hello") {
      this.localUrls.set(l.hubId, msg.local_api_url);
      return;
    }
    // command_result: only the hub the command was for may answer it, and only once.
    if (!UUID.test(msg.id)) {
      this.badFrames.inc({ reason: "unknown_command" });
      return;
    }
    const at = new Date(msg.at);
    const [row] = await this.db
      .update(commands)
      .set({ status: msg.status, relayOn: msg.relay_state, completedAt: at })
      .where(and(eq(commands.id, msg.id), eq(commands.hubId, l.hubId), inArray(commands.status, ["queued", "sent"])))
      .returning();
    if (!row) {
      this.badFrames.inc({ reason: "unknown_command" });
      return;
    }
    const [d] = await this.db.select({ deviceId: devices.deviceId }).from(devices).where(eq(devices.id, row.deviceId)).limit(1);
    const result: CommandResult = { status: msg.status, relayOn: msg.relay_state, at: msg.at };
    const w = this.waiters.get(row.id);
    if (w) {
      clearTimeout(w.timer);
      this.waiters.delete(row.id);
      w.resolve(result);
    }
    this.bus.emit("commandUpdated", { devicePk: row.deviceId, deviceId: d?.deviceId ?? "", commandId: row.commandId, command: row.command, status: msg.status, relayOn: msg.relay_state, at: msg.at });
  }

  private touch(l: Link, force = false): Promise<void> {
    const now = this.clock.now();
    if (!force && now - l.lastSeenWrite < LAST_SEEN_EVERY_MS) return Promise.resolve();
    l.lastSeenWrite = now;
    return this.db
      .update(hubs)
      .set({ lastSeen: new Date(now) })
      .where(eq(hubs.id, l.hubId))
      .then(
        () => undefined,
        (err: unknown) => this.log.warn({ err: (err as Error).message }, "hub last_seen not written"),
      );
  }

  private send(l: Link, frame: LinkDown): boolean {
    if (l.ws.readyState !== l.ws.OPEN) return false;
    l.ws.send(JSON.stringify(frame));
    this.frames.inc({ direction: "down", type: frame.type });
    return true;
  }

  close(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.resolve(null);
    }
    this.waiters.clear();
    for (const l of this.links.values()) {
      l.ws.close(1001, "cloud shutting down");
      setTimeout(() => l.ws.terminate(), 500).unref();
    }
    this.wss.close();
  }
}

function refuse(socket: Duplex, status: 401 | 503, detail: string) {
  const body = JSON.stringify({
    type: `https://smartplug.dev/problems/${status === 401 ? "unauthorized" : "unavailable"}`,
    title: status === 401 ? "Authentication required" : "Service unavailable",
    status,
    detail,
    instance: LINK_PATH,
  });
  const head = status === 401 ? "401 Unauthorized" : "503 Service Unavailable";
  const extra = status === 401 ? 'WWW-Authenticate: Basic realm="smartplug-hub"\r\n' : "Retry-After: 5\r\n";
  socket.end(`HTTP/1.1 ${head}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function toLinkCommand(c: QueuedCommand): LinkCommand {
  return { type: "command", id: c.id, device_id: c.deviceId, command: c.command as LinkCommand["command"], expires_at: c.expiresAt.toISOString() };
}

function deviceConfig(d: typeof devices.$inferSelect): LinkDeviceConfig {
  return { type: "device_config", device_id: d.deviceId, name: d.name, version: d.nameVersion };
}

function scheduleConfig(s: typeof schedules.$inferSelect): LinkScheduleConfig {
  return { type: "schedule_config", schedule_id: s.id, device_id: s.deviceId, deleted: s.deleted, rule: s.deleted ? null : (s.rule ?? null), version: s.version, created_at: s.createdAt.getTime() };
}

/** A device created in the cloud, with its pairing code's hash (never the code; the hub checks the plug with it). */
function devicePairing(d: typeof devices.$inferSelect & { secretHash: string }): LinkDevicePairing {
  return { type: "device_pairing", device_id: d.deviceId, name: d.name, name_version: d.nameVersion, family: d.family as LinkDevicePairing["family"], channel: d.channel, secret_hash: d.secretHash, paired_at: d.createdAt.getTime() };
}
