/**
 * Who may use the workbench: the one gate every request passes before it is
 * routed or proxied (the proxy adds Jupyter's token itself, so an open gate
 * would be code execution for any local process or web page).
 *
 * The rules, in the order they are checked, as Jupyter's own server does:
 *
 *  1. `Host` is the address the server listens on: `127.0.0.1:PORT` or
 *     `localhost:PORT` (browsers resolve `localhost` themselves, so neither
 *     can be DNS-rebound; the server binds 127.0.0.1 only, so `[::1]` never
 *     reaches it). Anything else → 403 (DNS rebinding).
 *  2. `Origin`, when present, is `http://` + that Host → else 403, secret or
 *     not: this is what stops a page on another origin (including another
 *     port on 127.0.0.1, which is "same-site", so SameSite cookies still go)
 *     from POSTing `text/plain` without a preflight, and from opening kernel
 *     websockets. A sandboxed result frame sends `Origin: null` and is refused.
 *  3. `Sec-Fetch-Site`, when present, is `same-origin` or `none` (typed or
 *     pasted URL) for everything but top-level navigations → else 403.
 *  4. The secret: the cookie set by the token URL, `Authorization: token S`,
 *     or `?token=S`, compared in constant time → else 401.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type * as http from "node:http";

export interface Gate {
  /** The secret printed in the start URL (`?token=`). */
  secret: string;
  /** The port the workbench listens on (Host and Origin must name it). */
  port: number;
  /**
   * The cookie carrying the secret. Cookies are scoped by host, not port, so
   * the name carries the port: two workbenches on 127.0.0.1 keep their own.
   */
  cookieName: string;
}

export type Verdict = { ok: true } | { ok: false; status: 401 | 403; reason: string };

/** A fresh gate with a crypto-strong random secret (256 bits, hex). */
export function newGate(port: number): Gate {
  return { secret: randomBytes(32).toString("hex"), port, cookieName: `llama-ts-workbench-${port}` };
}

/** The Host header values the server answers to. */
export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

/** Rule 1, for every request: the Host header names this server's loopback address and port. */
export function checkHost(req: http.IncomingMessage, gate: Gate): Verdict {
  const host = (req.headers.host ?? "").toLowerCase();
  if (allowedHosts(gate.port).includes(host)) return { ok: true };
  return { ok: false, status: 403, reason: `Host "${req.headers.host ?? ""}" is not ${allowedHosts(gate.port).join(" or ")}` };
}

/** Rules 2 and 3 (Origin, Sec-Fetch-Site): they hold even with the secret. Call after checkHost. */
export function checkOrigin(req: http.IncomingMessage): Verdict {
  const host = (req.headers.host ?? "").toLowerCase();
  const origin = req.headers.origin;
  if (origin !== undefined && origin.toLowerCase() !== `http://${host}`) {
    return { ok: false, status: 403, reason: `Origin "${origin}" is not http://${host}` };
  }
  const site = header(req, "sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none" && header(req, "sec-fetch-mode") !== "navigate") {
    return { ok: false, status: 403, reason: `Sec-Fetch-Site "${site}" is not same-origin` };
  }
  return { ok: true };
}

/** The secret, from the cookie, an `Authorization: token …` header or `?token=`. */
export function checkSecret(req: http.IncomingMessage, gate: Gate, url: URL): Verdict {
  const offered = [...cookieValues(req.headers.cookie, gate.cookieName)];
  const auth = /^token\s+(\S+)$/i.exec(req.headers.authorization ?? "");
  if (auth) offered.push(auth[1]!);
  const query = url.searchParams.get("token");
  if (query !== null) offered.push(query);
  if (offered.length === 0) return { ok: false, status: 401, reason: "no workbench secret (open the Workbench URL printed by `npm start`)" };
  // Every candidate is compared (no early exit), so timing says nothing about which one matched.
  let good = false;
  for (const o of offered) good = sameSecret(o, gate.secret) || good;
  return good ? { ok: true } : { ok: false, status: 401, reason: "wrong workbench secret (open the Workbench URL printed by `npm start`)" };
}

/**
 * Constant-time comparison: both sides are hashed first, so the comparison
 * is over equal-length digests and leaks neither content nor length.
 */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The Set-Cookie header the token URL answers with. */
export function sessionCookie(gate: Gate): string {
  return `${gate.cookieName}=${gate.secret}; HttpOnly; SameSite=Strict; Path=/`;
}

/** A Cookie header without the workbench's own cookie (what the proxy passes on to Jupyter). */
export function withoutOwnCookie(cookie: string | undefined, gate: Gate): string | undefined {
  if (cookie === undefined) return undefined;
  const kept = cookie.split(";").map((c) => c.trim()).filter((c) => c !== "" && c.split("=", 1)[0] !== gate.cookieName);
  return kept.length ? kept.join("; ") : undefined;
}

function* cookieValues(cookie: string | undefined, name: string): Generator<string> {
  for (const part of (cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) yield part.slice(eq + 1).trim();
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
