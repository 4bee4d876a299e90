/**
 * The workbench page: tabs of panels over one `llama-ts` kernel. Every action
 * is a kernel cell (see snippets.ts) recorded in the history, from where it
 * can be copied as a cell or opened as a notebook in Jupyter.
 */
import { KernelClient, CellError, KernelLostError, lastJsonResult, type Output, type KernelState } from "./kernel-client.js";
import { h, byId } from "./dom.js";
import type { OutputArea } from "./render.js";
import { asNotebook, type Snippet } from "./snippets.js";
import { modelPanel, tokenizerPanel, generatePanel, inspectPanels, comparePanel, tuningPanel, type Runner } from "./panels.js";
import { dpoPanel } from "./dpo-panel.js";

interface Config { model: string; models: string[]; root: string; jupyterUrl: string; flavor: string; notebookFolder: string }

interface HistoryEntry { snippet: Snippet; status: "running" | "ok" | "error"; ms?: number; error?: string }

const TABS = [
  ["model", "Model"], ["tokenizer", "Tokenizer"], ["generate", "Generate"], ["attention", "Attention"],
  ["lens", "Logit lens"], ["compare", "Compare prompts"], ["tuning", "Prompt tuning"], ["dpo", "DPO"], ["history", "History"],
] as const;

async function main(): Promise<void> {
  const config = (await (await fetch("/wb/config")).json()) as Config;
  const kernel = new KernelClient();
  const history: HistoryEntry[] = [];
  /** Snippets that set up kernel state (the model load), replayed after a restart. */
  let setup: Snippet | undefined;
  let restartingOnPurpose = false;
  /** Settles when the kernel is up with the model loaded (after start or a restart). */
  let ready: Promise<void> = Promise.resolve();

  const status = byId<HTMLSpanElement>("kernel-status");
  const banner = byId<HTMLDivElement>("error");
  const restartButton = byId<HTMLButtonElement>("restart");
  const historyList = h("ol", { id: "history-list" });

  const showError = (message: string, offerRestart: boolean) => {
    banner.replaceChildren(h("span", { class: "message" }, message));
    if (offerRestart) banner.append(h("button", { id: "error-restart", onclick: () => void restart() }, "Restart kernel"));
    banner.hidden = false;
  };
  const hideError = () => { banner.hidden = true; };

  kernel.onState((s: KernelState) => {
    status.textContent = s;
    status.className = `status ${s}`;
    restartButton.classList.toggle("urgent", s === "dead" || s === "disconnected");
    if (s === "dead") showError("The kernel died (killed, out of memory, or crashed). Restart it to go on.", true);
    if (s === "restarting" && !restartingOnPurpose) {
      showError("The kernel died and Jupyter restarted it: the loaded model is gone. Restart to reload it.", true);
    }
  });

  const renderHistory = () => {
    historyList.replaceChildren(...history.map((e, i) =>
      h("li", { class: `run ${e.status}` },
        h("span", { class: "title" }, e.snippet.title),
        h("span", { class: "meta" }, e.status === "running" ? " running…" : ` ${e.status}${e.ms !== undefined ? ` · ${(e.ms / 1000).toFixed(2)} s` : ""}${e.error ? ` · ${e.error}` : ""}`),
        h("button", { class: "copy", onclick: () => void navigator.clipboard?.writeText(e.snippet.code) }, "copy as cell"),
        h("button", { class: "open", onclick: () => void openAsNotebook(history.slice(0, i + 1).filter((x) => x.status === "ok").map((x) => x.snippet)) }, "open as notebook"),
        h("details", {}, h("summary", {}, "code"), h("pre", {}, e.snippet.code)),
      )));
  };

  const openAsNotebook = async (cells: Snippet[]) => {
    const name = `${config.notebookFolder}/workbench-${new Date().toISOString().replace(/[:.]/g, "-")}.ipynb`;
    await fetch(`/api/contents/${config.notebookFolder}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "directory" }) });
    const res = await fetch(`/api/contents/${name}`, {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "notebook", format: "json", content: asNotebook(cells) }),
    });
    if (!res.ok) return showError(`could not save the notebook: ${res.status} ${await res.text()}`, false);
    const page = config.flavor === "jupyterlab" ? `${config.jupyterUrl}/tree/${name}` : config.jupyterUrl.replace(/\/tree$/, `/notebooks/${name}`);
    window.open(page, "_blank");
  };

  const tabs = new Map<string, HTMLElement>();
  const show = (tab: string) => {
    for (const [name, el] of tabs) el.hidden = name !== tab;
    for (const b of document.querySelectorAll<HTMLButtonElement>("nav button")) b.classList.toggle("active", b.dataset.tab === tab);
  };

  const runner: Runner = {
    config,
    show,
    async run<T>(snippet: Snippet, area?: OutputArea, onOutput?: (o: Output) => void, restoring = false): Promise<T | undefined> {
      if (!restoring) await ready;
      const entry: HistoryEntry = { snippet, status: "running" };
      history.push(entry);
      renderHistory();
      hideError();
      area?.clear();
      const t0 = performance.now();
      try {
        const outs = await kernel.run(snippet.code, { onOutput: (o) => { area?.add(o); onOutput?.(o); } });
        entry.status = "ok";
        return lastJsonResult<T>(outs);
      } catch (err) {
        entry.status = "error";
        const lost = err instanceof KernelLostError;
        const message = err instanceof CellError ? err.message : (err as Error).message ?? String(err);
        entry.error = message;
        showError(err instanceof CellError && err.ename === "Interrupted" ? "Interrupted." : message, lost || kernel.state === "dead");
        return undefined;
      } finally {
        entry.ms = performance.now() - t0;
        renderHistory();
      }
    },
  };

  const restart = () => {
    hideError();
    restartingOnPurpose = true;
    document.body.dataset.ready = "false";
    // Other actions wait for this: the restarted kernel must have the model again first.
    ready = (async () => {
      try {
        await kernel.restart();
        if (setup) await runner.run(setup, undefined, undefined, true);
      } catch (err) {
        showError(`restart failed: ${(err as Error).message}`, true);
      } finally {
        restartingOnPurpose = false;
        document.body.dataset.ready = "true";
      }
    })();
    return ready;
  };
  restartButton.addEventListener("click", () => void restart());
  byId<HTMLButtonElement>("interrupt").addEventListener("click", () => void kernel.interrupt());

  const inspect = inspectPanels(runner);
  const panels: Record<string, HTMLElement> = {
    model: modelPanel(runner, () => {
      setup = history.filter((e) => e.status === "ok" && e.snippet.title.startsWith("Load ")).at(-1)?.snippet;
      byId("model-name").textContent = setup?.title.replace(/^Load /, "") ?? "";
    }),
    tokenizer: tokenizerPanel(runner),
    generate: generatePanel(runner, (pos) => void inspect.inspect(pos), () => void kernel.interrupt()),
    attention: inspect.attention,
    lens: inspect.lens,
    compare: comparePanel(runner),
    tuning: tuningPanel(runner),
    dpo: dpoPanel(runner),
    history: h("section", { id: "panel-history" }, h("p", { class: "hint" }, "Every action above ran as a kernel cell; here they are."), historyList),
  };
  const nav = byId("tabs");
  const content = byId("content");
  for (const [name, label] of TABS) {
    nav.append(h("button", { "data-tab": name, onclick: () => show(name) }, label));
    tabs.set(name, panels[name]!);
    content.append(panels[name]!);
  }
  show("generate");

  try {
    await kernel.start();
  } catch (err) {
    showError(`could not start the llama-ts kernel: ${(err as Error).message}`, true);
    return;
  }
  // Load the default model at once so Generate works immediately.
  (document.getElementById("model-path") as HTMLInputElement).value = config.model;
  (document.getElementById("load-model") as HTMLButtonElement).click();
  document.body.dataset.ready = "true";
}

void main();
