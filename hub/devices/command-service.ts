// Relay commands (issue 2 §6): each has an id, is stored, sent in the plug's family format and
// confirmed by the plug's own report of its new state. A repeated id never runs twice — also across a
// kill -9 for commands from the cloud, whose record is on disk before the plug is told (RELIABILITY F13).
import { randomUUID } from "node:crypto";
import type { HubDb } from "../db/open-db.js";
import type { HubBus, CommandSource } from "../bus.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { HubMetrics } from "../metrics.js";
import type { DeviceService } from "./device-service.js";
import type { CommandName, CommandResponse } from "../../shared/schemas/devices.js";
import type { OutboundMessage } from "../adapters/types.js";
import type { GroupCommitter } from "../ingest/group-committer.js";

export interface CommandServiceOptions {
  /** How long to wait for the plug's confirmation, ms. */
  confirmTimeoutMs: number;
}

export type CommandSender = (msgs: OutboundMessage[]) => Promise<void>;

interface Waiter {
  commandId: string;
  target: boolean;
  /** The confirmed relay state, null on timeout, "failed" when the plug answered with an error. */
  resolve: (relayOn: boolean | null | "failed") => void;
}

export class CommandService {
  private readonly inFlight = new Map<string, Promise<CommandResponse>>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly find;

  constructor(
    private readonly db: HubDb,
    private readonly committer: GroupCommitter,
    private readonly devices: DeviceService,
    private readonly send: CommandSender,
    private readonly bus: HubBus,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly opts: CommandServiceOptions,
  ) {
    this.find = db.sqlite.prepare("SELECT id, device_id, command, status, relay_on, created_at, completed_at FROM commands WHERE id = ?");
    bus.on("relayReported", ({ deviceId, relayOn, commandId }) => {
      const set = this.waiters.get(deviceId);
      if (!set) return;
      for (const w of set) {
        if (w.commandId === commandId || relayOn === w.target) w.resolve(relayOn);
      }
    });
    bus.on("commandRejected", ({ deviceId, commandId }) => {
      for (const w of this.waiters.get(deviceId) ?? []) if (w.commandId === commandId) w.resolve("failed");
    });
  }

  /** Whether a command for this device is waiting for the plug's confirmation. */
  hasInFlight(deviceId: string): boolean {
    return this.waiters.has(deviceId);
  }

  /** The result of a command id already run or running (from its record), or null when the id is new. */
  lookup(commandId: string): Promise<CommandResponse> | null {
    const running = this.inFlight.get(commandId);
    if (running) return running;
    const stored = this.find.get(commandId) as Record<string, unknown> | undefined;
    return stored ? Promise.resolve(this.storedResponse(stored, String(stored.device_id))) : null;
  }

  /** Runs a command once; a known `commandId` returns the stored (or in-flight) result instead. */
  execute(deviceId: string, command: CommandName, opts: { commandId?: string; timeoutMs?: number; source?: CommandSource } = {}): Promise<CommandResponse> {
    const st = this.devices.state(deviceId); // 404 before anything is stored
    const commandId = opts.commandId ?? randomUUID();
    const known = this.lookup(commandId);
    if (known) return known;
    // The entry stays until the result is committed (see complete), so a retry never runs it again.
    const p = this.run(st.deviceId, command, commandId, opts.timeoutMs ?? this.opts.confirmTimeoutMs, opts.source ?? "api");
    this.inFlight.set(commandId, p);
    return p;
  }

  private storedResponse(row: Record<string, unknown>, deviceId: string): CommandResponse {
    return {
      command_id: String(row.id),
      device_id: String(row.device_id ?? deviceId),
      command: row.command as CommandName,
      status: row.status as CommandResponse["status"],
      relay_state: row.relay_on === null || row.relay_on === undefined ? null : row.relay_on === 1,
      timestamp: new Date(Number(row.completed_at ?? row.created_at)).toISOString(),
    };
  }

  private async run(deviceId: string, command: CommandName, commandId: string, timeoutMs: number, source: CommandSource): Promise<CommandResponse> {
    const createdAt = this.clock.now();
    const record = { sql: "INSERT INTO commands (id, device_id, command, status, created_at) VALUES (?, ?, ?, 'pending', ?)", params: [commandId, deviceId, command, createdAt] };
    if (source === "cloud") {
      // F13: the cloud redelivers a command whose result it did not get, also after this hub was killed. Its
      // record must be on disk before the plug is told, or a kill -9 in between runs it twice. One commit
      // (≤ HUB_COMMIT_INTERVAL_MS, flushed now) is well inside a remote command's 100 ms p99 goal.
      try {
        await this.committer.write(record, { now: true });
      } catch (err) {
        this.log.error({ err: (err as Error).message, commandId }, "cloud command not recorded; not sent to the plug");
        this.inFlight.delete(commandId);
        this.metrics.commands.inc({ status: "failed" });
        return { command_id: commandId, device_id: deviceId, command, status: "failed", relay_state: this.devices.state(deviceId).relayOn, timestamp: new Date(this.clock.now()).toISOString() };
      }
    } else {
      // Local commands: written with the next group commit rather than by a flush of their own, so a round trip
      // is not two disk flushes long; in-process duplicates are caught by `inFlight` meanwhile.
      this.committer.submit(record, (err) => {
        if (err) this.log.error({ err: err.message, commandId }, "command not recorded");
      });
    }
    if (!this.devices.has(deviceId)) return this.complete(deviceId, command, commandId, "failed", null, source); // removed meanwhile
    const st = this.devices.state(deviceId);
    if (!st.online) return this.complete(deviceId, command, commandId, "offline", st.relayOn, source);

    const target = command === "relay_on" ? true : command === "relay_off" ? false : !(st.relayOn ?? false);
    const adapter = this.devices.adapterFor(st.family);
    let waiter!: Waiter;
    let timer: NodeJS.Timeout | undefined;
    const confirmed = new Promise<boolean | null | "failed">((resolve) => {
      waiter = { commandId, target, resolve };
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    let set = this.waiters.get(deviceId);
    if (!set) this.waiters.set(deviceId, (set = new Set()));
    set.add(waiter);
    try {
      await this.send(adapter.encodeCommand(st, command, commandId, st.relayOn));
      const relayOn = await confirmed;
      if (relayOn === null) return this.complete(deviceId, command, commandId, "timeout", st.relayOn, source);
      if (relayOn === "failed") return this.complete(deviceId, command, commandId, "failed", st.relayOn, source);
      return this.complete(deviceId, command, commandId, "confirmed", relayOn, source);
    } finally {
      clearTimeout(timer);
      set.delete(waiter);
      if (set.size === 0) this.waiters.delete(deviceId);
    }
  }

  private complete(deviceId: string, command: CommandName, commandId: string, status: CommandResponse["status"], relayOn: boolean | null, source: CommandSource): CommandResponse {
    const at = this.clock.now();
    this.committer.submit(
      { sql: "UPDATE commands SET status = ?, relay_on = ?, completed_at = ? WHERE id = ?", params: [status, relayOn === null ? null : relayOn ? 1 : 0, at, commandId] },
      (err) => {
        if (err) this.log.error({ err: err.message, commandId }, "command result not recorded");
        this.inFlight.delete(commandId);
      },
    );
    this.metrics.commands.inc({ status });
    if (status !== "confirmed") this.log.info({ deviceId, commandId, command, status }, "command not confirmed");
    this.bus.emit("commandCompleted", { deviceId, commandId, command, status, relayOn, at, source });
    return { command_id: commandId, device_id: deviceId, command, status, relay_state: relayOn, timestamp: new Date(at).toISOString() };
  }
}
