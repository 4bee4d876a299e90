/**
 * End to end: the README's run command (`npm start`) starts JupyterLab and the
 * workbench; headless Chromium opens the workbench, generates from "Once upon
 * a time" on the default model, clicks a token, sees the attention grid and
 * the logit lens render, switches the tokenizer view, compares two prompts,
 * runs a short prompt-tuning job and a 2-step DPO job, and survives the kernel being killed mid-generation. No request may leave 127.0.0.1.
 * The browser gets in through the printed URL (its secret becomes a cookie); the same
 * origin without it is refused (workbench-security.test.ts has every case).
 * Screenshots go to test-artifacts/workbench-*.png.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

const ROOT = path.resolve(__dirname, "..");
const ARTIFACTS = path.join(ROOT, "test-artifacts");
const SAMPLES = JSON.parse(fs.readFileSync(path.join(ROOT, "models/tiny-stories/samples.json"), "utf8")) as {
  generations?: { prompt: string; greedy: string }[];
};

let server: ChildProcess | undefined;
let browser: Browser | undefined;
let page: Page;
let workbenchUrl = "";
let jupyterUrl = "";
const offMachine: string[] = [];

function isLocal(url: string): boolean {
  if (url.startsWith("data:") || url.startsWith("blob:") || url.startsWith("about:")) return true;
  const host = new URL(url).hostname;
  return host === "127.0.0.1" || host === "localhost" || host === "[::1]";
}

/** Starts `npm start` and resolves with the printed URLs once both are there. */
function startServers(): Promise<{ jupyter: string; workbench: string }> {
  return new Promise((resolve, reject) => {
    // dist/ was just built by `npm test`; LLAMA_TS_PREBUILT skips setup and a second build.
    server = spawn("npm", ["start"], { cwd: ROOT, env: { ...process.env, LLAMA_TS_PREBUILT: "1" }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`npm start printed no URLs within 120 s\nstdout: ${out}\nstderr: ${err}`)), 120_000);
    server.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const lab = /^(?:JupyterLab|Notebook): (\S+)$/m.exec(out);
      const wb = /^Workbench: (\S+)$/m.exec(out);
      if (lab && wb) {
        clearTimeout(timer);
        resolve({ jupyter: lab[1]!, workbench: wb[1]! });
      }
    });
    server.stderr!.on("data", (d: Buffer) => void (err += d.toString()));
    server.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited with ${code}\nstdout: ${out}\nstderr: ${err}`));
    });
  });
}

async function shot(name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `workbench-${name}.png`), fullPage: true });
}

/** The Jupyter kernels' ids, through the REST API with the token from the printed URL. */
async function kernelIds(): Promise<string[]> {
  const u = new URL(jupyterUrl);
  const res = await fetch(`${u.origin}/api/kernels?token=${u.searchParams.get("token")}`);
  return ((await res.json()) as { id: string }[]).map((k) => k.id);
}

describe("workbench end to end (npm start + chromium)", () => {
  beforeAll(async () => {
    const urls = await startServers();
    workbenchUrl = urls.workbench;
    jupyterUrl = urls.jupyter;
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    const context = await browser.newContext({ viewport: { width: 1300, height: 950 } });
    // Every request is checked; anything not on this machine is blocked and recorded.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (isLocal(url)) return route.continue();
      offMachine.push(url);
      return route.abort();
    });
    page = await context.newPage();
    page.on("websocket", (ws) => {
      if (!isLocal(ws.url())) offMachine.push(ws.url());
    });
    // The printed URL carries the secret: it answers with the cookie and a redirect to "/".
    const landing = await page.goto(workbenchUrl);
    expect(landing?.url()).toBe(new URL("/", workbenchUrl).href);
    expect((await context.cookies()).map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([[`llama-ts-workbench-${new URL(workbenchUrl).port}`, true, "Strict"]]);
    // The page loads the default model at start; the model card fills in once it is loaded.
    await page.waitForSelector("#model-card h3", { state: "attached", timeout: 90_000 });
    await page.waitForFunction(`document.body.dataset.ready === "true"`, undefined, { timeout: 30_000 });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    if (server?.pid) {
      try { process.kill(-server.pid, "SIGTERM"); } catch { /* already gone */ }
      await new Promise((r) => setTimeout(r, 1500));
      try { process.kill(-server.pid, "SIGKILL"); } catch { /* already gone */ }
    }
  });

  it("prints both URLs on 127.0.0.1", () => {
    expect(jupyterUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/(lab|tree)\?token=\w+/);
    expect(workbenchUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
  });

  it("refuses the API and the page to a client without the secret", async () => {
    const origin = new URL(workbenchUrl).origin;
    expect((await fetch(`${origin}/api/contents`)).status).toBe(401);
    expect((await fetch(`${origin}/api/kernels`, { method: "POST", body: '{"name":"llama-ts"}' })).status).toBe(401);
    const pageWithout = await fetch(`${origin}/`);
    expect(pageWithout.status).toBe(401);
    expect(await pageWithout.text()).toMatch(/\?token=/);
  });

  it("shows the default model's card", async () => {
    await page.click("nav button[data-tab=model]");
    expect(await page.textContent("#model-card")).toContain("5.40M parameters");
    await shot("model");
  });

  it("generates from 'Once upon a time' with streaming, as HF's greedy", async () => {
    await page.click("nav button[data-tab=generate]");
    await page.fill("#prompt", "Once upon a time");
    await page.fill("#max-new-tokens", "24");
    await page.click("#generate");
    await page.waitForSelector("#tokens .token.generated", { timeout: 60_000 });
    const text = (await page.textContent("#stream-text")) ?? "";
    const firstMs = await page.getAttribute("#stream-text", "data-first-token-ms");
    console.log(`[workbench] Generate → first streamed token: ${firstMs} ms`);
    expect(firstMs).not.toBeNull();
    // samples.json holds HF's greedy continuation of this prompt: the streamed text must be its start.
    const greedy = SAMPLES.generations?.find((g) => g.prompt === "Once upon a time")?.greedy ?? "";
    expect(greedy.length).toBeGreaterThan(40);
    expect(text.startsWith("Once upon a time")).toBe(true);
    const continuation = text.slice("Once upon a time".length).trimEnd();
    expect(continuation.length).toBeGreaterThan(20);
    expect(greedy.startsWith(continuation)).toBe(true);
    await shot("generate");
  });

  it("clicking a generated token renders the attention grid and the logit lens", async () => {
    const token = page.locator("#tokens .token.generated").nth(3);
    await token.click();
    await page.waitForSelector("#attention-out .plotly-host .main-svg", { timeout: 90_000 });
    await page.waitForSelector("#attention-out iframe", { timeout: 30_000 }); // head view
    // The head view runs its script in a frame with an opaque origin: it draws, and it reports
    // its height to the page by postMessage (the frame's document is out of the page's reach).
    const frame = page.locator("#attention-out iframe.html-output").first();
    expect(await frame.getAttribute("sandbox")).toBe("allow-scripts");
    await page.frameLocator("#attention-out iframe.html-output").first().locator("svg.lines line").first().waitFor({ state: "attached", timeout: 30_000 });
    await page.waitForFunction(`(() => { const f = document.querySelector("#attention-out iframe.html-output"); return f && f.style.height !== "420px" && f.contentDocument === null; })()`, undefined, { timeout: 10_000 });
    await shot("attention");
    await page.click("nav button[data-tab=lens]");
    await page.waitForSelector("#lens-out .plotly-host .main-svg", { timeout: 90_000 });
    const heat = await page.locator("#lens-out .plotly-host .heatmaplayer, #lens-out .plotly-host .hm").count();
    expect(heat).toBeGreaterThan(0);
    await shot("lens");
  });

  it("switches to the tokenizer view and compares two tokenizers", async () => {
    await page.click("nav button[data-tab=tokenizer]");
    await page.fill("#tok-text", "Once upon a time 🤖");
    await page.fill("#tok-compare", path.join(ROOT, "test/fixtures/tokenizers/llama2/tokenizer.model"));
    await page.click("#tokenize");
    await page.waitForSelector("#token-table tr:nth-child(3)", { timeout: 60_000 });
    const rows = await page.locator("#token-table tr").count();
    expect(rows).toBeGreaterThan(4);
    expect(await page.locator("#tok-out .html-output").count()).toBeGreaterThanOrEqual(2); // spans + compare view
    await shot("tokenizer");
  });

  it("compares two prompts: next-token charts and log-prob strips for each", async () => {
    await page.click("nav button[data-tab=compare]");
    await page.click("#compare-run");
    await page.waitForSelector("#compare-summary tr:nth-child(3)", { timeout: 60_000 });
    expect(await page.locator("#compare-out .plotly-host").count()).toBe(4);
    const rows = await page.locator("#compare-summary tr").allTextContents();
    expect(rows[1]).toMatch(/^A/);
    expect(rows[2]).toMatch(/^B/);
    await shot("compare");
  });

  it("runs a short prompt-tuning job on the topic data with a live loss curve", async () => {
    await page.click("nav button[data-tab=tuning]");
    await page.fill("#tune-steps", "2");
    await page.fill("#tune-batch", "8");
    await page.click("#tune-start");
    await page.waitForSelector("#tune-curve .plotly-host .main-svg", { timeout: 120_000 });
    await page.waitForFunction(`/2 steps in/.test(document.querySelector("#tune-summary")?.textContent ?? "")`, undefined, { timeout: 180_000 });
    expect(await page.textContent("#tune-summary")).toMatch(/adapter saved to/);
    await shot("tuning");
  });

  it("runs a 2-step DPO job on the preference pairs: live curves, the adapter written, samples before and after", async () => {
    const adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-workbench-dpo-"));
    await page.click("nav button[data-tab=dpo]");
    expect(await page.inputValue("#dpo-data")).toBe(path.join(ROOT, "datasets/preference/train.jsonl"));
    await page.fill("#dpo-steps", "2");
    await page.fill("#dpo-out-dir", adapterDir);
    await page.click("#dpo-start");
    await page.waitForSelector("#dpo-out .plotly-host .main-svg", { timeout: 120_000 });
    await page.waitForFunction(`/2 steps in/.test(document.querySelector("#dpo-summary")?.textContent ?? "")`, undefined, { timeout: 240_000 });
    // At step 1 the policy is the reference (LoRA's B starts at 0): TRL's sigmoid loss is log 2 exactly, and
    // the recipe's NLL term adds 0.5 × the chosen completions' nats per token (more than 0, and less than a
    // uniform guess over the 2,048-token vocabulary would cost). The CLI test checks the same run as the library's.
    const summary = await page.textContent("#dpo-summary");
    expect(summary).toMatch(/loss \d\.\d{3} → \d\.\d{3}; reward margin -?\d\.\d{3}, accuracy \d\.\d{2}.*adapter saved to /);
    const first = Number(/loss (\d\.\d{3})/.exec(summary ?? "")![1]);
    expect(first - Math.log(2)).toBeGreaterThan(0.05);
    expect(first - Math.log(2)).toBeLessThan(0.5 * Math.log(2048));
    // Five curves (loss, margin, accuracy, policy and reference log-prob), two points each.
    const points = await page.evaluate(`[...document.querySelector("#dpo-out .plotly-host").data].map((t) => t.y.length)`);
    expect(points).toEqual([2, 2, 2, 2, 2]);
    // Three prompts × two samples, before and after, side by side.
    expect(await page.locator("#dpo-out table.dpo-samples tr").count()).toBe(7);
    const config = JSON.parse(fs.readFileSync(path.join(adapterDir, "adapter_config.json"), "utf8")) as { peft_type: string; r: number; target_modules: string[] };
    expect([config.peft_type, config.r, [...config.target_modules].sort()]).toEqual(["LORA", 8, ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]]);
    expect(fs.statSync(path.join(adapterDir, "adapter_model.safetensors")).size).toBeGreaterThan(100_000);
    await shot("dpo");
    // The run is a cell of library code in the history, like every other action.
    await page.click("nav button[data-tab=history]");
    expect(await page.locator("#history-list li.run.ok .title", { hasText: "DPO on train.jsonl" }).count()).toBe(1);
    fs.rmSync(adapterDir, { recursive: true, force: true });
  });

  it("shows an error and a restart button when the kernel is killed mid-generation, then works again", async () => {
    await page.click("nav button[data-tab=generate]");
    // min = max = 480 new tokens keeps the kernel busy for seconds: long enough to be killed mid-stream.
    await page.fill("#max-new-tokens", "480");
    await page.fill("#min-new-tokens", "480");
    await page.click("#do-sample");
    await page.click("#generate");
    // Page-side expressions are strings: this file is type-checked without DOM types.
    await page.waitForFunction(`(document.querySelector("#stream-text")?.textContent ?? "").length > 30`, undefined, { timeout: 60_000 });
    // Still streaming: the token chips appear only when the cell finishes.
    expect(await page.locator("#tokens .token").count()).toBe(0);
    const [id] = await kernelIds();
    expect(id).toBeTruthy();
    // The kernel's connection file carries its id; SIGKILL is what an OOM kill looks like.
    execFileSync("pkill", ["-KILL", "-f", `kernel-${id}`]);
    await page.waitForSelector("#error-restart", { timeout: 60_000 });
    expect(await page.textContent("#error")).toMatch(/kernel/i);
    await shot("kernel-killed");
    await page.click("#error-restart");
    await page.waitForFunction(`document.body.dataset.ready === "true"`, undefined, { timeout: 90_000 });
    await page.click("#do-sample");
    await page.fill("#min-new-tokens", "0");
    await page.fill("#max-new-tokens", "8");
    await page.click("#generate");
    await page.waitForFunction(`document.querySelectorAll("#tokens .token.generated").length === 8`, undefined, { timeout: 90_000 });
    expect(await page.isHidden("#error")).toBe(true);
    await shot("after-restart");
  });

  it("sent no request off this machine", () => {
    expect(offMachine).toEqual([]);
  });
});
