// The seam where the hub link (issue 6: one hub-initiated WebSocket per hub) plugs in. Until it exists the
// cloud has no connected hubs: commands stay `queued` in the database and are never reported as sent.
export interface QueuedCommand {
  id: string;
  commandId: string;
  hubId: string;
  deviceId: string;
  command: string;
  expiresAt: Date;
}

/** What the hub reported for a command (LinkCommandResult). */
export interface CommandResult {
  status: "confirmed" | "offline" | "timeout" | "failed" | "expired" | "rejected";
  relayOn: boolean | null;
  at: number;
}

export interface HubLink {
  isConnected(hubId: string): boolean;
  /** Hands a stored command to the hub's link; false when the hub is not connected. */
  offer(cmd: QueuedCommand): boolean;
  connectedCount(): number;
  /** The hub's result for an offered command (by its row id), or null when none arrives within `ms`. */
  waitForResult?(id: string, hubId: string, ms: number): Promise<CommandResult | null>;
}

export const noHubLink: HubLink = {
  isConnected: () => false,
  offer: () => false,
  connectedCount: () => 0,
};
