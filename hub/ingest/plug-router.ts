// Every PUBLISH from a plug lands here: namespace check (A4), adapter parse with counted drop reasons
// (A7), then the device service, which acks only after the reading is committed.
import type { PublishPacket } from "aedes";
import type { Logger } from "../../shared/logger.js";
import type { Clock } from "../../shared/clock.js";
import type { HubMetrics } from "../metrics.js";
import type { PlugAdapter, PlugIdentity } from "../adapters/types.js";
import type { PlugFamily } from "../../shared/schemas/devices.js";
import type { DeviceService } from "../devices/device-service.js";
import type { BrokerHooks } from "../broker/broker.js";

export function createPlugRouter(d: { adapters: Map<PlugFamily, PlugAdapter>; devices: DeviceService; metrics: HubMetrics; log: Logger; clock: Clock }): BrokerHooks {
  return {
    authenticate: (username, password) => d.devices.authenticate(username, password),
    maySubscribe(plug, filter) {
      return d.adapters.get(plug.family)?.maySubscribe(plug, filter) ?? false;
    },
    onConnected: (plug) => d.devices.onConnected(plug),
    onDisconnected: (plug) => d.devices.onDisconnected(plug),
    onPublish(plug: PlugIdentity, packet: PublishPacket, done) {
      const adapter = d.adapters.get(plug.family);
      if (!adapter || !adapter.mayPublish(plug, packet.topic)) {
        d.metrics.securityEvents.inc({ kind: "publish_denied" });
        d.metrics.dropped.inc({ reason: "acl_denied" });
        d.log.warn({ deviceId: plug.deviceId, topic: packet.topic.slice(0, 200) }, "plug published outside its namespace; disconnected");
        return done(new Error("not authorized"));
      }
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      const parsed = adapter.parse(plug, packet.topic, payload, d.clock.now());
      if (!parsed.ok) {
        d.metrics.dropped.inc({ reason: parsed.reason });
        d.log.debug({ deviceId: plug.deviceId, reason: parsed.reason }, "plug message dropped");
        return done(null); // acked and dropped: resending a bad message cannot make it good
      }
      d.devices.handleEvents(plug, parsed.events, done);
    },
  };
}
