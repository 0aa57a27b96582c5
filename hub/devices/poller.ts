// Polls metered plugs that report slowly on their own (Tasmota every TelePeriod, 300 s by default) so
// history has a reading every few seconds (issue 3 §2). Each plug has its own phase, so 100 plugs do not
// all get asked at once; a plug is asked again only after it answered or a whole interval passed, so
// requests never pile up; offline plugs are not asked. Turns are kept on the monotonic clock: on the wall
// clock a step back of an hour stalled every plug's polls for that hour, and a step forward brought the
// next poll early (RELIABILITY F10).
import type { HubBus } from "../bus.js";
import { monotonicNow, type Clock } from "../../shared/clock.js";
import type { PlugAdapter } from "../adapters/types.js";
import type { PlugFamily } from "../../shared/schemas/devices.js";
import type { DeviceService } from "./device-service.js";
import type { CommandSender } from "./command-service.js";
import type { Logger } from "../../shared/logger.js";

export interface PollerOptions {
  /** How often each metered plug is asked for a fresh reading, ms; 0 disables polling. */
  intervalMs: number;
}

interface PollState {
  nextAt: number;
  outstandingSince: number | null;
}

export class Poller {
  private readonly state = new Map<string, PollState>();
  private timer: NodeJS.Timeout | null = null;
  skipped = 0;
  sent = 0;

  constructor(
    private readonly devices: DeviceService,
    private readonly adapters: Map<PlugFamily, PlugAdapter>,
    private readonly send: CommandSender,
    bus: HubBus,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: PollerOptions,
  ) {
    bus.on("readingReceived", ({ deviceId }) => {
      const s = this.state.get(deviceId);
      if (s) s.outstandingSince = null;
    });
    bus.on("deviceStatusChanged", ({ deviceId, online }) => {
      if (!online) this.state.delete(deviceId);
    });
    bus.on("deviceRemoved", ({ deviceId }) => this.state.delete(deviceId));
  }

  start(): void {
    if (this.opts.intervalMs <= 0) return;
    const tickMs = Math.max(50, Math.min(500, Math.floor(this.opts.intervalMs / 10)));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One pass: asks every online metered plug whose turn has come and that is not still answering. */
  tick(): void {
    const now = monotonicNow(this.clock);
    const interval = this.opts.intervalMs;
    for (const st of this.devices.all()) {
      if (!st.online) continue;
      const adapter = this.adapters.get(st.family);
      if (!adapter?.pollMessages) continue;
      let s = this.state.get(st.deviceId);
      if (!s) {
        // A stable phase per plug spreads the polls over the interval.
        s = { nextAt: now + (hash(st.deviceId) % interval), outstandingSince: null };
        this.state.set(st.deviceId, s);
      }
      if (now < s.nextAt) continue;
      s.nextAt += interval * Math.max(1, Math.ceil((now - s.nextAt + 1) / interval));
      if (s.outstandingSince !== null && now - s.outstandingSince < interval) {
        this.skipped++;
        continue;
      }
      s.outstandingSince = now;
      this.sent++;
      this.send(adapter.pollMessages(st)).catch((err: unknown) => this.log.warn({ err, deviceId: st.deviceId }, "poll not sent"));
    }
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
