/**
 * The workbench's reverse proxy to Jupyter's REST API and kernel websockets.
 * Only requests that passed the gate (access.ts) get here. Jupyter's token is
 * added here, so the page never sees it; the workbench's own secret (query
 * `token`, its cookie, an Authorization header) is taken off first, so Jupyter
 * never sees that, and a stale `?token=` cannot shadow the real one (Jupyter
 * reads the query before the header).
 */
import * as http from "node:http";
import * as net from "node:net";
import { withoutOwnCookie, type Gate } from "./access.js";

export interface Upstream {
  /** Jupyter's http://127.0.0.1:PORT. */
  target: URL;
  /** Jupyter's token. */
  token: string;
  gate: Gate;
}

/** The request path with `token` removed from the query (set to Jupyter's when `token` is given). */
function upstreamPath(reqUrl: string | undefined, token?: string): string {
  const url = new URL(reqUrl ?? "/", "http://127.0.0.1");
  url.searchParams.delete("token");
  if (token !== undefined) url.searchParams.set("token", token);
  return `${url.pathname}${url.search}`;
}

/** Forwards one REST call to Jupyter with Jupyter's token as the Authorization header. */
export function proxyHttp(req: http.IncomingMessage, res: http.ServerResponse, up: Upstream): void {
  const headers: http.OutgoingHttpHeaders = { ...req.headers, authorization: `token ${up.token}` };
  const cookie = withoutOwnCookie(req.headers.cookie, up.gate);
  if (cookie === undefined) delete headers.cookie;
  else headers.cookie = cookie;
  const upstream = http.request(
    { host: up.target.hostname, port: up.target.port, method: req.method, path: upstreamPath(req.url), headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", (err) => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ message: `Jupyter server did not answer: ${err.message}` }));
  });
  req.pipe(upstream);
}

/**
 * Forwards a websocket upgrade (kernel channels) as raw bytes: the request line
 * and headers are replayed with Jupyter's token in the query; Host and Origin
 * are kept (the gate has checked they are the workbench's own), so Jupyter's
 * same-origin check sees the page's origin.
 */
export function proxyUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer, up: Upstream): void {
  const upstream = net.connect(Number(up.target.port), up.target.hostname, () => {
    const lines = [`${req.method} ${upstreamPath(req.url, up.token)} HTTP/${req.httpVersion}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      const lower = name.toLowerCase();
      if (lower === "authorization") continue;
      if (lower === "cookie") {
        const kept = withoutOwnCookie(req.rawHeaders[i + 1], up.gate);
        if (kept !== undefined) lines.push(`${name}: ${kept}`);
        continue;
      }
      lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
    }
    upstream.write(lines.join("\r\n") + "\r\n\r\n");
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  const close = () => {
    socket.destroy();
    upstream.destroy();
  };
  upstream.on("error", close);
  socket.on("error", close);
  upstream.on("close", close);
  socket.on("close", close);
}
