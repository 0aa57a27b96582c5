// A hub's end of the link (issue 6) as a plain ws client: Basic credential at upgrade, JSON text frames as
// shared/schemas/sync.ts documents them. Tests drive it by hand (no hub code involved).
import WebSocket from "ws";

export type Frame = Record<string, unknown> & { type: string };

export interface LinkClient {
  ws: WebSocket;
  frames: Frame[];
  /** The next frame matching `pred` (each frame handed out once, in arrival order). */
  next(pred: (f: Frame) => boolean): Promise<Frame>;
  send(frame: unknown): void;
  closed: Promise<{ code: number; reason: string }>;
}

export function socketUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/^http/, "ws") + path;
}

export function frameCollector(ws: WebSocket) {
  const frames: Frame[] = [];
  const unread: Frame[] = [];
  const waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  ws.on("message", (d) => {
    const f = JSON.parse(d.toString()) as Frame;
    frames.push(f);
    const w = waiters.find((x) => x.pred(f));
    if (w) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(f);
    } else unread.push(f);
  });
  const next = (pred: (f: Frame) => boolean) =>
    new Promise<Frame>((res) => {
      const hit = unread.find(pred);
      if (hit) {
        unread.splice(unread.indexOf(hit), 1);
        return res(hit);
      }
      waiters.push({ pred, resolve: res });
    });
  return { frames, next };
}

/** Opens the link; rejects with the HTTP status (e.g. "401") when the upgrade is refused. */
export function openLink(baseUrl: string, cred: { hub_id: string; hub_secret: string } | null, headers: Record<string, string> = {}): Promise<LinkClient> {
  return new Promise((resolve, reject) => {
    const auth = cred ? { authorization: `Basic ${Buffer.from(`${cred.hub_id}:${cred.hub_secret}`).toString("base64")}` } : {};
    const ws = new WebSocket(socketUrl(baseUrl, "/hub/link"), { headers: { ...auth, ...headers } });
    const { frames, next } = frameCollector(ws);
    const closed = new Promise<{ code: number; reason: string }>((res) => ws.once("close", (code, reason) => res({ code, reason: reason.toString() })));
    ws.once("open", () => resolve({ ws, frames, next, send: (f) => ws.send(typeof f === "string" || Buffer.isBuffer(f) ? f : JSON.stringify(f)), closed }));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => reject(Object.assign(new Error(String(res.statusCode)), { status: res.statusCode, body, headers: res.headers })));
    });
    ws.once("error", reject);
  });
}

/** A user's /ws socket, subscribed to `deviceIds`. */
export async function openLive(baseUrl: string, token: string, deviceIds: string[] | "*") {
  const ws = new WebSocket(socketUrl(baseUrl, "/ws"), { headers: { authorization: `Bearer ${token}` } });
  const c = frameCollector(ws);
  await new Promise<void>((res, rej) => {
    ws.once("open", () => res());
    ws.once("error", rej);
  });
  await c.next((f) => f.type === "welcome");
  ws.send(JSON.stringify({ type: "subscribe", device_ids: deviceIds }));
  await c.next((f) => f.type === "subscribed");
  return { ws, ...c };
}
