/**
 * Browser test: the README's run command (`llama-ts start`, what `npm start`
 * runs) starts JupyterLab from the project venv (or Notebook 6 when only
 * Debian's Jupyter is there); headless chromium opens 01-quickstart, runs all
 * cells, and the outputs (generated text, the plotly figure, the progress bar)
 * must be in the DOM with no error output. Every request the page makes must
 * stay on 127.0.0.1. Then 03-attention and 04-logit-lens run the same way and
 * must draw their plotly figures. Screenshots: test-artifacts/browser-*.png.
 *
 * JupyterLab writes into the folder it serves (checkpoints, autosaves), so
 * the server gets a copy of notebooks/ in a temporary mirror of the checkout
 * (every other top-level entry a symlink, so `../models/…` paths resolve);
 * the last test checks the checkout's notebooks/ was left as it was.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "./kernel/harness.js";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

interface Started {
  child: ChildProcess;
  jupyterPid?: number;
  flavor: "JupyterLab" | "Notebook";
  url: URL;
}

/** Runs `llama-ts start --notebook-dir DIR` and waits for its `JupyterLab: <url>` (or `Notebook: <url>`) line. */
function startServer(env: NodeJS.ProcessEnv, notebookDir: string): Promise<Started> {
  const args = [path.join(ROOT, "bin", "llama-ts.js"), "start", "--notebook-dir", notebookDir];
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL line from llama-ts start within 150s; stderr:\n${err}`)), 150_000);
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^(JupyterLab|Notebook): (http:\/\/127\.0\.0\.1:\d+\/\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        const pid = /jupyter pid (\d+)/.exec(err);
        resolve({ child, flavor: m[1] as Started["flavor"], url: new URL(m[2]!), jupyterPid: pid ? Number(pid[1]) : undefined });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`llama-ts start exited (${code}) before printing a URL; stderr:\n${err}`));
    });
  });
}

async function runAllJupyterLab(page: Page, base: string, token: string, notebook = "01-quickstart.ipynb"): Promise<void> {
  // A workspace of its own per notebook, so JupyterLab does not restore the notebooks opened before.
  const workspace = notebook.replace(/\W+/g, "-");
  await page.goto(`${base}/lab/workspaces/${workspace}/tree/${notebook}?token=${token}`);
  await page.waitForSelector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", { timeout: 120_000 });
  await acceptKernelDialog(page);
  // The kernel named in the notebook's metadata (llama-ts) must be up before running.
  await page.getByText("LLaMA (TypeScript) | Idle").waitFor({ timeout: 120_000 });
  await page.click('.lm-MenuBar-itemLabel:text-is("Run")');
  await page.click('li.lm-Menu-item[data-command="runmenu:run-all"]');
  await acceptKernelDialog(page);
  // (Browser-side predicates are strings: this file is type-checked without the DOM library.)
  await page.waitForFunction(
    `(() => { const p = [...document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt")];
              return p.length > 0 && p.every((e) => /\\[\\d+\\]/.test(e.textContent || "")); })()`,
    undefined,
    { timeout: 240_000, polling: 500 },
  );
}

/** JupyterLab may ask which kernel to use (preselecting the notebook's own): accept it. */
async function acceptKernelDialog(page: Page): Promise<void> {
  const dialog = page.locator(".jp-Dialog");
  try {
    await dialog.waitFor({ timeout: 3000 });
  } catch {
    return; // no dialog
  }
  const select = dialog.locator("select");
  if ((await select.count()) > 0) expect(await select.locator("option:checked").innerText()).toBe("LLaMA (TypeScript)");
  await dialog.locator(".jp-mod-accept").click();
}

async function runAllNotebook6(page: Page, base: string, token: string, notebook = "01-quickstart.ipynb"): Promise<void> {
  await page.goto(`${base}/notebooks/${notebook}?token=${token}`);
  await page.waitForFunction(`window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected()`, undefined, {
    timeout: 120_000,
  });
  await page.evaluate(`Jupyter.notebook.execute_all_cells()`);
  await page.waitForFunction(
    `(() => { const p = [...document.querySelectorAll(".code_cell .input_prompt")];
              return p.length > 0 && p.every((e) => /In\\s*\\[\\d+\\]/.test(e.textContent || "")); })()`,
    undefined,
    { timeout: 240_000, polling: 500 },
  );
}

/**
 * `<tmp>/checkout`: notebooks/ copied, every other top-level entry of the checkout
 * (models/, datasets/, test/…) a symlink, so the notebooks' relative paths work.
 */
function mirrorCheckout(tmp: string): string {
  const mirror = path.join(tmp, "checkout");
  fs.mkdirSync(mirror);
  for (const name of fs.readdirSync(ROOT)) {
    if (name === "notebooks" || name.startsWith(".")) continue;
    fs.symlinkSync(path.join(ROOT, name), path.join(mirror, name));
  }
  const notebooks = path.join(mirror, "notebooks");
  fs.mkdirSync(notebooks);
  for (const f of fs.readdirSync(path.join(ROOT, "notebooks"))) {
    if (f.endsWith(".ipynb")) fs.copyFileSync(path.join(ROOT, "notebooks", f), path.join(notebooks, f));
  }
  return notebooks;
}

/** Every entry under dir (recursively) with its size and mtime: what "left untouched" compares. */
function snapshot(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .sort()
    .map((f) => {
      const st = fs.statSync(path.join(dir, f));
      return `${f} ${st.size} ${st.mtimeMs}`;
    });
}

describe("JupyterLab in a browser runs the notebooks", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-browser-"));
  const notebookDir = mirrorCheckout(tmp);
  const before = snapshot(path.join(ROOT, "notebooks"));
  let started: Started | undefined;
  let browser: Browser | undefined;

  afterAll(async () => {
    await browser?.close().catch(() => {});
    if (started && started.child.exitCode === null) {
      const exited = new Promise((r) => started!.child.once("exit", r));
      started.child.kill("SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      if (started.child.exitCode === null) started.child.kill("SIGKILL");
    }
    // `llama-ts start` stops Jupyter on SIGINT; should it not have, stop what it started.
    if (started?.jupyterPid) {
      try {
        process.kill(started.jupyterPid, "SIGTERM");
      } catch {
        /* already gone */
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }, 30_000);

  it("opens the notebook, runs every cell, shows text, progress and a plotly figure", async () => {
    expect(fs.existsSync(CHROMIUM), `${CHROMIUM} missing (scripts/setup-system.sh installs it)`).toBe(true);
    expect(fs.existsSync(path.join(ROOT, "dist", "kernel", "main.js")), "run node scripts/build.mjs first").toBe(true);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // A private Jupyter config/runtime and history, so the test leaves nothing in ~/.
      JUPYTER_CONFIG_DIR: path.join(tmp, "config"),
      JUPYTER_DATA_DIR: path.join(tmp, "data"),
      JUPYTER_RUNTIME_DIR: path.join(tmp, "runtime"),
      LLAMA_TS_HISTORY_DIR: path.join(tmp, "history"),
    };
    started = await startServer(env, notebookDir);
    const base = started.url.origin;
    const token = started.url.searchParams.get("token") ?? "";
    expect(token.length).toBeGreaterThanOrEqual(32);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 2400 } });
    const offHost: string[] = [];
    page.on("request", (req) => {
      const u = new URL(req.url());
      if ((u.protocol === "http:" || u.protocol === "https:" || u.protocol === "ws:" || u.protocol === "wss:") && u.hostname !== "127.0.0.1") {
        offHost.push(req.url());
      }
    });

    const shot = path.join(ROOT, "test-artifacts", "browser-01-quickstart.png");
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    try {
      if (started.flavor === "JupyterLab") await runAllJupyterLab(page, base, token);
      else await runAllNotebook6(page, base, token);
    } finally {
      await page.screenshot({ path: shot, fullPage: true });
    }

    const outputs = started.flavor === "JupyterLab" ? ".jp-OutputArea-output" : ".output_area";
    const text = (await page.locator(outputs).allInnerTexts()).join("\n");

    for (const bad of ["AssertionError", "CompileError", "KeyboardInterrupt", "Traceback", "TypeError"]) expect(text).not.toContain(bad);
    expect(text).toContain("there was a boy named Charlie"); // the greedy generation, printed by the notebook
    expect(text).toMatch(/tokens\/s\)/);
    expect(await page.locator(".js-plotly-plot").count()).toBeGreaterThanOrEqual(1); // drawn by plotly.js
    expect(await page.locator(".js-plotly-plot .main-svg").count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator("progress").count()).toBeGreaterThanOrEqual(1); // the weight-loading bar
    expect(offHost, "requests that left 127.0.0.1").toEqual([]);
  }, 420_000);

  // The notebooks whose point is their figures: each must draw at least two plotly figures in the browser.
  for (const notebook of ["03-attention.ipynb", "04-logit-lens.ipynb"]) {
    it(`runs ${notebook} and draws its plotly figures`, async () => {
      expect(started && browser, "the first test starts the server and the browser").toBeTruthy();
      const base = started!.url.origin;
      const token = started!.url.searchParams.get("token") ?? "";
      const context = await browser!.newContext({ viewport: { width: 1280, height: 2400 } });
      const page = await context.newPage();
      const offHost: string[] = [];
      page.on("request", (req) => {
        const u = new URL(req.url());
        if (/^(https?|wss?):$/.test(u.protocol) && u.hostname !== "127.0.0.1") offHost.push(req.url());
      });
      const shot = path.join(ROOT, "test-artifacts", `browser-${notebook.replace(/\.ipynb$/, "")}.png`);
      try {
        if (started!.flavor === "JupyterLab") await runAllJupyterLab(page, base, token, notebook);
        else await runAllNotebook6(page, base, token, notebook);
      } finally {
        await page.screenshot({ path: shot, fullPage: true });
      }
      const panel = started!.flavor === "JupyterLab" ? ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output" : ".output_area";
      const text = (await page.locator(panel).allInnerTexts()).join("\n");
      for (const bad of ["AssertionError", "CompileError", "Traceback", "TypeError"]) expect(text).not.toContain(bad);
      const plots = started!.flavor === "JupyterLab" ? ".jp-NotebookPanel:not(.lm-mod-hidden) .js-plotly-plot .main-svg" : ".js-plotly-plot .main-svg";
      expect(await page.locator(plots).count()).toBeGreaterThanOrEqual(2);
      expect(offHost, "requests that left 127.0.0.1").toEqual([]);
      await context.close();
    }, 300_000);
  }

  it("left the checkout's notebooks/ untouched (JupyterLab wrote into the copy)", () => {
    expect(started, "the first test starts the server").toBeTruthy();
    expect(snapshot(path.join(ROOT, "notebooks"))).toEqual(before);
  });
});
