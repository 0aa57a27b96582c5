// The hub's side of the cloud (issue 6): registration and claiming, the outbox and its uplink, the link with
// remote commands, live state and config both ways, and the access list for cloud users on the LAN.
// Everything here is optional: without HUB_CLOUD_URL the hub never calls out and the outbox stays off.
import { hostname } from "node:os";
import { Counter } from "prom-client";
import type { HubDb } from "../db/open-db.js";
import { getMeta } from "../db/open-db.js";
import type { HubBus } from "../bus.js";
import { CloudUnavailableError } from "../../shared/problem.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { GroupCommitter, WriteOp } from "../ingest/group-committer.js";
import type { DeviceService } from "../devices/device-service.js";
import type { CommandService } from "../devices/command-service.js";
import type { ScheduleService } from "../schedules/schedule-service.js";
import type { HubMetrics } from "../metrics.js";
import type { LinkAccess, LinkCommand, LinkCommandResult, LinkDeviceConfig, LinkDevicePairing, LinkDeviceRemoved, LinkDown, LinkScheduleConfig } from "../../shared/schemas/sync.js";
import { CreateScheduleRequest } from "../../shared/schemas/schedules.js";
import type { LatestState } from "../../shared/schemas/rollups.js";
import { HubCredential } from "../../shared/schemas/cloud.js";
import { Outbox, type OutboxStats } from "./outbox.js";
import { Uplink, fullJitter, type UplinkCredential, type UplinkStatus } from "./uplink.js";
import { CloudLink, type LinkStatus } from "./link.js";

export interface SyncConfig {
  cloudUrl: string | null;
  hubName: string;
  publicHost: string;
  mqttPort: () => number;
  timeZone: string;
  outbox: { maxBytes: number; maxAgeMs: number };
  uplink: { intervalMs: number; maxRows: number; maxBytes: number; requestTimeoutMs: number; backoffBaseMs: number; backoffMaxMs: number };
  link: { pingMs: number; stateThrottleMs: number; backoffBaseMs: number; backoffMaxMs: number };
}

export interface SyncStatus {
  enabled: boolean;
  cloud_url: string | null;
  hub_id: string | null;
  registered: boolean;
  claimed: boolean;
  claim_code: string | null;
  claim_expires_at: string | null;
  link: LinkStatus;
  uplink: UplinkStatus;
  outbox: OutboxStats & { oldest_unsent_age_s: number | null };
}

/** Hub-side cache of who may use the local API with a cloud grant (LinkAccess). */
export interface CloudAccess {
  users: LinkAccess["users"];
  publicKeyPem: string;
  /** The `iss` grants must carry; null in a list stored before the cloud sent it (grants refused until the next list). */
  issuer: string | null;
  issuedAt: number;
}

export class SyncService {
  readonly outbox: Outbox;
  readonly uplink: Uplink;
  readonly link: CloudLink;
  private cred: { hubId: string; secret: string } | null = null;
  private claim: { code: string; expiresAt: number } | null = null;
  private registerTimer: NodeJS.Timeout | null = null;
  private limitsTimer: NodeJS.Timeout | null = null;
  private stateTimer: NodeJS.Timeout | null = null;
  private readonly dirtyState = new Set<string>();
  private registerAttempt = 0;
  private closed = false;
  access: CloudAccess | null = null;
  /** The local API's base URL on the LAN, told to the cloud on every link connect (LinkHello, issue 6 §7). */
  private localApiUrl: string | null = null;

  constructor(
    private readonly db: HubDb,
    private readonly committer: GroupCommitter,
    private readonly devices: DeviceService,
    private readonly commands: CommandService,
    private readonly schedules: ScheduleService,
    private readonly bus: HubBus,
    private readonly metrics: HubMetrics,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly cfg: SyncConfig,
  ) {
    this.outbox = new Outbox(db, committer, clock, log, cfg.outbox);
    const credential = (): UplinkCredential | null =>
      cfg.cloudUrl && this.cred ? { url: cfg.cloudUrl, authorization: `Basic ${Buffer.from(`${this.cred.hubId}:${this.cred.secret}`).toString("base64")}` } : null;
    // A restored hub's sequence renumbered above the cloud's (Outbox.checkSequence): counted, and logged by the uplink.
    const rewinds = new Counter({
      name: "hub_sync_sequence_rewinds_total",
      help: "times the outbox's sequence was found behind the cloud's synced_seq (a restore from a backup) and the rows queued since were renumbered above it",
      registers: [metrics.registry],
    });
    const renumbered = new Counter({ name: "hub_sync_renumbered_rows_total", help: "outbox rows renumbered above the cloud's synced_seq after a rewound sequence", registers: [metrics.registry] });
    this.uplink = new Uplink(this.outbox, credential, clock, log.child({ part: "uplink" }), cfg.uplink, {
      onBatch: (outcome) => {
        metrics.syncBatches.inc({ outcome });
        if (/(^|_)http_40[13]$/.test(outcome)) void this.revokeCloudAccess(`the cloud refused this hub's credential (${outcome})`);
      },
      onRenumber: (check) => {
        rewinds.inc();
        renumbered.inc(check.rows);
      },
    });
    this.link = new CloudLink(
      credential,
      {
        onFrame: (f) => void this.onFrame(f),
        onBadFrame: (raw, reason) => this.onBadFrame(raw, reason),
        onOpen: () => this.onLinkOpen(),
        onRefused: (reason) => void this.revokeCloudAccess(reason),
      },
      clock,
      log.child({ part: "link" }),
      { pingMs: cfg.link.pingMs, backoffBaseMs: cfg.link.backoffBaseMs, backoffMaxMs: cfg.link.backoffMaxMs },
    );
    // /metrics reads the outbox and link at scrape time (issue 6 §8), with or without a /health call before.
    metrics.setSyncSource(() => {
      const o = this.outbox.stats();
      return {
        outboxRows: o.depth,
        outboxBytes: o.bytes,
        oldestAgeS: oldestAgeS(o) ?? 0,
        lastSuccessS: (this.uplink.status.last_success_at ?? 0) / 1000,
        linkConnected: this.link.connected,
        dropped: o.dropped,
        deadLettered: o.dead_lettered,
      };
    });
    const stored = getMeta(db, "cloud_access");
    if (stored) this.access = { issuer: null, ...(JSON.parse(stored) as Omit<CloudAccess, "issuer">) };
  }

  get enabled(): boolean {
    return this.cfg.cloudUrl !== null;
  }

  get hubId(): string | null {
    return this.cred?.hubId ?? null;
  }

  async start(): Promise<void> {
    if (!this.cfg.cloudUrl) return;
    // First, before anything this process queues is committed: what it numbers is checked against the cloud's
    // synced_seq before it is sent (a restored backup rewinds the sequence; Outbox.checkSequence).
    await this.outbox.markUnchecked();
    await this.outbox.enable();
    const id = getMeta(this.db, "cloud_hub_id");
    const secret = getMeta(this.db, "cloud_hub_secret");
    const url = getMeta(this.db, "cloud_url");
    if (id && secret && url === this.cfg.cloudUrl) this.cred = { hubId: id, secret };
    else void this.register();
    const claim = getMeta(this.db, "cloud_claim");
    if (claim) this.claim = JSON.parse(claim) as { code: string; expiresAt: number };

    this.bus.on("relayChanged", ({ deviceId, relayOn, at }) => {
      this.outbox.addRelay(deviceId, relayOn, at, null);
      this.markState(deviceId);
      this.uplink.kick();
    });
    this.bus.on("readingReceived", ({ deviceId }) => this.markState(deviceId));
    this.bus.on("deviceStatusChanged", ({ deviceId }) => this.markState(deviceId));
    // Config and alerts reach the outbox through triggers; tell the uplink soon rather than on its next tick.
    for (const ev of ["deviceAdded", "deviceRemoved", "alertChanged"] as const) this.bus.on(ev, () => this.uplink.kick());

    this.uplink.start();
    this.link.start();
    // Limits every minute, and at once when the outbox grew by a sixteenth of its budget (checked every 5 s).
    this.limitsTimer = setInterval(() => void this.outbox.maybeEnforceLimits().catch((err: Error) => this.log.error({ err: err.message }, "outbox limits not enforced")), 5000);
    this.limitsTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.registerTimer) clearTimeout(this.registerTimer);
    if (this.limitsTimer) clearInterval(this.limitsTimer);
    if (this.stateTimer) clearTimeout(this.stateTimer);
    this.uplink.close();
    this.link.close();
  }

  // --- registration and claiming ---

  private async register(): Promise<void> {
    if (this.closed || !this.cfg.cloudUrl) return;
    try {
      const res = await fetch(`${this.cfg.cloudUrl}/hubs/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: this.cfg.hubName, mqtt_host: this.cfg.publicHost, mqtt_port: this.cfg.mqttPort(), time_zone: this.cfg.timeZone }),
        signal: AbortSignal.timeout(this.cfg.uplink.requestTimeoutMs),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
      const c = HubCredential.parse(JSON.parse(text));
      this.cred = { hubId: c.hub_id, secret: c.hub_secret };
      this.claim = { code: c.claim_code, expiresAt: Date.parse(c.claim_expires_at) };
      await this.committer.write(
        [metaOp("cloud_hub_id", c.hub_id), metaOp("cloud_hub_secret", c.hub_secret), metaOp("cloud_url", this.cfg.cloudUrl), metaOp("cloud_claim", JSON.stringify(this.claim))],
        { now: true },
      );
      this.log.info({ hubId: c.hub_id, claimCode: c.claim_code, claimExpiresAt: c.claim_expires_at }, `registered with the cloud; claim this hub with code ${c.claim_code}`);
      this.uplink.kick();
    } catch (err) {
      const wait = Math.max(1000, fullJitter(++this.registerAttempt, 2000, this.cfg.uplink.backoffMaxMs));
      this.log.warn({ err: (err as Error).message, retryInMs: wait }, "could not register with the cloud; will retry");
      this.registerTimer = setTimeout(() => void this.register(), wait);
      this.registerTimer.unref();
    }
  }

  get claimed(): boolean {
    return this.access?.users.some((u) => u.role === "owner") ?? false;
  }

  /** A fresh claim code from the cloud (the previous one stops working). */
  async newClaimCode(): Promise<{ claim_code: string; claim_expires_at: string }> {
    const cred = this.cred;
    if (!this.cfg.cloudUrl || !cred) throw new CloudUnavailableError("this hub has not registered with the cloud yet (it keeps trying); try again once GET /cloud shows a hub_id");
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.cfg.cloudUrl}/hub/claim-code`, {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from(`${cred.hubId}:${cred.secret}`).toString("base64")}` },
        signal: AbortSignal.timeout(this.cfg.uplink.requestTimeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      throw new CloudUnavailableError(`the cloud did not answer: ${e.name === "TimeoutError" ? `no answer within ${this.cfg.uplink.requestTimeoutMs} ms` : (e.cause?.code ?? e.message)}`);
    }
    if (!res.ok) throw new CloudUnavailableError(`the cloud refused a new claim code (HTTP ${res.status}): ${text.slice(0, 200)}`);
    let c: { claim_code: string; claim_expires_at: string };
    try {
      c = JSON.parse(text) as typeof c;
    } catch {
      c = { claim_code: "", claim_expires_at: "" };
    }
    // A 2xx from a captive portal or a proxy is not a claim code.
    if (typeof c?.claim_code !== "string" || !c.claim_code || !Number.isFinite(Date.parse(c.claim_expires_at))) {
      throw new CloudUnavailableError(`the cloud's answer is not a claim code (HTTP ${res.status}): ${text.slice(0, 200)}`);
    }
    this.claim = { code: c.claim_code, expiresAt: Date.parse(c.claim_expires_at) };
    await this.committer.write(metaOp("cloud_claim", JSON.stringify(this.claim)), { now: true });
    this.log.info({ claimCode: c.claim_code }, `new claim code ${c.claim_code}`);
    return c;
  }

  // --- the link ---

  /** Set once the local API listens; sent now if the link is up, else on connect. */
  setLocalApiUrl(url: string): void {
    this.localApiUrl = url;
    this.link.send({ type: "hello", local_api_url: url });
  }

  private onLinkOpen() {
    this.link.send({ type: "hello", local_api_url: this.localApiUrl });
    for (const d of this.devices.all()) this.dirtyState.add(d.deviceId);
    this.flushState();
  }

  private markState(deviceId: string) {
    this.dirtyState.add(deviceId);
    if (!this.stateTimer && this.link.connected) {
      this.stateTimer = setTimeout(() => this.flushState(), this.cfg.link.stateThrottleMs);
      this.stateTimer.unref();
    }
  }

  private flushState() {
    this.stateTimer = null;
    if (!this.link.connected || this.dirtyState.size === 0) return;
    const states: LatestState[] = [];
    for (const id of this.dirtyState) {
      if (!this.devices.has(id)) continue;
      const d = this.devices.get(id);
      const st = this.devices.state(id);
      states.push({
        device_id: id,
        ts: st.latest?.ts ?? st.lastSeen ?? this.clock.now(),
        online: d.status === "online",
        firmware_version: d.firmware_version,
        power: st.latest?.power ?? null,
        voltage: st.latest?.voltage ?? null,
        current: st.latest?.current ?? null,
        energy_wh: Math.round(d.energy_kwh * 1_000_000) / 1000,
        relay_state: d.relay_state,
      });
    }
    this.dirtyState.clear();
    for (let i = 0; i < states.length; i += 500) this.link.send({ type: "state", devices: states.slice(i, i + 500) });
  }

  private onBadFrame(raw: string, reason: string) {
    this.metrics.linkFrames.inc({ outcome: "bad" });
    this.log.warn({ reason, frame: raw.slice(0, 200) }, "bad frame from the cloud ignored");
    // A command we can name gets a status back (A19); anything else is only counted.
    const id = (() => {
      try {
        const v = JSON.parse(raw) as { type?: unknown; id?: unknown };
        return v && v.type === "command" && typeof v.id === "string" && v.id.length <= 64 ? v.id : null;
      } catch {
        return null;
      }
    })();
    if (id) this.sendResult({ type: "command_result", id, status: "rejected", relay_state: null, reason: `malformed command: ${reason}`.slice(0, 300), at: this.clock.now() });
  }

  private sendResult(r: LinkCommandResult) {
    if (!this.link.send(r)) this.log.warn({ commandId: r.id, status: r.status }, "command result not sent: the link is down (the cloud redelivers; the hub answers from its record)");
  }

  private async onFrame(f: LinkDown): Promise<void> {
    this.metrics.linkFrames.inc({ outcome: f.type });
    try {
      if (f.type === "command") await this.onCommand(f);
      else if (f.type === "device_config") await this.applyDeviceConfig(f);
      else if (f.type === "schedule_config") await this.applyScheduleConfig(f);
      else if (f.type === "device_pairing") await this.applyDevicePairing(f);
      else if (f.type === "device_removed") await this.applyDeviceRemoved(f);
      else if (f.type === "access") await this.applyAccess(f);
    } catch (err) {
      this.log.error({ err: (err as Error).message, type: f.type }, "cloud frame not applied");
    }
  }

  /** A19 / F13: unknown devices and expired commands are answered without touching MQTT; ids run at most once. */
  private async onCommand(c: LinkCommand) {
    const at = this.clock.now();
    // F13: an id this hub has run (or is running) answers with its real result, also once expired — the first
    // result may have been lost with the link — so the record is looked up before the expiry is checked.
    const known = this.commands.lookup(`cloud:${c.id}`);
    if (known) {
      const r = await known;
      return this.sendResult({ type: "command_result", id: c.id, status: r.status === "pending" ? "timeout" : r.status, relay_state: r.relay_state, reason: null, at: this.clock.now() });
    }
    if (Date.parse(c.expires_at) <= at) {
      this.log.info({ commandId: c.id, deviceId: c.device_id }, "expired cloud command rejected");
      return this.sendResult({ type: "command_result", id: c.id, status: "expired", relay_state: null, reason: `expired at ${c.expires_at}`, at });
    }
    if (!this.devices.has(c.device_id)) {
      return this.sendResult({ type: "command_result", id: c.id, status: "rejected", relay_state: null, reason: `no device '${c.device_id.slice(0, 64)}' on this hub`, at });
    }
    const r = await this.commands.execute(c.device_id, c.command, { commandId: `cloud:${c.id}`, source: "cloud" });
    const status = r.status === "pending" ? "timeout" : r.status;
    this.sendResult({ type: "command_result", id: c.id, status, relay_state: r.relay_state, reason: null, at: this.clock.now() });
  }

  // --- config from the cloud (issue 6 §5) ---
  // The conflict rule (shared/schemas/sync.ts), the same as the cloud's for hub rows: between two edits the
  // higher version wins, and the hub's at equal versions; a deletion is final, whatever the versions; only a
  // pairing newer than a deletion brings a device id back. After every frame the hub queues its own record of
  // the item (the echo): the cloud stops pushing once it sees a version at least its own, and takes the hub's.

  /** Queues the hub's current record of a config item for the cloud. */
  private async echo(kind: "device" | "schedule", ref: string): Promise<void> {
    await this.committer.write(this.outbox.insertOp(kind, ref, this.clock.now()), { now: true });
    this.uplink.kick();
  }

  private tombstone(kind: "device" | "schedule", ref: string, deviceId: string, version: number): void {
    this.db.sqlite
      .prepare("INSERT INTO sync_tombstones (kind, ref, device_id, version) VALUES (?, ?, ?, ?) ON CONFLICT(kind, ref) DO UPDATE SET version = max(version, excluded.version)")
      .run(kind, ref, deviceId, version);
  }

  private deviceTombstone(deviceId: string): { version: number } | undefined {
    return this.db.sqlite.prepare("SELECT version FROM sync_tombstones WHERE kind = 'device' AND ref = ?").get(deviceId) as { version: number } | undefined;
  }

  /** A cloud rename: applied when newer than the hub's name; a deleted device stays deleted. */
  private async applyDeviceConfig(f: LinkDeviceConfig) {
    if (!this.devices.has(f.device_id)) {
      // Deleted here: the tombstone answers. Never here (a cloud pairing not applied yet): its pairing frame
      // carries the name, so there is nothing to answer.
      if (this.deviceTombstone(f.device_id)) await this.echo("device", f.device_id);
      return;
    }
    const row = this.db.sqlite.prepare("SELECT name, name_version FROM devices WHERE device_id = ?").get(f.device_id) as { name: string; name_version: number } | undefined;
    if (!row || f.version <= row.name_version) return this.echo("device", f.device_id);
    // One statement sets the name and its version, so the rename trigger keeps the cloud's version and queues the echo.
    this.db.sqlite.prepare("UPDATE devices SET name = ?, name_version = ? WHERE device_id = ?").run(f.name, f.version, f.device_id);
    this.devices.applyName(f.device_id, f.name);
    this.log.info({ deviceId: f.device_id, version: f.version }, "device renamed from the cloud");
    this.uplink.kick();
  }

  /**
   * A device created in the cloud: paired here with the hash of the code chosen there, unless the hub has this
   * pairing or a newer one, or deleted the id after the pairing was made. Synchronous up to the pairing, so the
   * frames that follow (its schedules) find the device.
   */
  private async applyDevicePairing(f: LinkDevicePairing) {
    if (this.devices.has(f.device_id)) {
      if (this.devices.state(f.device_id).createdAt >= f.paired_at) return this.echo("device", f.device_id);
      // An older pairing of this id: the newer one from the cloud replaces it.
      this.devices.remove(f.device_id);
    } else if ((this.deviceTombstone(f.device_id)?.version ?? -1) >= f.paired_at) {
      return this.echo("device", f.device_id);
    }
    try {
      this.devices.adopt({ deviceId: f.device_id, name: f.name, nameVersion: f.name_version, family: f.family, channel: f.channel, secretHash: f.secret_hash, pairedAt: f.paired_at });
    } catch (err) {
      // Not pairable here (a plug family this hub does not run): the hub answers with a deletion, so the cloud drops it.
      this.log.warn({ deviceId: f.device_id, err: (err as Error).message }, "device from the cloud not paired; deleted on both sides");
      this.tombstone("device", f.device_id, f.device_id, f.paired_at);
      return this.echo("device", f.device_id);
    }
    this.log.info({ deviceId: f.device_id, family: f.family }, "device paired from the cloud");
    this.uplink.kick();
  }

  /** A device deleted in the cloud: removed here (with its schedules), unless it was paired here after the deletion. */
  private async applyDeviceRemoved(f: LinkDeviceRemoved) {
    if (this.devices.has(f.device_id)) {
      if (this.devices.state(f.device_id).createdAt > f.version) {
        this.log.info({ deviceId: f.device_id }, "device deleted in the cloud was paired again here since; kept");
        return this.echo("device", f.device_id);
      }
      this.devices.remove(f.device_id);
      // The deletion's version is the cloud's (the trigger stamped the hub's clock).
      this.db.sqlite.prepare("UPDATE sync_tombstones SET version = ? WHERE kind = 'device' AND ref = ?").run(f.version, f.device_id);
      this.log.info({ deviceId: f.device_id, version: f.version }, "device removed from the cloud");
    } else {
      this.tombstone("device", f.device_id, f.device_id, f.version);
    }
    await this.echo("device", f.device_id);
  }

  /** A schedule created, edited or deleted in the cloud. */
  private async applyScheduleConfig(f: LinkScheduleConfig) {
    const s = this.db.sqlite;
    const current = s.prepare("SELECT version FROM schedules WHERE id = ?").get(f.schedule_id) as { version: number } | undefined;
    const deletedHere = !current && s.prepare("SELECT 1 FROM sync_tombstones WHERE kind = 'schedule' AND ref = ?").get(f.schedule_id) !== undefined;
    const echo = () => this.echo("schedule", f.schedule_id);
    if (deletedHere) {
      if (f.deleted) this.tombstone("schedule", f.schedule_id, f.device_id, f.version);
      return echo(); // final: an edit never brings it back
    }
    if (f.deleted) {
      if (current) {
        s.prepare("DELETE FROM schedules WHERE id = ?").run(f.schedule_id);
        s.prepare("UPDATE sync_tombstones SET version = ? WHERE kind = 'schedule' AND ref = ?").run(f.version, f.schedule_id);
        this.log.info({ scheduleId: f.schedule_id }, "schedule deleted from the cloud");
        await this.schedules.reconcile(f.device_id, "edit");
      } else {
        this.tombstone("schedule", f.schedule_id, f.device_id, f.version);
      }
      return echo();
    }
    if (!this.devices.has(f.device_id)) {
      // The device was deleted here: its schedules went with it. A device not here yet (its cloud pairing has
      // not arrived) gets the schedule when the cloud sends it again after the pairing.
      if (this.deviceTombstone(f.device_id)) {
        this.tombstone("schedule", f.schedule_id, f.device_id, f.version);
        return echo();
      }
      return;
    }
    if (current && f.version <= current.version) return echo();
    const parsed = CreateScheduleRequest.safeParse(f.rule);
    if (!parsed.success) {
      this.log.warn({ scheduleId: f.schedule_id, issues: parsed.error.issues.slice(0, 3) }, "schedule from the cloud is not valid here; kept the hub's");
      return echo();
    }
    const r = parsed.data;
    const row = {
      id: f.schedule_id,
      device_id: f.device_id,
      type: r.type,
      name: r.name ?? null,
      days: r.type === "once" ? null : JSON.stringify([...r.days].sort()),
      at: r.type === "window" ? null : r.at,
      from_time: r.type === "window" ? r.from : null,
      to_time: r.type === "window" ? r.to : null,
      action: r.action,
      time_zone: r.time_zone ?? this.cfg.timeZone,
      enabled: r.enabled ? 1 : 0,
      reassert_on_boot: r.reassert_on_boot ? 1 : 0,
      created_at: f.created_at ?? this.clock.now(),
      version: f.version,
    };
    // A changed version: the update trigger stays quiet and the echo below carries the cloud's version.
    s.prepare(
      `INSERT INTO schedules (id, device_id, type, name, days, at, from_time, to_time, action, time_zone, enabled, reassert_on_boot, created_at, version)
       VALUES (@id, @device_id, @type, @name, @days, @at, @from_time, @to_time, @action, @time_zone, @enabled, @reassert_on_boot, @created_at, @version)
       ON CONFLICT(id) DO UPDATE SET device_id = excluded.device_id, type = excluded.type, name = excluded.name, days = excluded.days, at = excluded.at,
         from_time = excluded.from_time, to_time = excluded.to_time, action = excluded.action, time_zone = excluded.time_zone, enabled = excluded.enabled,
         reassert_on_boot = excluded.reassert_on_boot, version = excluded.version`,
    ).run(row);
    this.log.info({ scheduleId: f.schedule_id, version: f.version }, "schedule applied from the cloud");
    await this.schedules.reconcile(f.device_id, "edit");
    await echo();
  }

  /**
   * The cloud refuses this hub (removed in the cloud, or its credential revoked): no cloud user keeps local access
   * through it. The list the cloud last sent stops counting — it will never send the revocation itself.
   */
  private async revokeCloudAccess(reason: string) {
    if (!this.access || this.access.users.length === 0) return;
    this.access = { ...this.access, users: [] };
    this.bus.emit("cloudAccessChanged");
    this.log.warn({ reason }, "cloud users' local access revoked: the cloud refuses this hub");
    await this.committer.write(metaOp("cloud_access", JSON.stringify(this.access)), { now: true }).catch((err: Error) => this.log.error({ err: err.message }, "revoked cloud access not saved"));
  }

  private async applyAccess(f: LinkAccess) {
    this.access = { users: f.users, publicKeyPem: f.public_key_pem, issuer: f.issuer, issuedAt: f.issued_at };
    this.bus.emit("cloudAccessChanged");
    await this.committer.write(metaOp("cloud_access", JSON.stringify(this.access)), { now: true });
    this.log.info({ users: f.users.length }, "cloud access list updated");
  }

  status(): SyncStatus {
    const o = this.outbox.stats();
    const age = oldestAgeS(o);
    const claimValid = this.claim && this.claim.expiresAt > this.clock.now() && !this.claimed;
    return {
      enabled: this.enabled,
      cloud_url: this.cfg.cloudUrl,
      hub_id: this.cred?.hubId ?? null,
      registered: this.cred !== null,
      claimed: this.claimed,
      claim_code: claimValid ? this.claim!.code : null,
      claim_expires_at: claimValid ? new Date(this.claim!.expiresAt).toISOString() : null,
      link: { ...this.link.status },
      uplink: { ...this.uplink.status },
      outbox: { ...o, oldest_unsent_age_s: age },
    };
  }
}

/** Seconds the oldest waiting row has waited (queued_at is SQLite's wall clock), or null when the outbox is empty. */
function oldestAgeS(o: OutboxStats): number | null {
  return o.oldest_queued_at === null ? null : Math.max(0, Math.round((Date.now() - o.oldest_queued_at) / 1000));
}

function metaOp(key: string, value: string): WriteOp {
  return { sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", params: [key, value] };
}

export const defaultHubName = () => `Smart plug hub (${hostname()})`;
