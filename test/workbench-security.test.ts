/**
 * The workbench is no back door (issue 13 item 1): its port proxies Jupyter
 * with Jupyter's token, so every request must pass the gate first.
 *
 * Most cases run against a stub upstream on loopback that records what
 * reaches it: the gate sits before routing, so "the stub saw nothing" is the
 * proof a refused request went nowhere, and "the stub saw Jupyter's token and
 * not ours" checks what the proxy passes on. One block runs the same gate in
 * front of a real JupyterLab (token auth and XSRF through the proxy).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { startWorkbench } from "../kernel/workbench/server.js";
import { sameSecret } from "../kernel/workbench/access.js";
import { startJupyter, type JupyterServer } from "../kernel/server/jupyter-server.js";
import type { RunningService } from "../kernel/server/service.js";

const ROOT = path.resolve(__dirname, "..");
const JUPYTER_TOKEN = "jupyter-token-for-the-stub";

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; upgrade: boolean }
interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

/** One HTTP request with exactly these headers (fetch would not let us set Host). */
function request(port: number, method: string, pathAndQuery: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: pathAndQuery, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => void (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A websocket upgrade request; resolves with the status line's code (101 when it went through). */
function upgrade(port: number, pathAndQuery: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1", port, path: pathAndQuery,
      headers: {
        host: `127.0.0.1:${port}`, connection: "Upgrade", upgrade: "websocket",
        "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", ...headers,
      },
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Resolves true when a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(2000, () => { s.destroy(); resolve(false); });
    s.once("connect", () => { s.destroy(); resolve(true); });
    s.once("error", () => resolve(false));
  });
}

describe("workbench access gate (stub upstream)", () => {
  const seen: Seen[] = [];
  let stub: http.Server;
  let wb: RunningService;
  let port = 0;
  let secret = "";
  let cookieName = "";
  let goodCookie = "";

  beforeAll(async () => {
    stub = http.createServer((req, res) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, upgrade: false });
      req.resume();
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ upstream: true }));
    });
    stub.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, upgrade: true });
      socket.end("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n");
    });
    await new Promise<void>((r) => stub.listen(0, "127.0.0.1", () => r()));
    const stubPort = (stub.address() as net.AddressInfo).port;
    wb = await startWorkbench({
      root: ROOT,
      jupyter: { flavor: "jupyterlab", baseUrl: `http://127.0.0.1:${stubPort}`, token: JUPYTER_TOKEN },
      model: path.join(ROOT, "models", "tiny-stories"),
      log: () => {},
    });
    const printed = /^http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]+)$/.exec(wb.url);
    expect(printed, wb.url).not.toBeNull();
    port = Number(printed![1]);
    secret = printed![2]!;
    cookieName = `llama-ts-workbench-${port}`;
    goodCookie = `${cookieName}=${secret}`;
  });
  afterAll(async () => {
    await wb?.stop();
    await new Promise<void>((r) => stub?.close(() => r()));
  });

  /** Runs `fn` and returns what reached the stub meanwhile. */
  async function reaching<T>(fn: () => Promise<T>): Promise<{ result: T; upstream: Seen[] }> {
    const before = seen.length;
    const result = await fn();
    await new Promise((r) => setTimeout(r, 50)); // a forwarded request would have arrived by now
    return { result, upstream: seen.slice(before) };
  }

  it("prints a fresh 256-bit secret; two workbenches get different ones", async () => {
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    const other = await startWorkbench({ root: ROOT, jupyter: { flavor: "jupyterlab", baseUrl: "http://127.0.0.1:9", token: "x" }, model: ROOT, log: () => {} });
    try {
      expect(new URL(other.url).searchParams.get("token")).toMatch(/^[0-9a-f]{64}$/);
      expect(new URL(other.url).searchParams.get("token")).not.toBe(secret);
    } finally {
      await other.stop();
    }
  });

  it("the printed URL answers 302 to / with an HttpOnly, SameSite=Strict cookie holding the secret", async () => {
    const { result, upstream } = await reaching(() => request(port, "GET", `/?token=${secret}`));
    expect(result.status).toBe(302);
    expect(result.headers.location).toBe("/");
    expect(result.headers["set-cookie"]).toEqual([`${cookieName}=${secret}; HttpOnly; SameSite=Strict; Path=/`]);
    expect(result.headers["cache-control"]).toBe("no-store");
    expect(upstream).toEqual([]);
  });

  it("REST without the secret: 401 before proxying (the issue's POST /api/kernels and GET /api/contents)", async () => {
    for (const [method, p, body] of [["POST", "/api/kernels", '{"name":"llama-ts"}'], ["GET", "/api/contents", undefined]] as const) {
      const { result, upstream } = await reaching(() => request(port, method, p, {}, body));
      expect(result.status, `${method} ${p}`).toBe(401);
      expect(JSON.parse(result.body).message).toMatch(/no workbench secret/);
      expect(upstream).toEqual([]);
    }
  });

  it("REST with a wrong secret (cookie, Authorization header, ?token=, one character off): 401, nothing proxied", async () => {
    const oneOff = secret.slice(0, -1) + (secret.endsWith("0") ? "1" : "0");
    const tries: [string, Record<string, string>][] = [
      ["/api/contents", { cookie: `${cookieName}=${oneOff}` }],
      ["/api/contents", { cookie: `other=${secret}` }], // the secret under another cookie's name
      ["/api/contents", { authorization: `token ${oneOff}` }],
      ["/api/contents", { authorization: `token ${JUPYTER_TOKEN}` }], // Jupyter's token is not ours
      [`/api/contents?token=${oneOff}`, {}],
      ["/api/contents?token=", {}],
    ];
    for (const [p, headers] of tries) {
      const { result, upstream } = await reaching(() => request(port, "GET", p, headers));
      expect(result.status, `${p} ${JSON.stringify(headers)}`).toBe(401);
      expect(upstream).toEqual([]);
    }
  });

  it("the comparison is of the whole secret", () => {
    expect(sameSecret(secret, secret)).toBe(true);
    expect(sameSecret(secret.slice(0, 63), secret)).toBe(false);
    expect(sameSecret(secret + "0", secret)).toBe(false);
    expect(sameSecret("", secret)).toBe(false);
  });

  it("REST with the cookie: proxied with Jupyter's token, without the workbench's cookie or ?token=", async () => {
    const { result, upstream } = await reaching(() =>
      request(port, "POST", "/api/kernels?x=1", { cookie: `_xsrf=abc; ${goodCookie}; other=1`, origin: `http://127.0.0.1:${port}`, "content-type": "application/json" }, '{"name":"llama-ts"}'));
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body)).toEqual({ upstream: true });
    expect(upstream).toHaveLength(1);
    expect(upstream[0]!.url).toBe("/api/kernels?x=1");
    expect(upstream[0]!.headers.authorization).toBe(`token ${JUPYTER_TOKEN}`);
    expect(upstream[0]!.headers.cookie).toBe("_xsrf=abc; other=1");
  });

  it("REST with the secret as Authorization header or ?token=: proxied, the secret stripped", async () => {
    const viaHeader = await reaching(() => request(port, "GET", "/api/contents", { authorization: `token ${secret}` }));
    expect(viaHeader.result.status).toBe(200);
    expect(viaHeader.upstream[0]!.headers.authorization).toBe(`token ${JUPYTER_TOKEN}`);
    const viaQuery = await reaching(() => request(port, "GET", `/api/contents?type=directory&token=${secret}`));
    expect(viaQuery.result.status).toBe(200);
    expect(viaQuery.upstream[0]!.url).toBe("/api/contents?type=directory");
  });

  it("cross-origin requests are refused with 403 even with the cookie (text/plain POST, null, another port, Sec-Fetch-Site)", async () => {
    const tries: Record<string, string>[] = [
      { origin: "http://evil.example", "content-type": "text/plain" },
      { origin: "null", "content-type": "text/plain" }, // a sandboxed result frame
      { origin: `http://127.0.0.1:${port + 1}` }, // same site, other origin: SameSite cookies still go there
      { origin: `https://127.0.0.1:${port}` },
      { "sec-fetch-site": "same-site", "sec-fetch-mode": "no-cors" },
      { "sec-fetch-site": "cross-site", "sec-fetch-mode": "cors" },
    ];
    for (const headers of tries) {
      const { result, upstream } = await reaching(() =>
        request(port, "POST", "/api/kernels", { cookie: goodCookie, ...headers }, '{"name":"llama-ts"}'));
      expect(result.status, JSON.stringify(headers)).toBe(403);
      expect(upstream).toEqual([]);
    }
    // The page's own requests: same origin, as a browser labels them.
    const own = await request(port, "POST", "/api/kernels", { cookie: goodCookie, origin: `http://127.0.0.1:${port}`, "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors" }, "{}");
    expect(own.status).toBe(200);
  });

  it("a Host other than the loopback address and port is refused with 403 (DNS rebinding), secret or not", async () => {
    for (const host of [`evil.example:${port}`, `127.0.0.1:${port + 1}`, `192.0.2.1:${port}`, "127.0.0.1"]) {
      const { result, upstream } = await reaching(() => request(port, "GET", "/api/contents", { host, cookie: goodCookie }));
      expect(result.status, `Host: ${host}`).toBe(403);
      expect(upstream).toEqual([]);
    }
    // No Host at all (HTTP/1.0 allows that; node's client always sends one, so by hand).
    const bare = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => s.end(`GET /api/contents HTTP/1.0\r\nCookie: ${goodCookie}\r\n\r\n`));
      let text = "";
      s.on("data", (d) => void (text += d.toString()));
      s.on("end", () => resolve(text));
      s.on("error", reject);
    });
    expect(bare).toMatch(/^HTTP\/1\.1 403 /);
    const rebound = await request(port, "GET", "/vendor/plotly.min.js", { host: `evil.example:${port}` });
    expect(rebound.status).toBe(403);
    // localhost:PORT is accepted (browsers resolve "localhost" themselves).
    expect((await request(port, "GET", "/api/contents", { host: `localhost:${port}`, cookie: goodCookie })).status).toBe(200);
  });

  it("websocket upgrade without the secret: 401, with a foreign Origin: 403, nothing proxied", async () => {
    const ws = "/api/kernels/0b0b0b0b-0000-0000-0000-000000000000/channels?session_id=s1";
    const none = await reaching(() => upgrade(port, ws, { origin: `http://127.0.0.1:${port}` }));
    expect(none.result).toBe(401);
    const wrong = await reaching(() => upgrade(port, ws, { origin: `http://127.0.0.1:${port}`, cookie: `${cookieName}=${"0".repeat(64)}` }));
    expect(wrong.result).toBe(401);
    const foreign = await reaching(() => upgrade(port, ws, { origin: "http://evil.example", cookie: goodCookie }));
    expect(foreign.result).toBe(403);
    const badHost = await reaching(() => upgrade(port, ws, { host: `evil.example:${port}`, cookie: goodCookie }));
    expect(badHost.result).toBe(403);
    expect([...none.upstream, ...wrong.upstream, ...foreign.upstream, ...badHost.upstream]).toEqual([]);
  });

  it("websocket upgrade with the cookie: proxied with Jupyter's token in the query, without the workbench's secret", async () => {
    const ws = `/api/kernels/0b0b0b0b-0000-0000-0000-000000000000/channels?session_id=s1&token=${secret}`;
    const { result, upstream } = await reaching(() => upgrade(port, ws, { origin: `http://127.0.0.1:${port}`, cookie: `a=1; ${goodCookie}` }));
    expect(result).toBe(101);
    expect(upstream).toHaveLength(1);
    expect(upstream[0]!.upgrade).toBe(true);
    const url = new URL(upstream[0]!.url, "http://x");
    expect(url.searchParams.get("token")).toBe(JUPYTER_TOKEN);
    expect(url.searchParams.get("session_id")).toBe("s1");
    expect(upstream[0]!.headers.cookie).toBe("a=1");
    expect(upstream[0]!.headers.origin).toBe(`http://127.0.0.1:${port}`);
  });

  it("the page and its config without the cookie: 401 that says how to get in and leaks nothing", async () => {
    for (const p of ["/", "/index.html", "/app.js", `/?token=${"0".repeat(64)}`]) {
      const res = await request(port, "GET", p);
      expect(res.status, p).toBe(401);
      expect(res.headers["content-type"]).toMatch(/^text\/html/);
      expect(res.body).toMatch(/npm start/);
      expect(res.body).toMatch(/\?token=/);
      for (const secretish of [secret, JUPYTER_TOKEN, ROOT]) expect(res.body).not.toContain(secretish);
      expect(res.headers["set-cookie"]).toBeUndefined();
    }
    const config = await request(port, "GET", "/wb/config");
    expect(config.status).toBe(401);
    expect(config.body).not.toContain(ROOT);
  });

  it("with the cookie: the page (200, never framed) and its config", async () => {
    const page = await request(port, "GET", "/", { cookie: goodCookie, "sec-fetch-site": "none", "sec-fetch-mode": "navigate" });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<script type="module" src="app.js">');
    expect(page.headers["x-frame-options"]).toBe("DENY");
    const config = await request(port, "GET", "/wb/config", { cookie: goodCookie });
    expect(config.status).toBe(200);
    expect(JSON.parse(config.body).root).toBe(ROOT);
    expect(config.body).not.toContain(JUPYTER_TOKEN);
  });

  it("plotly.js is public (result frames have no cookie); other files are not", async () => {
    const plotly = await request(port, "GET", "/vendor/plotly.min.js", { "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors" });
    expect(plotly.status).toBe(200);
    expect(plotly.body.length).toBeGreaterThan(1_000_000);
    expect((await request(port, "GET", "/app.css")).status).toBe(401);
  });

  it("listens on 127.0.0.1 only", async () => {
    expect(await accepts("127.0.0.1", port)).toBe(true);
    const others = Object.values(os.networkInterfaces()).flat().filter((a) => a && !a.internal && a.family === "IPv4").map((a) => a!.address);
    console.log(`[workbench-security] non-loopback addresses tried: ${others.join(", ") || "(none on this machine)"}`);
    for (const addr of others) expect(await accepts(addr, port), addr).toBe(false);
    expect(await accepts("::1", port)).toBe(false);
  });

  it("the result iframe is sandboxed without allow-same-origin (the built page)", () => {
    // The e2e browser test checks the rendered frame; this pins the source the page is built from.
    const render = fs.readFileSync(path.join(ROOT, "kernel/workbench/web/render.ts"), "utf8");
    const sandboxes = [...render.matchAll(/sandbox:\s*"([^"]*)"/g)].map((m) => m[1]);
    expect(sandboxes).toEqual(["allow-scripts"]);
    const bundle = fs.readFileSync(path.join(ROOT, "dist/workbench/app.js"), "utf8");
    expect(bundle).toContain('sandbox:"allow-scripts"');
    expect(bundle).not.toContain("allow-same-origin");
  });
});

describe("workbench access gate in front of a real JupyterLab", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-wb-sec-"));
  let jupyter: JupyterServer | undefined;
  let wb: RunningService | undefined;
  let port = 0;
  let cookie = "";

  beforeAll(async () => {
    fs.mkdirSync(path.join(tmp, "nb"));
    jupyter = await startJupyter({
      root: ROOT,
      notebookDir: path.join(tmp, "nb"),
      flavor: "jupyterlab",
      env: { JUPYTER_CONFIG_DIR: path.join(tmp, "config"), JUPYTER_RUNTIME_DIR: path.join(tmp, "runtime") },
    });
    wb = await startWorkbench({ root: ROOT, jupyter, model: path.join(ROOT, "models", "tiny-stories"), log: () => {} });
    port = Number(new URL(wb.url).port);
    const landing = await request(port, "GET", new URL(wb.url).pathname + new URL(wb.url).search);
    expect(landing.status).toBe(302);
    cookie = landing.headers["set-cookie"]![0]!.split(";")[0]!;
  }, 120_000);
  afterAll(async () => {
    await wb?.stop();
    await jupyter?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("the issue's requests: no secret → 401; cross-origin text/plain with the cookie → 403; the page's own → through", async () => {
    const own = `http://127.0.0.1:${port}`;
    expect((await request(port, "GET", "/api/contents")).status).toBe(401);
    expect((await request(port, "PUT", "/api/contents/made-by-evil", { origin: "http://evil.example", "content-type": "text/plain", cookie }, '{"type":"directory"}')).status).toBe(403);
    expect(fs.existsSync(path.join(tmp, "nb", "made-by-evil"))).toBe(false);
    // Jupyter's own XSRF check passes (the proxy authenticates with the token) and the write lands.
    const made = await request(port, "PUT", "/api/contents/made-by-page", { origin: own, "content-type": "application/json", cookie }, '{"type":"directory"}');
    expect(made.status).toBe(201);
    expect(fs.statSync(path.join(tmp, "nb", "made-by-page")).isDirectory()).toBe(true);
    const listed = JSON.parse((await request(port, "GET", "/api/contents", { cookie })).body) as { content: { name: string }[] };
    expect(listed.content.map((c) => c.name)).toEqual(["made-by-page"]);
    // Directly on Jupyter's port nothing changed: no token, no entry.
    expect((await fetch(`${jupyter!.baseUrl}/api/contents`)).status).toBe(403);
  });
});
