import { EventEmitter } from "node:events";
import type { PlugFamily } from "../shared/schemas/devices.js";
import type { Alert } from "../shared/schemas/alerts.js";

/** Who asked for a command: a person through the local API, a schedule, or the cloud. */
export type CommandSource = "api" | "schedule" | "cloud";

/** A validated reading in engineering units; ts in ms since the epoch. */
export interface Reading {
  ts: number;
  power: number | null;
  voltage: number | null;
  current: number | null;
  relayOn: boolean | null;
  /** The plug's own cumulative energy counter, Wh (already converted from the family's unit). */
  counterWh: number | null;
}

export interface HubEvents {
  /** Validated, not yet durable: the live view (WebSocket) reads this so it never waits for a commit. */
  readingReceived: [{ deviceId: string; reading: Reading }];
  /** Committed to SQLite (and not a duplicate). */
  readingStored: [{ deviceId: string; reading: Reading }];
  deviceStatusChanged: [{ deviceId: string; online: boolean; at: number }];
  /** Every relay state a plug reports (also unchanged ones): commands wait on this for confirmation. */
  relayReported: [{ deviceId: string; relayOn: boolean; commandId: string | null; at: number }];
  /** A plug answered a command with an error (Shelly RPC error frames). */
  commandRejected: [{ deviceId: string; commandId: string }];
  relayChanged: [{ deviceId: string; relayOn: boolean; at: number }];
  commandCompleted: [{ deviceId: string; commandId: string; command: string; status: string; relayOn: boolean | null; at: number; source: CommandSource }];
  deviceRemoved: [{ deviceId: string }];
  alertChanged: [{ alert: Alert }];
  deviceAdded: [{ deviceId: string; family: PlugFamily }];
  /** The cloud's access list for this hub changed (or was revoked): cloud users' sessions are checked again. */
  cloudAccessChanged: [];
}

/** The typed live bus: sibling features talk only through it (STYLE.md §2). */
export class HubBus extends EventEmitter<HubEvents> {
  constructor() {
    super();
    this.setMaxListeners(1000);
  }
}
