import type { PlugFamily, CommandName } from "../../shared/schemas/devices.js";
import type { Reading } from "../bus.js";

/** What the hub knows of a paired plug that an adapter needs. */
export interface PlugIdentity {
  deviceId: string;
  family: PlugFamily;
  /** MQTT username and client id. */
  mqttUser: string;
  /** The family's topic or prefix for this plug (native: the device id). */
  topic: string;
  /** Which relay/meter channel of a multi-channel plug this device is (0 = the first). */
  channel: number;
}

/** Normalized events an adapter turns a plug's message into. */
export type PlugEvent =
  | { kind: "reading"; reading: Reading }
  | { kind: "availability"; online: boolean; firmware?: string }
  | { kind: "relay"; relayOn: boolean }
  | { kind: "commandResult"; commandId: string | null; relayOn: boolean | null; ok: boolean };

/** A message the hub publishes to a plug. */
export interface OutboundMessage {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain?: boolean;
}

export type ParseResult = { ok: true; events: PlugEvent[] } | { ok: false; reason: string };

/**
 * One adapter per plug family (issue 2 §3). Adapters are pure: topic + payload in, events out; a command
 * in, messages out. Ingest, devices and the API never see a family's format.
 */
export interface PlugAdapter {
  readonly family: PlugFamily;
  /** Topic (native) or prefix the plug is configured with, derived at pairing. */
  topicFor(deviceId: string): string;
  /** Where a plug may publish: only inside its own namespace (A4). */
  mayPublish(plug: PlugIdentity, topic: string): boolean;
  /** Which filters a plug may subscribe to: its own command topics, never wildcards (A5). */
  maySubscribe(plug: PlugIdentity, filter: string): boolean;
  parse(plug: PlugIdentity, topic: string, payload: Buffer, receivedAt: number): ParseResult;
  encodeCommand(plug: PlugIdentity, command: CommandName, commandId: string, currentRelay: boolean | null): OutboundMessage[];
  /** Messages that ask a metered plug for a fresh reading (families that report slowly); none for native. */
  pollMessages?(plug: PlugIdentity): OutboundMessage[];
  /** Drops any per-plug state the adapter keeps (the plug was removed or its session ended). */
  forget?(plug: PlugIdentity): void;
}
