/**
 * The workbench's own HTTP server (started by `llama-ts start`).
 *
 * It serves the page (dist/workbench/: index.html, app.js, app.css, built by
 * scripts/build.mjs), a local plotly.js, and a small config endpoint, and it
 * reverse-proxies Jupyter's REST API and kernel websockets under /api/ so the
 * page talks to the Jupyter server through @jupyterlab/services from the same
 * origin (proxy.ts adds Jupyter's token: the page never sees it).
 *
 * Access works as Jupyter's own: the server listens on 127.0.0.1 only and
 * prints `http://127.0.0.1:PORT/?token=SECRET` (a fresh random secret); that
 * URL answers with an HttpOnly, SameSite=Strict cookie and a 302 to `/`, so
 * the secret leaves the address bar. Every other request passes the gate in
 * access.ts (Host, Origin, the secret) before it is routed or proxied; only
 * plotly.js and the favicon, public files, skip the secret.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { createRequire } from "node:module";
import type { RunningService, ServiceContext } from "../server/service.js";
import { freePort } from "../server/jupyter-server.js";
import { checkHost, checkOrigin, checkSecret, newGate, sessionCookie, type Verdict } from "./access.js";
import { proxyHttp, proxyUpgrade, type Upstream } from "./proxy.js";

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

/** Headers on everything the workbench itself answers: never framed, never cached, no Referer. */
const OWN_HEADERS = { "x-frame-options": "DENY", "referrer-policy": "no-referrer", "x-content-type-options": "nosniff" };

/** What a refused browser navigation shows: how to get in, nothing else. */
const LOCKED_PAGE = `<!doctype html><meta charset="utf-8"><title>llama-ts workbench</title>
<p>This is the llama-ts workbench. Open it with the URL that <code>npm start</code> printed
(<code>Workbench: http://127.0.0.1:PORT/?token=…</code>): it sets a cookie for this browser and brings you here.</p>
`;

export async function startWorkbench(ctx: ServiceContext, opts: WorkbenchServerOptions = {}): Promise<RunningService> {
  const staticDir = path.join(ctx.root, "dist", "workbench");
  if (!fs.existsSync(path.join(staticDir, "app.js"))) {
    throw new Error(`workbench page not built: ${staticDir}/app.js is missing (run \`npm run build\`)`);
  }
  const plotlyFile = createRequire(import.meta.url).resolve("plotly.js-dist-min");
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

  const port = opts.port ?? (await freePort());
  const gate = newGate(port);
  const upstream: Upstream = { target: new URL(ctx.jupyter.baseUrl), token: ctx.jupyter.token, gate };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const host = checkHost(req, gate);
    if (!host.ok) return refuse(res, host, url);
    // Public files: plotly.js is also loaded by sandboxed result frames (opaque origin, no cookie).
    if (req.method === "GET" || req.method === "HEAD") {
      if (url.pathname === "/vendor/plotly.min.js") return sendFile(res, plotlyFile, ".js");
      if (url.pathname === "/favicon.ico") return void res.writeHead(204).end();
    }
    const verdict = [checkOrigin(req), checkSecret(req, gate, url)].find((v) => !v.ok);
    if (verdict && !verdict.ok) return refuse(res, verdict, url);
    if (url.pathname.startsWith("/api/")) return proxyHttp(req, res, upstream);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "text/plain", ...OWN_HEADERS }).end("method not allowed");
      return;
    }
    if (url.pathname === "/" && url.searchParams.has("token")) {
      // The printed URL: trade the secret in the address bar for the cookie.
      res.writeHead(302, { location: "/", "set-cookie": sessionCookie(gate), "cache-control": "no-store", ...OWN_HEADERS }).end();
      return;
    }
    if (url.pathname === "/wb/config") {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store", ...OWN_HEADERS }).end(JSON.stringify(config));
      return;
    }
    const rel = url.pathname === "/" ? "index.html" : decodeURIComponent(url.pathname.slice(1));
    const file = path.resolve(staticDir, rel);
    // Only files inside the built page folder are served.
    if (!file.startsWith(staticDir + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain", ...OWN_HEADERS }).end(`not found: ${url.pathname}`);
      return;
    }
    sendFile(res, file, path.extname(file));
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const verdict = [checkHost(req, gate), checkOrigin(req), checkSecret(req, gate, url)].find((v) => !v.ok);
    if (verdict && !verdict.ok) return refuseUpgrade(socket, verdict);
    if (!url.pathname.startsWith("/api/")) return refuseUpgrade(socket, { status: 404, reason: "not found" });
    proxyUpgrade(req, socket, head, upstream);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // Loopback only: the gate's Host rule assumes nothing else can reach this port.
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const sockets = new Set<net.Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  ctx.log(`workbench serving ${staticDir} on 127.0.0.1:${port}, proxying /api/ to ${upstream.target.origin}`);
  return {
    name: "Workbench",
    url: `http://127.0.0.1:${port}/?token=${gate.secret}`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** 401/403: JSON for the API (as Jupyter answers), the locked page for a browser navigation. */
function refuse(res: http.ServerResponse, v: Exclude<Verdict, { ok: true }>, url: URL): void {
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/wb/")) {
    res.writeHead(v.status, { "content-type": "application/json", ...OWN_HEADERS }).end(JSON.stringify({ message: v.reason }));
  } else {
    res.writeHead(v.status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", ...OWN_HEADERS }).end(LOCKED_PAGE);
  }
}

function refuseUpgrade(socket: net.Socket, v: { status: number; reason: string }): void {
  const text = http.STATUS_CODES[v.status] ?? "Error";
  const body = JSON.stringify({ message: v.reason });
  socket.end(`HTTP/1.1 ${v.status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

function sendFile(res: http.ServerResponse, file: string, ext: string): void {
  res.writeHead(200, { "content-type": CONTENT_TYPES[ext] ?? "application/octet-stream", "cache-control": "no-cache", ...OWN_HEADERS });
  fs.createReadStream(file).pipe(res);
}
