// The simulated plugs and the bench's own MQTT clients are mqtt.js, which leaves Nagle's algorithm on.
// A plug answering a command writes PUBACK, then its status, then a reading: with Nagle the second
// write waits for the hub's delayed ACK (~40 ms, RELIABILITY fact 8) and that stall would be charged to
// the hub (and to the baselines). The hub sets TCP_NODELAY on its side; here the bench's clients do too.
import net from "node:net";

let patched = false;

/** Makes every outgoing TCP connection of this process set TCP_NODELAY (mqtt.js has no option for it). */
export function clientSocketsNoDelay(): void {
  if (patched) return;
  patched = true;
  const original = net.createConnection;
  const wrapped = function (this: unknown, ...args: unknown[]) {
    const socket = (original as (...a: unknown[]) => net.Socket).apply(net, args);
    socket.setNoDelay(true);
    return socket;
  };
  net.createConnection = wrapped as typeof net.createConnection;
  net.connect = wrapped as typeof net.connect;
}
