/**
 * Renders figure HTML in headless Chromium with the network cut off: every
 * request that is not file:, data:, blob: or about: is aborted and recorded,
 * so a test can fail on any attempt to reach the outside (a CDN, fonts, map
 * tiles). Shared by test/viz-browser.test.ts and bench/interp-bench.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

const LOCAL_PROTOCOLS = new Set(["file:", "data:", "blob:", "about:"]);

export interface OfflineBrowser {
  browser: Browser;
  /** Every non-local URL any page tried to load. */
  blocked: string[];
  /** Page errors and console errors, as text. */
  errors: string[];
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

export function chromiumAvailable(): boolean {
  return fs.existsSync(CHROMIUM_PATH);
}

export async function launchOffline(): Promise<OfflineBrowser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  const blocked: string[] = [];
  const errors: string[] = [];
  return {
    browser,
    blocked,
    errors,
    async newPage() {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.route("**/*", (route) => {
        const url = route.request().url();
        if (LOCAL_PROTOCOLS.has(new URL(url).protocol)) return route.continue();
        if (!blocked.includes(url)) blocked.push(url);
        return route.abort("blockedbyclient");
      });
      // Belt and braces: requests that bypass routing (e.g. service workers) still get recorded.
      page.on("request", (req) => {
        const url = req.url();
        if (!LOCAL_PROTOCOLS.has(new URL(url).protocol) && !blocked.includes(url)) blocked.push(url);
      });
      page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
      page.on("console", (msg) => {
        if (msg.type() === "error") errors.push(`console: ${msg.text()}`);
      });
      return page;
    },
    close: () => browser.close(),
  };
}

/** Writes `html` to `file` and opens it as a file:// page; resolves when `[data-rendered]` appears. */
export async function renderFile(page: Page, file: string, html: string, timeoutMs = 20_000): Promise<number> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, html);
  const t0 = performance.now();
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
  await page.waitForSelector("[data-rendered='1']", { state: "attached", timeout: timeoutMs });
  return performance.now() - t0;
}
