/**
 * The workbench's own HTTP server (started by `llama-ts start`).
 *
 * It serves the page (dist/workbench/: index.html, app.js, app.css, built by
 * scripts/build.mjs), a local plotly.js, and a small config endpoint, and it
 * reverse-proxies Jupyter's REST API and kernel websockets under /api/ so the
 * page talks to the Jupyter server through @jupyterlab/services from the same
 * origin. The proxy adds Jupyter's token itself: the page never sees it, and
 * nothing in the page reaches beyond 127.0.0.1.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { createRequire } from "node:module";
import type { RunningService, ServiceContext } from "../../cli/commands/start.js";
import { freePort } from "../server/jupyter-server.js";

/** What the page learns from /wb/config. */
export interface WorkbenchConfig {
  /** Model the panels load by default (absolute path). */
  model: string;
  /** The checkout's models/ folder, offered as choices. */
  models: string[];
  /** Where "open as notebook" sends the user (the app URL without token; the user has it from start). */
  jupyterUrl: string;
  flavor: string;
  /** Folder (relative to Jupyter's root) where "open as notebook" saves notebooks. */
  notebookFolder: string;
  /** The checkout (datasets/ and models/ live there). */
  root: string;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".json": "application/json",
  ".svg": "image/svg+xml",
};

export interface WorkbenchServerOptions {
  /** Port for the page (default: a free one). */
  port?: number;
}

export async function startWorkbench(ctx: ServiceContext, opts: WorkbenchServerOptions = {}): Promise<RunningService> {
  const staticDir = path.join(ctx.root, "dist", "workbench");
  if (!fs.existsSync(path.join(staticDir, "app.js"))) {
    throw new Error(`workbench page not built: ${staticDir}/app.js is missing (run \`npm run build\`)`);
  }
  const plotlyFile = createRequire(import.meta.url).resolve("plotly.js-dist-min");
  const jupyter = new URL(ctx.jupyter.baseUrl);
  const modelsDir = path.join(ctx.root, "models");
  const config: WorkbenchConfig = {
    model: ctx.model,
    models: fs.existsSync(modelsDir)
      ? fs.readdirSync(modelsDir).map((m) => path.join(modelsDir, m)).filter((m) => fs.existsSync(path.join(m, "config.json")))
      : [],
    jupyterUrl: `${ctx.jupyter.baseUrl}/${ctx.jupyter.flavor === "jupyterlab" ? "lab" : "tree"}`,
    flavor: ctx.jupyter.flavor,
    notebookFolder: "workbench",
    root: ctx.root,
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname.startsWith("/api/")) return proxyHttp(req, res, jupyter, ctx.jupyter.token);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "text/plain" }).end("method not allowed");
      return;
    }
    if (url.pathname === "/wb/config") {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(config));
      return;
    }
    if (url.pathname === "/vendor/plotly.min.js") return sendFile(res, plotlyFile, ".js");
    if (url.pathname === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    const rel = url.pathname === "/" ? "index.html" : decodeURIComponent(url.pathname.slice(1));
    const file = path.resolve(staticDir, rel);
    // Only files inside the built page folder are served.
    if (!file.startsWith(staticDir + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${url.pathname}`);
      return;
    }
    sendFile(res, file, path.extname(file));
  });
  server.on("upgrade", (req, socket, head) => proxyUpgrade(req, socket as net.Socket, head, jupyter, ctx.jupyter.token));

  const port = opts.port ?? (await freePort());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const sockets = new Set<net.Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  ctx.log(`workbench serving ${staticDir} on 127.0.0.1:${port}, proxying /api/ to ${jupyter.origin}`);
  return {
    name: "Workbench",
    url: `http://127.0.0.1:${port}/`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sendFile(res: http.ServerResponse, file: string, ext: string): void {
  res.writeHead(200, { "content-type": CONTENT_TYPES[ext] ?? "application/octet-stream", "cache-control": "no-cache" });
  fs.createReadStream(file).pipe(res);
}

/** Forwards one REST call to Jupyter with the token as an Authorization header. */
function proxyHttp(req: http.IncomingMessage, res: http.ServerResponse, target: URL, token: string): void {
  const headers = { ...req.headers, authorization: `token ${token}` };
  const upstream = http.request(
    { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
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
 * and headers are replayed with the token added to the query; the Host and
 * Origin headers are kept, so Jupyter's same-origin check sees the page's origin.
 */
function proxyUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer, target: URL, token: string): void {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  if (!url.pathname.startsWith("/api/")) {
    socket.destroy();
    return;
  }
  url.searchParams.set("token", token);
  const upstream = net.connect(Number(target.port), target.hostname, () => {
    const lines = [`${req.method} ${url.pathname}${url.search} HTTP/${req.httpVersion}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
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
