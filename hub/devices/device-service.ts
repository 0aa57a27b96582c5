// Paired plugs: pairing, credentials, live state (online, relay, power, energy) and the reading write path.
import { eq } from "drizzle-orm";
import type { HubDb } from "../db/open-db.js";
import { devices as devicesTable } from "../db/schema.js";
import type { Logger } from "../../shared/logger.js";
import type { Clock } from "../../shared/clock.js";
import type { HubMetrics } from "../metrics.js";
import type { HubBus, Reading } from "../bus.js";
import type { PlugAdapter, PlugEvent, PlugIdentity } from "../adapters/types.js";
import type { GroupCommitter } from "../ingest/group-committer.js";
import type { CreateDeviceRequest, Device, PlugFamily } from "../../shared/schemas/devices.js";
import { ConflictError, NotFoundError, ValidationError } from "../../shared/problem.js";
import { hashSecret, sha256, verifySecret, SCRYPT_PLUG } from "./secrets.js";
import { accumulateEnergy, EMPTY_ENERGY, type EnergyState } from "./energy.js";
import type { ScryptOptions } from "node:crypto";

export interface DeviceState extends PlugIdentity {
  idx: number;
  name: string;
  secretHash: string;
  createdAt: number;
  online: boolean;
  firmware: string | null;
  relayOn: boolean | null;
  lastSeen: number | null;
  energy: EnergyState;
  latest: Reading | null;
  dirty: boolean;
}

export interface DeviceServiceOptions {
  /** How often live state (energy accumulator, relay, last seen) is written back, ms. */
  stateFlushMs: number;
  /** Power is not integrated across gaps longer than this, ms (PROTOCOLS.md §5). */
  maxGapMs: number;
  /** What pairing tells the user to type into the plug as the MQTT host and port. */
  publicHost: string;
  /** The broker's port; a getter, since port 0 means "whatever the broker got". */
  mqttPort: () => number;
  secretCost?: ScryptOptions;
}

const SCALE = { power: 10, voltage: 10, current: 1000, counter: 1000 } as const;
const INSERT_READING = "INSERT OR IGNORE INTO readings (ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh) VALUES (?, ?, ?, ?, ?, ?, ?)";
const UPDATE_STATE = `UPDATE devices SET online = ?, firmware = ?, relay_on = ?, last_seen = ?, energy_wh = ?, counter_wh = ?,
  last_power_w = ?, last_reading_ts = ?, state_as_of = ? WHERE idx = ?`;
const scaled = (v: number | null, k: number) => (v === null ? null : Math.round(v * k));

export class DeviceService {
  private readonly byId = new Map<string, DeviceState>();
  private readonly byUser = new Map<string, DeviceState>();
  /** mqttUser → sha256 of the last secret that passed scrypt, so reconnect storms cost a hash, not scrypt. */
  private readonly verified = new Map<string, string>();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly db: HubDb,
    private readonly committer: GroupCommitter,
    private readonly adapters: Map<PlugFamily, PlugAdapter>,
    private readonly bus: HubBus,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly opts: DeviceServiceOptions,
  ) {}

  /** Loads paired devices and replays readings committed after their last state flush. */
  start(): void {
    const rows = this.db.orm.select().from(devicesTable).all();
    let minAsOf = Infinity;
    const byIdx = new Map<number, { st: DeviceState; asOf: number }>();
    for (const r of rows) {
      const st: DeviceState = {
        idx: r.idx,
        deviceId: r.deviceId,
        name: r.name,
        family: r.family as PlugFamily,
        mqttUser: r.mqttUser,
        topic: r.topic,
        channel: r.channel,
        secretHash: r.secretHash,
        createdAt: r.createdAt,
        online: false, // nobody is connected to a broker that just started
        firmware: r.firmware,
        relayOn: r.relayOn,
        lastSeen: r.lastSeen,
        energy: { energyWh: r.energyWh, counterWh: r.counterWh, lastPowerW: r.lastPowerW, lastTs: r.lastReadingTs },
        latest: null,
        dirty: false,
      };
      this.index(st);
      byIdx.set(r.idx, { st, asOf: r.stateAsOf });
      minAsOf = Math.min(minAsOf, r.stateAsOf);
    }
    if (rows.length > 0) {
      let replayed = 0;
      const q = this.db.sqlite.prepare("SELECT ts, device, power_dw, voltage_dv, current_ma, relay, counter_mwh FROM readings WHERE ts > ? ORDER BY ts");
      for (const row of q.iterate(minAsOf) as Iterable<Record<string, number | null>>) {
        const d = byIdx.get(row.device as number);
        if (!d || (row.ts as number) <= d.asOf) continue;
        this.applyStored(d.st, rowToReading(row), false);
        replayed++;
      }
      if (replayed) this.log.info({ replayed }, "energy state caught up from stored readings");
    }
    this.db.sqlite.prepare("UPDATE devices SET online = 0").run();
    this.flushTimer = setInterval(() => void this.flushState(), this.opts.stateFlushMs);
    this.flushTimer.unref();
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    await this.flushing;
    await this.flushState();
  }

  private index(st: DeviceState) {
    this.byId.set(st.deviceId, st);
    this.byUser.set(st.mqttUser, st);
  }

  adapterFor(family: PlugFamily): PlugAdapter {
    const a = this.adapters.get(family);
    if (!a) throw new ValidationError(`plug family '${family}' is not supported by this hub (supported: ${[...this.adapters.keys()].join(", ")})`);
    return a;
  }

  async pair(req: CreateDeviceRequest): Promise<Device & { mqtt: { host: string; port: number; client_id: string; username: string; password: string; topic: string } }> {
    const adapter = this.adapterFor(req.family);
    if (this.byId.has(req.device_id) || this.byUser.has(req.device_id)) throw new ConflictError(`device '${req.device_id}' is already paired`);
    const secretHash = await hashSecret(req.pairing_code, this.opts.secretCost ?? SCRYPT_PLUG);
    if (this.byId.has(req.device_id)) throw new ConflictError(`device '${req.device_id}' is already paired`);
    const now = this.clock.now();
    const topic = adapter.topicFor(req.device_id);
    const row = this.db.orm
      .insert(devicesTable)
      .values({ deviceId: req.device_id, name: req.name, family: req.family, mqttUser: req.device_id, topic, channel: req.channel, secretHash, createdAt: now, stateAsOf: now })
      .returning()
      .get();
    const st = this.track(row.idx, { deviceId: row.deviceId, name: row.name, family: req.family, topic, channel: req.channel, secretHash, createdAt: now });
    this.log.info({ deviceId: st.deviceId, family: st.family }, "device paired");
    return {
      ...this.toDevice(st),
      mqtt: { host: this.opts.publicHost, port: this.opts.mqttPort(), client_id: st.mqttUser, username: st.mqttUser, password: req.pairing_code, topic },
    };
  }

  /**
   * A device paired in the cloud (issue 6 §5), with the scrypt hash of the pairing code the user chose there (the
   * hub's own format; the code itself never travels): the plug connects here with that code. `pairedAt` and
   * `nameVersion` are the cloud's, so both sides answer the same. Synchronous, so link frames that follow see it.
   */
  adopt(d: { deviceId: string; name: string; nameVersion: number; family: PlugFamily; channel: number; secretHash: string; pairedAt: number }): Device {
    const adapter = this.adapterFor(d.family);
    if (this.byId.has(d.deviceId) || this.byUser.has(d.deviceId)) throw new ConflictError(`device '${d.deviceId}' is already paired`);
    const topic = adapter.topicFor(d.deviceId);
    // One statement with the cloud's name version, so the insert trigger keeps it and queues the echo.
    const { lastInsertRowid } = this.db.sqlite
      .prepare("INSERT INTO devices (device_id, name, family, mqtt_user, topic, channel, secret_hash, created_at, state_as_of, name_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .run(d.deviceId, d.name, d.family, d.deviceId, topic, d.channel, d.secretHash, d.pairedAt, this.clock.now(), d.nameVersion);
    const st = this.track(Number(lastInsertRowid), { deviceId: d.deviceId, name: d.name, family: d.family, topic, channel: d.channel, secretHash: d.secretHash, createdAt: d.pairedAt });
    this.log.info({ deviceId: st.deviceId, family: st.family }, "device paired from the cloud");
    return this.toDevice(st);
  }

  private track(idx: number, d: { deviceId: string; name: string; family: PlugFamily; topic: string; channel: number; secretHash: string; createdAt: number }): DeviceState {
    const st: DeviceState = {
      idx,
      deviceId: d.deviceId,
      name: d.name,
      family: d.family,
      mqttUser: d.deviceId,
      topic: d.topic,
      channel: d.channel,
      secretHash: d.secretHash,
      createdAt: d.createdAt,
      online: false,
      firmware: null,
      relayOn: null,
      lastSeen: null,
      energy: { ...EMPTY_ENERGY },
      latest: null,
      dirty: false,
    };
    this.index(st);
    this.bus.emit("deviceAdded", { deviceId: st.deviceId, family: st.family });
    return st;
  }

  list(): Device[] {
    return [...this.byId.values()].sort((a, b) => a.createdAt - b.createdAt || a.deviceId.localeCompare(b.deviceId)).map((s) => this.toDevice(s));
  }

  state(deviceId: string): DeviceState {
    const st = this.byId.get(deviceId);
    if (!st) throw new NotFoundError(`no device '${deviceId}'`);
    return st;
  }

  all(): IterableIterator<DeviceState> {
    return this.byId.values();
  }

  has(deviceId: string): boolean {
    return this.byId.has(deviceId);
  }

  get(deviceId: string): Device {
    return this.toDevice(this.state(deviceId));
  }

  rename(deviceId: string, name: string): Device {
    const st = this.state(deviceId);
    this.db.orm.update(devicesTable).set({ name }).where(eq(devicesTable.idx, st.idx)).run();
    st.name = name;
    return this.toDevice(st);
  }

  /** A name the database already holds (applied from the cloud by the sync): only the live state changes. */
  applyName(deviceId: string, name: string): void {
    this.state(deviceId).name = name;
  }

  /** Removes a device: its credentials stop working at once and its session is dropped (bus → broker). */
  remove(deviceId: string): void {
    const st = this.state(deviceId);
    this.db.orm.delete(devicesTable).where(eq(devicesTable.idx, st.idx)).run();
    this.byId.delete(st.deviceId);
    this.byUser.delete(st.mqttUser);
    this.verified.delete(st.mqttUser);
    this.adapters.get(st.family)?.forget?.(st);
    this.log.info({ deviceId }, "device removed");
    this.bus.emit("deviceRemoved", { deviceId });
  }

  async authenticate(username: string, password: Buffer): Promise<PlugIdentity | null> {
    const st = this.byUser.get(username);
    if (!st) {
      // Same work for an unknown plug as for a wrong secret (A1: no oracle).
      await verifySecret(password, DUMMY_HASH);
      return null;
    }
    const h = sha256(password);
    if (this.verified.get(username) === h) return st;
    const ok = await verifySecret(password, st.secretHash);
    // The device may have been removed while scrypt ran.
    if (!ok || this.byUser.get(username) !== st) return null;
    this.verified.set(username, h);
    return st;
  }

  identity(mqttUser: string): DeviceState | undefined {
    return this.byUser.get(mqttUser);
  }

  onConnected(plug: PlugIdentity): void {
    const st = this.byId.get(plug.deviceId);
    if (st) this.setOnline(st, true);
  }

  onDisconnected(plug: PlugIdentity): void {
    const st = this.byId.get(plug.deviceId);
    if (st) this.setOnline(st, false);
  }

  /** Applies a plug's normalized events; `done` runs once anything durable is committed. */
  handleEvents(plug: PlugIdentity, events: PlugEvent[], done: (err: Error | null) => void): void {
    const st = this.byId.get(plug.deviceId);
    if (!st) return done(null);
    const now = this.clock.now();
    st.lastSeen = now;
    let reading: Reading | null = null;
    for (const ev of events) {
      switch (ev.kind) {
        case "reading":
          reading = ev.reading;
          break;
        case "availability":
          if (ev.firmware !== undefined && ev.firmware !== st.firmware) {
            st.firmware = ev.firmware;
            st.dirty = true;
          }
          this.setOnline(st, ev.online);
          break;
        case "relay":
          this.setRelay(st, ev.relayOn, null);
          break;
        case "commandResult":
          if (ev.relayOn !== null) this.setRelay(st, ev.relayOn, ev.commandId);
          else if (!ev.ok && ev.commandId) this.bus.emit("commandRejected", { deviceId: st.deviceId, commandId: ev.commandId });
          break;
      }
    }
    if (!reading) {
      st.dirty = true;
      return done(null);
    }
    const r = reading;
    this.bus.emit("readingReceived", { deviceId: st.deviceId, reading: r });
    const params = [r.ts, st.idx, scaled(r.power, SCALE.power), scaled(r.voltage, SCALE.voltage), scaled(r.current, SCALE.current), r.relayOn === null ? null : r.relayOn ? 1 : 0, scaled(r.counterWh, SCALE.counter)];
    this.committer.submit({ sql: INSERT_READING, params }, (err, changes) => {
      if (!err) {
        if (changes[0] === 0) this.metrics.duplicates.inc();
        else {
          this.metrics.stored.inc();
          if (this.byId.get(st.deviceId) === st) this.applyStored(st, r, true);
        }
      }
      done(err);
    }, { ingest: true });
  }

  private applyStored(st: DeviceState, r: Reading, live: boolean) {
    st.energy = accumulateEnergy(st.energy, r, this.opts.maxGapMs);
    if (!st.latest || r.ts >= st.latest.ts) st.latest = r;
    st.dirty = true;
    if (live) this.bus.emit("readingStored", { deviceId: st.deviceId, reading: r });
  }

  private setOnline(st: DeviceState, online: boolean) {
    if (st.online === online) return;
    st.online = online;
    st.dirty = true;
    const at = this.clock.now();
    if (online) st.lastSeen = at;
    this.metrics.devicesOnline.set([...this.byId.values()].filter((d) => d.online).length);
    this.log.info({ deviceId: st.deviceId, lastSeen: st.lastSeen }, online ? "device online" : "device offline");
    this.bus.emit("deviceStatusChanged", { deviceId: st.deviceId, online, at });
  }

  private setRelay(st: DeviceState, relayOn: boolean, commandId: string | null) {
    const at = this.clock.now();
    this.bus.emit("relayReported", { deviceId: st.deviceId, relayOn, commandId, at });
    if (st.relayOn === relayOn) return;
    st.relayOn = relayOn;
    st.dirty = true;
    this.bus.emit("relayChanged", { deviceId: st.deviceId, relayOn, at });
  }

  /** Writes dirty live state back with the next group commit. */
  flushState(): Promise<void> {
    const dirty = [...this.byId.values()].filter((s) => s.dirty);
    if (dirty.length === 0) return Promise.resolve();
    for (const s of dirty) s.dirty = false;
    const ops = dirty.map((s) => {
      const e = s.energy;
      return { sql: UPDATE_STATE, params: [s.online ? 1 : 0, s.firmware, s.relayOn === null ? null : s.relayOn ? 1 : 0, s.lastSeen, e.energyWh, e.counterWh, e.lastPowerW, e.lastTs, e.lastTs ?? 0, s.idx] };
    });
    this.flushing = this.committer.write(ops).then(
      () => undefined,
      (err: Error) => {
        for (const s of dirty) s.dirty = true;
        this.log.warn({ err: err.message }, "device state flush failed; will retry");
      },
    );
    return this.flushing;
  }

  toDevice(s: DeviceState): Device {
    return {
      device_id: s.deviceId,
      name: s.name,
      family: s.family,
      channel: s.channel,
      status: s.online ? "online" : "offline",
      relay_state: s.relayOn,
      firmware_version: s.firmware,
      last_seen: s.lastSeen === null ? null : new Date(s.lastSeen).toISOString(),
      power: s.latest?.power ?? (s.online ? s.energy.lastPowerW : null),
      energy_kwh: Math.round(s.energy.energyWh) / 1000,
      created_at: new Date(s.createdAt).toISOString(),
    };
  }
}

/** A valid hash of a random secret, verified against for unknown users. */
const DUMMY_HASH = "scrypt$4096$8$4$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

export function rowToReading(row: Record<string, number | null>): Reading {
  const un = (v: number | null | undefined, k: number) => (v === null || v === undefined ? null : v / k);
  return {
    ts: row.ts as number,
    power: un(row.power_dw, SCALE.power),
    voltage: un(row.voltage_dv, SCALE.voltage),
    current: un(row.current_ma, SCALE.current),
    relayOn: row.relay === null || row.relay === undefined ? null : row.relay === 1,
    counterWh: un(row.counter_mwh, SCALE.counter),
  };
}
