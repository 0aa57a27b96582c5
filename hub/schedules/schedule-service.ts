// Schedules (issue 4 §1): stored rules, enforced level-triggered. At start, on every minute tick, after a
// clock jump and when a plug comes back, the hub computes the edge in force now
// (the latest rule edge at or before now) and brings the plug to it, once per edge. Only the latest
// edge counts, so a clock jump never replays the edges it skipped (F10). A manual switch holds until the
// next edge; `reassert_on_boot` re-applies the edge in force after a hub restart or the plug returning.
// The minute tick and the jump watch run on the hub's Clock (not node-cron, which reads the system time on
// its own): one timer wakes at every minute boundary of clock.now() and at least every second, and compares
// the wall clock's progress with the monotonic clock's to tell a jump from time passing (RELIABILITY F10).
import { randomUUID } from "node:crypto";
import type { HubDb } from "../db/open-db.js";
import type { HubBus } from "../bus.js";
import { monotonicNow, type Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { DeviceService } from "../devices/device-service.js";
import type { CommandService } from "../devices/command-service.js";
import type { GroupCommitter } from "../ingest/group-committer.js";
import type { CreateScheduleRequest, Schedule } from "../../shared/schemas/schedules.js";
import { NotFoundError } from "../../shared/problem.js";
import { latestEdge, nextEdge, type RuleSpec } from "../../shared/schedule-math.js";

interface Row {
  id: string;
  device_id: string;
  type: "weekly" | "window" | "once";
  name: string | null;
  days: string | null;
  at: string | null;
  from_time: string | null;
  to_time: string | null;
  action: "on" | "off";
  time_zone: string;
  enabled: number;
  reassert_on_boot: number;
  created_at: number;
}

export type ReconcileReason = "boot" | "tick" | "jump" | "online" | "edit";

export interface ScheduleOptions {
  timeZone: string;
  /** Disable the real-time triggers (minute tick, jump watch) when a test drives the clock. */
  timers: boolean;
}

/** A plug's first report after connecting is not a manual switch. */
const SETTLE_MS = 5000;
/** Wall clock and monotonic clock drifting apart by more than this is a clock jump. */
const JUMP_MS = 30_000;
/** The longest the tick timer sleeps, ms: a jump is noticed within this. */
const WATCH_MS = 1000;

export class ScheduleService {
  private readonly fired = new Map<string, number>();
  /** device → when its next schedule edge is due (see noteNextEdge). */
  private readonly nextDue = new Map<string, number>();
  private readonly manualAt = new Map<string, number>();
  private readonly onlineSince = new Map<string, number>();
  private readonly busy = new Map<string, Promise<void>>();
  private readonly awaiting = new Map<string, NodeJS.Timeout>();
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  applied = 0;
  /** Clock jumps noticed (each reconciled once, as "jump"). */
  clockJumps = 0;

  constructor(
    private readonly db: HubDb,
    private readonly committer: GroupCommitter,
    private readonly devices: DeviceService,
    private readonly commands: CommandService,
    bus: HubBus,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: ScheduleOptions,
  ) {
    for (const r of db.sqlite.prepare("SELECT device_id, fired_edge_ts, manual_at FROM schedule_state").all() as { device_id: string; fired_edge_ts: number; manual_at: number | null }[]) {
      this.fired.set(r.device_id, r.fired_edge_ts);
      if (r.manual_at !== null) this.manualAt.set(r.device_id, r.manual_at);
    }
    // A plug that comes back is reconciled once it has reported its relay state (it has subscribed to its
    // command topic by then), or after SETTLE_MS if it never does.
    const awaiting = this.awaiting;
    const settled = (deviceId: string) => {
      const timer = awaiting.get(deviceId);
      if (!timer) return;
      clearTimeout(timer);
      awaiting.delete(deviceId);
      void this.reconcile(deviceId, "online");
    };
    bus.on("deviceStatusChanged", ({ deviceId, online, at }) => {
      if (!online) return;
      this.onlineSince.set(deviceId, at);
      clearTimeout(awaiting.get(deviceId));
      const timer = setTimeout(() => settled(deviceId), SETTLE_MS);
      timer.unref();
      awaiting.set(deviceId, timer);
    });
    bus.on("relayReported", ({ deviceId }) => settled(deviceId));
    bus.on("commandCompleted", ({ deviceId, status, at, source }) => {
      if (source !== "schedule" && status === "confirmed") this.markManual(deviceId, at);
    });
    bus.on("relayChanged", ({ deviceId, at }) => {
      // The plug's own button: a change nobody here asked for, reported while it was settled online.
      if (this.busy.has(deviceId) || this.commands.hasInFlight(deviceId)) return;
      const since = this.onlineSince.get(deviceId);
      if (since !== undefined && at - since > SETTLE_MS) this.markManual(deviceId, at);
    });
    bus.on("deviceRemoved", ({ deviceId }) => {
      db.sqlite.prepare("DELETE FROM schedules WHERE device_id = ?").run(deviceId);
      db.sqlite.prepare("DELETE FROM schedule_state WHERE device_id = ?").run(deviceId);
      this.fired.delete(deviceId);
      this.manualAt.delete(deviceId);
      this.nextDue.delete(deviceId);
    });
  }

  start(): void {
    void this.reconcileAll("boot");
    if (!this.opts.timers) return;
    let wall = this.clock.now();
    let mono = monotonicNow(this.clock);
    let minute = Math.floor(wall / 60_000);
    const arm = () => {
      if (this.closed) return;
      // Just past the next minute boundary of the hub's clock, or sooner to watch for jumps.
      const now = this.clock.now();
      const toBoundary = 60_000 - (now % 60_000) + 5;
      const toEdge = Math.min(...this.nextDue.values()) - now + 5;
      this.timer = setTimeout(wake, Math.max(5, Math.min(WATCH_MS, toBoundary, toEdge)));
      this.timer.unref();
    };
    const wake = () => {
      const w = this.clock.now();
      const m = monotonicNow(this.clock);
      const drift = w - wall - (m - mono);
      const nowMinute = Math.floor(w / 60_000);
      const crossed = nowMinute !== minute;
      wall = w;
      mono = m;
      minute = nowMinute;
      if (Math.abs(drift) > JUMP_MS) {
        // One reconcile for the jump, whatever it skipped: only the edge in force now is applied.
        this.clockJumps++;
        this.log.warn({ driftMs: Math.round(drift) }, "clock jumped; reconciling schedules");
        void this.reconcileAll("jump");
      } else if (crossed) void this.reconcileAll("tick");
      else {
        for (const [deviceId, due] of this.nextDue) {
          if (due > w) continue;
          this.nextDue.delete(deviceId);
          void this.reconcile(deviceId, "tick");
        }
      }
      arm();
    };
    arm();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const t of this.awaiting.values()) clearTimeout(t);
    this.awaiting.clear();
  }

  private rules(deviceId: string): RuleSpec[] {
    return (this.db.sqlite.prepare("SELECT * FROM schedules WHERE device_id = ? ORDER BY created_at").all(deviceId) as Row[]).map(toSpec);
  }

  /**
   * Remembers when the device's next edge is due, so the tick timer wakes for it: an edge between minute boundaries
   * (a one-shot at 22:00:30) is applied within a second, not at the next minute.
   */
  private noteNextEdge(deviceId: string): void {
    if (this.closed) return;
    const now = this.clock.now();
    let due = Infinity;
    for (const r of this.rules(deviceId)) {
      if (!r.enabled) continue;
      const e = nextEdge(r, now);
      if (e && e.ts < due) due = e.ts;
    }
    if (due === Infinity) this.nextDue.delete(deviceId);
    else this.nextDue.set(deviceId, due);
  }

  async reconcileAll(reason: ReconcileReason): Promise<void> {
    if (this.closed) return;
    const ids = (this.db.sqlite.prepare("SELECT DISTINCT device_id FROM schedules WHERE enabled = 1").all() as { device_id: string }[]).map((r) => r.device_id);
    await Promise.all(ids.map((id) => this.reconcile(id, reason)));
  }

  /** Brings one plug to the state its schedules imply now, at most once per edge. */
  reconcile(deviceId: string, reason: ReconcileReason): Promise<void> {
    // One at a time per plug: a second trigger meanwhile waits for the first one's outcome.
    if (this.closed) return Promise.resolve();
    const running = this.busy.get(deviceId);
    if (running) return running;
    const p = this.reconcileNow(deviceId, reason).finally(() => {
      this.busy.delete(deviceId);
      this.noteNextEdge(deviceId);
    });
    this.busy.set(deviceId, p);
    return p;
  }

  private async reconcileNow(deviceId: string, reason: ReconcileReason): Promise<void> {
    if (!this.devices.has(deviceId)) return;
    const rules = this.rules(deviceId);
    const now = this.clock.now();
    const edge = latestEdge(rules, now);
    if (!edge) return;
    const rule = rules.find((r) => r.id === edge.scheduleId)!;
    // reassert_on_boot: after a restart (of the hub or the plug) the slot wins, even over a manual switch.
    const reassert = (reason === "boot" || reason === "online") && (this.db.sqlite.prepare("SELECT reassert_on_boot FROM schedules WHERE id = ?").get(rule.id) as { reassert_on_boot: number } | undefined)?.reassert_on_boot === 1;
    if (!reassert) {
      if ((this.manualAt.get(deviceId) ?? -Infinity) > edge.ts) return; // a manual switch holds until the next edge
      if ((this.fired.get(deviceId) ?? -Infinity) >= edge.ts) return; // each edge once
    }
    const st = this.devices.state(deviceId);
    if (!st.online) return; // applied when it comes back
    const want = edge.action === "on";
    if (st.relayOn === want) return this.markFired(deviceId, edge.ts);
    try {
      const res = await this.commands.execute(deviceId, want ? "relay_on" : "relay_off", { source: "schedule" });
      this.log.info({ deviceId, scheduleId: rule.id, edge: new Date(edge.ts).toISOString(), reason, status: res.status, delayMs: this.clock.now() - edge.ts }, "schedule applied");
      if (res.status === "confirmed") {
        this.applied++;
        await this.markFired(deviceId, edge.ts);
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message, deviceId }, "schedule not applied");
    }
  }

  private async markFired(deviceId: string, ts: number) {
    this.fired.set(deviceId, ts);
    await this.saveState(deviceId);
  }

  private markManual(deviceId: string, at: number) {
    if ((this.manualAt.get(deviceId) ?? -Infinity) >= at) return;
    this.manualAt.set(deviceId, at);
    void this.saveState(deviceId);
  }

  private saveState(deviceId: string): Promise<void> {
    return this.committer
      .write({
        sql: "INSERT INTO schedule_state (device_id, fired_edge_ts, manual_at) VALUES (?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET fired_edge_ts = excluded.fired_edge_ts, manual_at = excluded.manual_at",
        params: [deviceId, this.fired.get(deviceId) ?? 0, this.manualAt.get(deviceId) ?? null],
      })
      .then(
        () => undefined,
        (err: Error) => this.log.warn({ err: err.message, deviceId }, "schedule state not saved"),
      );
  }

  // --- CRUD ---

  list(deviceId?: string): Schedule[] {
    const rows = (deviceId ? this.db.sqlite.prepare("SELECT * FROM schedules WHERE device_id = ? ORDER BY created_at").all(deviceId) : this.db.sqlite.prepare("SELECT * FROM schedules ORDER BY created_at").all()) as Row[];
    return rows.map((r) => this.toSchedule(r));
  }

  get(id: string): Schedule {
    return this.toSchedule(this.row(id));
  }

  private row(id: string): Row {
    const r = this.db.sqlite.prepare("SELECT * FROM schedules WHERE id = ?").get(id) as Row | undefined;
    if (!r) throw new NotFoundError(`no schedule '${id.slice(0, 64)}'`);
    return r;
  }

  create(deviceId: string, req: CreateScheduleRequest): Schedule {
    this.devices.state(deviceId); // 404 for unknown devices
    const row: Row = {
      id: randomUUID(),
      device_id: deviceId,
      type: req.type,
      name: req.name ?? null,
      days: req.type === "once" ? null : JSON.stringify([...req.days].sort()),
      at: req.type === "window" ? null : req.at,
      from_time: req.type === "window" ? req.from : null,
      to_time: req.type === "window" ? req.to : null,
      action: req.action,
      time_zone: req.time_zone ?? this.opts.timeZone,
      enabled: req.enabled ? 1 : 0,
      reassert_on_boot: req.reassert_on_boot ? 1 : 0,
      created_at: this.clock.now(),
    };
    this.db.sqlite
      .prepare(
        `INSERT INTO schedules (id, device_id, type, name, days, at, from_time, to_time, action, time_zone, enabled, reassert_on_boot, created_at)
         VALUES (@id, @device_id, @type, @name, @days, @at, @from_time, @to_time, @action, @time_zone, @enabled, @reassert_on_boot, @created_at)`,
      )
      .run(row);
    this.log.info({ deviceId, scheduleId: row.id, type: row.type }, "schedule created");
    return this.toSchedule(row);
  }

  update(id: string, patch: { name?: string; enabled?: boolean; reassert_on_boot?: boolean }): Schedule {
    const r = this.row(id);
    if (patch.name !== undefined) r.name = patch.name;
    if (patch.enabled !== undefined) r.enabled = patch.enabled ? 1 : 0;
    if (patch.reassert_on_boot !== undefined) r.reassert_on_boot = patch.reassert_on_boot ? 1 : 0;
    this.db.sqlite.prepare("UPDATE schedules SET name = ?, enabled = ?, reassert_on_boot = ? WHERE id = ?").run(r.name, r.enabled, r.reassert_on_boot, id);
    return this.toSchedule(r);
  }

  remove(id: string): void {
    this.row(id);
    this.db.sqlite.prepare("DELETE FROM schedules WHERE id = ?").run(id);
  }

  private toSchedule(r: Row): Schedule {
    const next = nextEdge(toSpec(r), this.clock.now());
    return {
      id: r.id,
      device_id: r.device_id,
      type: r.type,
      name: r.name,
      days: r.days ? (JSON.parse(r.days) as number[]) : null,
      at: r.at,
      from: r.from_time,
      to: r.to_time,
      action: r.action,
      time_zone: r.time_zone,
      enabled: r.enabled === 1,
      reassert_on_boot: r.reassert_on_boot === 1,
      next_run: next ? new Date(next.ts).toISOString() : null,
      created_at: new Date(r.created_at).toISOString(),
    };
  }
}

function toSpec(r: Row): RuleSpec {
  return {
    id: r.id,
    type: r.type,
    days: r.days ? (JSON.parse(r.days) as number[]) : null,
    at: r.at,
    from: r.from_time,
    to: r.to_time,
    action: r.action,
    timeZone: r.time_zone,
    enabled: r.enabled === 1,
    createdAt: r.created_at,
  };
}
