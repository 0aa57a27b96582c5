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
  /** A user lost access to some devices (unshare, hub removed): live subscriptions must drop them. */
  accessChanged: [{ userIds: string[] | "*" }];
}

export class CloudBus extends EventEmitter<CloudEvents> {
  constructor() {
    super();
    this.setMaxListeners(1000);
  }
}
