// Cloud commands (issue 5 §7, ARCHITECTURE §3): stored with an id and an expiry, then handed to the hub link,
// which redelivers until the hub acks or the command expires. While the link is not connected the answer is
// `queued` (HTTP 202) — never `confirmed` or `sent` for something no hub has seen. A repeated command_id
// returns the stored command and is never queued twice.
import { randomUUID } from "node:crypto";
import { and, eq } from "drizzle-orm";
import type { CloudOrm } from "../db/open-db.js";
import { commands } from "../db/schema.js";
import type { Clock } from "../../shared/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { CommandName } from "../../shared/schemas/devices.js";
import type { CloudCommandResponse, CloudCommandStatus } from "../../shared/schemas/cloud.js";
import { ConflictError } from "../../shared/problem.js";
import { audit, type Actor } from "../audit.js";
import type { CommandResult, HubLink } from "../link/hub-link.js";
import type { CloudBus } from "../bus.js";
import type { DeviceRow } from "./device-service.js";
import { isUniqueViolation } from "../auth/account-service.js";

type CommandRow = typeof commands.$inferSelect;

export class CommandService {
  constructor(
    private readonly db: CloudOrm,
    private readonly link: HubLink,
    private readonly bus: CloudBus,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: { ttlSec: number; waitMs?: number; onStatus?: (status: CloudCommandStatus) => void },
  ) {}

  async submit(device: DeviceRow, command: CommandName, commandId: string | undefined, actor: Actor): Promise<{ fresh: boolean; response: CloudCommandResponse }> {
    const id = commandId ?? randomUUID();
    const existing = await this.find(device.id, id);
    if (existing) return { fresh: false, response: this.respond(existing, device) };
    const now = this.clock.now();
    const row: CommandRow = {
      id: randomUUID(),
      commandId: id,
      deviceId: device.id,
      hubId: device.hubId,
      userId: actor.userId ?? null,
      command,
      status: "queued",
      relayOn: null,
      createdAt: new Date(now),
      expiresAt: new Date(now + this.opts.ttlSec * 1000),
      completedAt: null,
    };
    try {
      await this.db.transaction(async (tx) => {
        await tx.insert(commands).values(row);
        await audit(tx, row.createdAt, actor, { action: "command.submit", targetType: "command", targetId: row.id, detail: { device: device.id, command, command_id: id } });
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // The same id raced in from another request: answer with the stored command.
      const again = await this.find(device.id, id);
      if (!again) throw new ConflictError(`command '${id}' is being submitted`);
      return { fresh: false, response: this.respond(again, device) };
    }
    let status: CloudCommandStatus = "queued";
    let result: Promise<CommandResult | null> | null = null;
    if (this.link.offer({ id: row.id, commandId: id, hubId: device.hubId, deviceId: device.deviceId, command, expiresAt: row.expiresAt })) {
      status = "sent";
      // Registered before anything awaits, so a fast answer from the hub is not missed (issue 6).
      if (this.opts.waitMs && this.link.waitForResult) result = this.link.waitForResult(row.id, device.hubId, this.opts.waitMs);
      this.bus.emit("commandUpdated", { devicePk: device.id, deviceId: device.deviceId, commandId: id, command, status, relayOn: null, at: now });
      await this.db.update(commands).set({ status }).where(and(eq(commands.id, row.id), eq(commands.status, "queued")));
    } else {
      this.bus.emit("commandUpdated", { devicePk: device.id, deviceId: device.deviceId, commandId: id, command, status, relayOn: null, at: now });
    }
    row.status = status;
    this.opts.onStatus?.(status);
    this.log.info({ deviceId: device.deviceId, hubId: device.hubId, commandId: id, status }, "command stored");
    // Wait (bounded by CLOUD_COMMAND_WAIT_MS) for the plug's confirmed state; without it the answer is `sent`
    // and the result arrives later on /ws and in the command row.
    const r = result ? await result : null;
    if (r) {
      row.status = r.status;
      row.relayOn = r.relayOn;
      row.completedAt = new Date(r.at);
    }
    return { fresh: true, response: this.respond(row, device) };
  }

  private async find(devicePk: string, commandId: string): Promise<CommandRow | undefined> {
    const [row] = await this.db.select().from(commands).where(and(eq(commands.deviceId, devicePk), eq(commands.commandId, commandId))).limit(1);
    return row;
  }

  private respond(row: CommandRow, device: DeviceRow): CloudCommandResponse {
    const expired = (row.status === "queued" || row.status === "sent") && row.expiresAt.getTime() <= this.clock.now();
    return {
      command_id: row.commandId,
      device_id: device.deviceId,
      command: row.command as CommandName,
      status: expired ? "expired" : (row.status as CloudCommandStatus),
      relay_state: row.relayOn ?? (row.status === "confirmed" ? null : device.relayOn),
      timestamp: (row.completedAt ?? row.createdAt).toISOString(),
      expires_at: row.expiresAt.toISOString(),
    };
  }
}
