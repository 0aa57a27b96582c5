// Alerts (issue 4 §6): device offline after a grace period, power above a threshold, "appliance finished"
// (a run above a threshold, then idle for N minutes), storage trouble, and `raise` for the anomaly
// detector. One active alert per device and kind: a condition that persists is never alerted twice.
// Conditions are checked against the injected clock (every few seconds, and on events), so tests drive time.
// An alert whose write fails is kept in memory, served, pushed and counted all the same, and written once
// the database takes writes again: the storage alert is raised exactly when the disk is full, and a write
// that threw from a timer there took the whole hub down (RELIABILITY F9).
import { randomUUID } from "node:crypto";
import type { HubDb } from "../db/open-db.js";
import type { HubBus } from "../bus.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { HubMetrics } from "../metrics.js";
import type { Alert, AlertSettings } from "../../shared/schemas/alerts.js";
import { NotFoundError } from "../../shared/problem.js";
import type { DeviceService } from "../devices/device-service.js";

type Kind = Alert["kind"];

interface Row {
  id: string;
  device_id: string | null;
  kind: Kind;
  message: string;
  details: string | null;
  started_at: number;
  resolved_at: number | null;
  acknowledged_at: number | null;
}

const DEFAULTS: AlertSettings = { offline_grace_s: 300, power_above_w: null, finished_above_w: null, finished_idle_min: 5 };

export class AlertService {
  private readonly offlineSince = new Map<string, number>();
  private readonly runs = new Map<string, { running: boolean; belowSince: number | null; startedAt: number }>();
  private readonly settingsCache = new Map<string, AlertSettings>();
  private timer: NodeJS.Timeout | null = null;
  /** Alerts whose latest state is not in the database yet; `inserted`: whether an older state is. */
  private readonly unsaved = new Map<string, { row: Row; inserted: boolean }>();

  constructor(
    private readonly db: HubDb,
    private readonly devices: DeviceService,
    private readonly bus: HubBus,
    private readonly metrics: HubMetrics,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    bus.on("deviceStatusChanged", ({ deviceId, online, at }) => {
      if (online) {
        this.offlineSince.delete(deviceId);
        this.resolve(deviceId, "device_offline");
      } else this.offlineSince.set(deviceId, at);
      this.check();
    });
    bus.on("readingReceived", ({ deviceId, reading }) => {
      if (reading.power !== null) this.onPower(deviceId, reading.power, reading.ts);
    });
    bus.on("deviceRemoved", ({ deviceId }) => {
      for (const kind of ["device_offline", "power_above"] as const) this.resolve(deviceId, kind);
      this.offlineSince.delete(deviceId);
      this.runs.delete(deviceId);
      this.settingsCache.delete(deviceId);
    });
  }

  start(intervalMs = 5000): void {
    // Devices that were paired but are not connected at start count as offline from now.
    const now = this.clock.now();
    for (const st of this.devices.all()) if (!st.online) this.offlineSince.set(st.deviceId, now);
    this.timer = setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  settings(deviceId: string): AlertSettings {
    let s = this.settingsCache.get(deviceId);
    if (!s) {
      const r = this.db.sqlite.prepare("SELECT * FROM alert_settings WHERE device_id = ?").get(deviceId) as
        | { offline_grace_s: number | null; power_above_w: number | null; finished_above_w: number | null; finished_idle_min: number | null }
        | undefined;
      s = r ? { offline_grace_s: r.offline_grace_s, power_above_w: r.power_above_w, finished_above_w: r.finished_above_w, finished_idle_min: r.finished_idle_min ?? 5 } : { ...DEFAULTS };
      this.settingsCache.set(deviceId, s);
    }
    return s;
  }

  setSettings(deviceId: string, s: AlertSettings): AlertSettings {
    this.devices.state(deviceId);
    this.db.sqlite
      .prepare(
        `INSERT INTO alert_settings (device_id, offline_grace_s, power_above_w, finished_above_w, finished_idle_min) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(device_id) DO UPDATE SET offline_grace_s = excluded.offline_grace_s, power_above_w = excluded.power_above_w,
         finished_above_w = excluded.finished_above_w, finished_idle_min = excluded.finished_idle_min`,
      )
      .run(deviceId, s.offline_grace_s, s.power_above_w, s.finished_above_w, s.finished_idle_min);
    this.settingsCache.set(deviceId, s);
    return s;
  }

  private onPower(deviceId: string, power: number, ts: number) {
    const s = this.settings(deviceId);
    if (s.power_above_w !== null) {
      if (power > s.power_above_w) this.raise({ deviceId, kind: "power_above", message: `power ${power} W is above ${s.power_above_w} W`, details: { power_w: power, threshold_w: s.power_above_w } });
      else this.resolve(deviceId, "power_above");
    }
    if (s.finished_above_w !== null) {
      const run = this.runs.get(deviceId) ?? { running: false, belowSince: null, startedAt: ts };
      if (power > s.finished_above_w) {
        if (!run.running) run.startedAt = ts;
        run.running = true;
        run.belowSince = null;
      } else if (run.running && run.belowSince === null) run.belowSince = ts;
      this.runs.set(deviceId, run);
      this.check();
    }
  }

  /** Evaluates the time-based conditions against the clock (and retries alerts not written yet). */
  check(): void {
    for (const { row, inserted } of [...this.unsaved.values()]) this.save(row, inserted);
    const now = this.clock.now();
    for (const [deviceId, since] of this.offlineSince) {
      const grace = this.settings(deviceId).offline_grace_s;
      if (grace !== null && now - since >= grace * 1000 && this.devices.has(deviceId)) {
        this.raise({ deviceId, kind: "device_offline", message: `offline since ${new Date(since).toISOString()}`, details: { since: new Date(since).toISOString() } });
      }
    }
    for (const [deviceId, run] of this.runs) {
      const s = this.settings(deviceId);
      if (!run.running || run.belowSince === null) continue;
      if (now - run.belowSince >= s.finished_idle_min * 60_000) {
        run.running = false;
        run.belowSince = null;
        const id = this.raise({ deviceId, kind: "appliance_finished", message: "the appliance finished its run", details: { run_started_at: new Date(run.startedAt).toISOString() } });
        // A finished run is news, not a lasting condition: it is resolved at once so the next run alerts again.
        if (id) this.resolve(deviceId, "appliance_finished");
      }
    }
  }

  /** Opens an alert unless one of this device and kind is active; returns its id, or null when deduplicated. */
  raise(a: { deviceId: string | null; kind: Kind; message: string; details?: Record<string, unknown> }): string | null {
    if (this.findActive(a.kind, a.deviceId)) return null;
    const row: Row = { id: randomUUID(), device_id: a.deviceId, kind: a.kind, message: a.message, details: a.details ? JSON.stringify(a.details) : null, started_at: this.clock.now(), resolved_at: null, acknowledged_at: null };
    this.save(row, false);
    this.metrics.alerts.inc({ kind: a.kind });
    this.log.warn({ deviceId: a.deviceId, kind: a.kind, alertId: row.id }, "alert raised");
    this.bus.emit("alertChanged", { alert: toAlert(row) });
    return row.id;
  }

  resolve(deviceId: string | null, kind: Kind): void {
    const row = this.findActive(kind, deviceId);
    if (!row) return;
    row.resolved_at = this.clock.now();
    this.save(row, this.isInserted(row.id));
    this.bus.emit("alertChanged", { alert: toAlert(row) });
  }

  /** Writes an alert's state; on failure (disk full) keeps it for check() to retry. Never throws. */
  private save(row: Row, inserted: boolean): void {
    try {
      if (inserted) this.db.sqlite.prepare("UPDATE alerts SET resolved_at = ?, acknowledged_at = ? WHERE id = ?").run(row.resolved_at, row.acknowledged_at, row.id);
      else {
        this.db.sqlite
          .prepare("INSERT INTO alerts (id, device_id, kind, message, details, started_at, resolved_at, acknowledged_at) VALUES (@id, @device_id, @kind, @message, @details, @started_at, @resolved_at, @acknowledged_at)")
          .run(row);
      }
      if (this.unsaved.delete(row.id)) this.log.info({ alertId: row.id }, "alert saved");
    } catch (err) {
      if (!this.unsaved.has(row.id)) this.log.error({ err: (err as Error).message, alertId: row.id, kind: row.kind }, "alert not saved; kept in memory until the database takes writes");
      this.unsaved.set(row.id, { row, inserted });
    }
  }

  private isInserted(id: string): boolean {
    return this.unsaved.get(id)?.inserted ?? true;
  }

  /** The row as it is now: the unsaved state when there is one. */
  private current(row: Row): Row {
    return this.unsaved.get(row.id)?.row ?? row;
  }

  private findActive(kind: Kind, deviceId: string | null): Row | undefined {
    const stored = this.db.sqlite.prepare("SELECT * FROM alerts WHERE kind = ? AND device_id IS ? AND resolved_at IS NULL").get(kind, deviceId) as Row | undefined;
    if (stored && this.current(stored).resolved_at === null) return this.current(stored);
    for (const { row } of this.unsaved.values()) if (row.kind === kind && row.device_id === deviceId && row.resolved_at === null) return row;
    return undefined;
  }

  private byId(id: string): Row | undefined {
    const u = this.unsaved.get(id);
    if (u) return u.row;
    return this.db.sqlite.prepare("SELECT * FROM alerts WHERE id = ?").get(id) as Row | undefined;
  }

  list(q: { active?: boolean; deviceId?: string; limit: number }): Alert[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.active === true) where.push("resolved_at IS NULL");
    if (q.active === false) where.push("resolved_at IS NOT NULL");
    if (q.deviceId) {
      where.push("device_id = ?");
      params.push(q.deviceId);
    }
    const sql = `SELECT * FROM alerts ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY started_at DESC LIMIT ?`;
    const rows = (this.db.sqlite.prepare(sql).all(...params, q.limit + this.unsaved.size) as Row[]).map((r) => this.current(r));
    const seen = new Set(rows.map((r) => r.id));
    for (const { row } of this.unsaved.values()) if (!seen.has(row.id)) rows.push(row);
    const wanted = (r: Row) => (q.active === undefined || (r.resolved_at === null) === q.active) && (!q.deviceId || r.device_id === q.deviceId);
    return rows
      .filter(wanted)
      .sort((a, b) => b.started_at - a.started_at)
      .slice(0, q.limit)
      .map(toAlert);
  }

  /** The device an alert is about (null: hub-wide); 404 for an unknown id. */
  deviceOf(id: string): string | null {
    const row = this.byId(id);
    if (!row) throw new NotFoundError(`no alert '${id.slice(0, 64)}'`);
    return row.device_id;
  }

  acknowledge(id: string): Alert {
    const row = this.byId(id);
    if (!row) throw new NotFoundError(`no alert '${id.slice(0, 64)}'`);
    if (row.acknowledged_at === null) {
      row.acknowledged_at = this.clock.now();
      this.save(row, this.isInserted(id));
    }
    return toAlert(row);
  }
}

function toAlert(r: Row): Alert {
  const iso = (v: number | null) => (v === null ? null : new Date(v).toISOString());
  return {
    id: r.id,
    device_id: r.device_id,
    kind: r.kind,
    message: r.message,
    details: r.details ? (JSON.parse(r.details) as Record<string, unknown>) : null,
    started_at: new Date(r.started_at).toISOString(),
    resolved_at: iso(r.resolved_at),
    acknowledged_at: iso(r.acknowledged_at),
  };
}
