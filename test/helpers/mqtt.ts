// Plugs in tests are real MQTT clients (mqtt.js) speaking the documented payloads.
import mqtt, { type MqttClient, type IClientOptions } from "mqtt";

export type { MqttClient };

/** Connects and resolves on CONNACK 0; rejects with the broker's refusal (e.g. code 4 or 5). */
export function connectClient(url: string, o: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, keepalive: 30, ...o });
    const onError = (err: Error) => {
      c.end(true);
      reject(err);
    };
    const onClose = () => reject(new Error("closed before CONNACK"));
    c.once("error", onError);
    c.once("close", onClose);
    c.once("connect", () => {
      // Only until the first CONNACK: left attached, a later socket error (ECONNRESET when the hub drops the link)
      // would end the client for good, and a plug with a reconnectPeriod would silently stop reconnecting. Later
      // errors end in 'close' (and a reconnect where asked for); a test that cares listens itself.
      c.off("error", onError).off("close", onClose);
      c.on("error", () => {}); // without a listener, Node would throw them
      resolve(c);
    });
  });
}

/** A native plug: client id = username = device id, password = pairing code, will = offline. */
export function connectNativePlug(url: string, deviceId: string, code: string, o: IClientOptions = {}): Promise<MqttClient> {
  return connectClient(url, {
    clientId: deviceId,
    username: deviceId,
    password: code,
    will: { topic: `smartplug/${deviceId}/status`, payload: Buffer.from('{"status":"offline"}'), qos: 1, retain: true },
    ...o,
  });
}

export function telemetry(o: { ts?: number; power?: number; voltage?: number; current?: number; relay?: boolean; energyWh?: number } = {}): string {
  return JSON.stringify({
    timestamp: new Date(o.ts ?? Date.now()).toISOString(),
    voltage: o.voltage ?? 230.1,
    current: o.current ?? 0.263,
    power: o.power ?? 60.5,
    relay_state: o.relay ?? true,
    ...(o.energyWh === undefined ? {} : { energy_wh: o.energyWh }),
  });
}

/** Resolves once `pred` holds, polling; rejects with `what` after `ms`. */
export async function eventually<T>(fn: () => T | Promise<T>, pred: (v: T) => boolean, what: string, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (pred(last)) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
