import { EventEmitter } from "node:events";

/**
 * The cloud's in-process live bus: what the WebSocket pushes. Events carry the device's internal key
 * (`devicePk`, unique across hubs) and its hub-local `deviceId`. One process only: fan-out across cloud
 * processes (PostgreSQL LISTEN/NOTIFY) comes with the hub link.
 */
export interface CloudEvents {
  readingReported: [{ devicePk: string; deviceId: string; ts: number; power: number | null; voltage: number | null; current: number | null; energyWh: number | null; relayOn: boolean | null }];
  deviceStatusChanged: [{ devicePk: string; deviceId: string; online: boolean; at: number }];
  commandUpdated: [{ devicePk: string; deviceId: string; commandId: string; command: string; status: string; relayOn: boolean | null; at: number }];
  deviceRemoved: [{ devicePk: string; deviceId: string }];
  /**
   * An alert a hub raised, resolved or acknowledged reached the cloud (POST /hub/sync) and is committed.
   * `devicePk` null: a hub-wide alert (storage), or one for a device the cloud does not know yet.
   */
  alertChanged: [{ hubId: string; devicePk: string | null; alert: CloudAlert }];
  /**
   * Config the hub has not echoed yet changed (a cloud edit, or a hub row showing the hub behind a cloud
   * deletion): the link pushes the hub's pending config now if it is connected (issue 6 §5).
   */
  configPending: [{ hubId: string }];
  /** A user lost access to some devices (unshare, hub removed): live subscriptions must drop them. */
  accessChanged: [{ userIds: string[] | "*" }];
}

/** An alert as the hub's /ws pushes it (shared/schemas/alerts.ts `Alert`); `device_id` is hub-local. */
export interface CloudAlert {
  id: string;
  device_id: string | null;
  kind: string;
  message: string;
  started_at: number;
  resolved_at: number | null;
  acknowledged_at: number | null;
}

export class CloudBus extends EventEmitter<CloudEvents> {
  constructor() {
    super();
    this.setMaxListeners(1000);
  }
}
