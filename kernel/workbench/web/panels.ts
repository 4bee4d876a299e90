/**
 * The workbench panels. Each builds its DOM once and runs snippets through
 * the shared `Runner` (which records history and reports errors).
 */
import { h, field, numberInput } from "./dom.js";
import { OutputArea } from "./render.js";
import * as snippets from "./snippets.js";
import type { Output } from "./kernel-client.js";

/** What panels need from the app shell. */
export interface Runner {
  /** Runs a snippet, streaming outputs into `area`; returns the last JSON result (or undefined). */
  run<T>(s: snippets.Snippet, area?: OutputArea, onOutput?: (o: Output) => void, restoring?: boolean): Promise<T | undefined>;
  /** Switches to a tab. */
  show(tab: string): void;
  config: { model: string; models: string[]; root: string };
}

export interface ModelCard {
  path: string;
  device: string;
  parameters: number;
  config: Record<string, unknown>;
  tokenizer: string;
  vocabSize: number;
}

export function modelPanel(r: Runner, onLoaded: () => void): HTMLElement {
  const select = h("select", { id: "model-select" });
  for (const m of r.config.models) select.append(h("option", { value: m }, m));
  const custom = h("input", { id: "model-path", type: "text", placeholder: "or any HF / GGUF / Meta folder path on this machine", size: 60 });
  const card = h("div", { id: "model-card" });
  const area = new OutputArea(h("div", { class: "outputs" }));
  const load = async () => {
    const path = custom.value.trim() || select.value;
    const info = await r.run<ModelCard>(snippets.loadModel(path), area);
    if (!info) return;
    const rows = Object.entries(info.config).filter(([, v]) => typeof v !== "object" || v === null);
    card.replaceChildren(
      h("h3", {}, info.path.split("/").pop() ?? info.path),
      h("p", {}, `${(info.parameters / 1e6).toFixed(2)}M parameters · device ${info.device} · ${info.tokenizer} (${info.vocabSize} tokens)`),
      h("table", { class: "kv" }, ...rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, JSON.stringify(v))))),
    );
    onLoaded();
  };
  const button = h("button", { id: "load-model", onclick: () => void load() }, "Load");
  return h("section", { id: "panel-model" }, h("div", { class: "row" }, field("Model", select), custom, button), area.el, card);
}

interface TokenRowJson {
  index: number; id: number; token: string; text: string; bytes: number[] | null; start: number; end: number; isSpecial: boolean; isByte: boolean;
}

export function tokenizerPanel(r: Runner): HTMLElement {
  const text = h("textarea", { id: "tok-text", rows: 3, cols: 80 }, "Once upon a time, there was a little robot. 🤖 It counted 1234 stars.");
  const compare = h("input", { id: "tok-compare", type: "text", size: 50, placeholder: "compare with another tokenizer (path), optional" });
  const area = new OutputArea(h("div", { class: "outputs", id: "tok-out" }));
  const table = h("table", { id: "token-table", class: "tokens" });
  const go = async () => {
    const res = await r.run<{ rows: TokenRowJson[] }>(snippets.tokenize(text.value, compare.value.trim() || undefined), area);
    if (!res) return;
    table.replaceChildren(
      h("tr", {}, ...["#", "id", "piece", "text", "bytes", "span", "kind"].map((c) => h("th", {}, c))),
      ...res.rows.map((row) =>
        h("tr", {},
          h("td", {}, String(row.index)), h("td", {}, String(row.id)), h("td", {}, h("code", {}, row.token)),
          h("td", {}, JSON.stringify(row.text)), h("td", {}, row.bytes ? row.bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ") : "—"),
          h("td", {}, `${row.start}–${row.end}`), h("td", {}, row.isSpecial ? "special" : row.isByte ? "byte" : "")),
      ),
    );
  };
  return h("section", { id: "panel-tokenizer" },
    h("div", { class: "row" }, text), h("div", { class: "row" }, compare, h("button", { id: "tokenize", onclick: () => void go() }, "Tokenize")),
    area.el, table);
}

interface Generated { promptLength: number; ids: number[]; pieces: string[] }

export function generatePanel(r: Runner, onToken: (position: number) => void, stop: () => void): HTMLElement {
  const prompt = h("textarea", { id: "prompt", rows: 3, cols: 80 }, "Once upon a time");
  const maxNew = numberInput("max-new-tokens", 40, { min: 1, max: 512 });
  const minNew = numberInput("min-new-tokens", 0, { min: 0, max: 512 });
  const sample = h("input", { id: "do-sample", type: "checkbox" });
  const temperature = numberInput("temperature", 0.8, { step: 0.1, min: 0.05 });
  const topK = numberInput("top-k", 50, { min: 0 });
  const topP = numberInput("top-p", 0.95, { step: 0.05, min: 0, max: 1 });
  const rep = numberInput("repetition-penalty", 1, { step: 0.05, min: 1 });
  const seed = numberInput("seed", 0);
  const streamBox = h("pre", { id: "stream-text", class: "stream" });
  const tokens = h("div", { id: "tokens", class: "token-chips" });
  const area = new OutputArea(h("div", { class: "outputs" }), { showStdout: false });
  const go = async () => {
    streamBox.textContent = prompt.value;
    tokens.replaceChildren();
    const t0 = performance.now();
    let first = true;
    const res = await r.run<Generated>(
      snippets.generate(prompt.value, {
        maxNewTokens: Number(maxNew.value), minNewTokens: Number(minNew.value), doSample: sample.checked, temperature: Number(temperature.value),
        topK: Number(topK.value), topP: Number(topP.value), repetitionPenalty: Number(rep.value), seed: Number(seed.value),
      }),
      area,
      (o) => {
        if (o.kind !== "stream" || o.name !== "stdout") return;
        if (first) {
          first = false;
          streamBox.dataset.firstTokenMs = String(Math.round(performance.now() - t0));
        }
        streamBox.textContent += o.text;
      },
    );
    if (!res) return;
    tokens.replaceChildren(
      ...res.ids.map((id, pos) =>
        h("span", {
          class: pos < res.promptLength ? "token prompt" : "token generated",
          "data-pos": pos, title: `position ${pos} · id ${id}`,
          onclick: () => { if (pos > 0) onToken(pos); },
        }, res.pieces[pos]!.replace(/ /g, "\u00a0") || "∅"),
      ),
    );
  };
  return h("section", { id: "panel-generate" },
    h("div", { class: "row" }, prompt),
    h("div", { class: "row controls" }, field("max new tokens", maxNew), field("min new tokens", minNew), field("sample", sample), field("temperature", temperature), field("top-k", topK), field("top-p", topP), field("repetition penalty", rep), field("seed", seed)),
    h("div", { class: "row" }, h("button", { id: "generate", onclick: () => void go() }, "Generate"), h("button", { id: "stop", onclick: stop }, "Stop")),
    streamBox, h("p", { class: "hint" }, "Click a token to see every head's attention and the logit lens at the step that produced it."), tokens, area.el);
}

/** Attention and logit-lens views for one clicked position. */
export function inspectPanels(r: Runner): { attention: HTMLElement; lens: HTMLElement; inspect(position: number): Promise<void> } {
  const attArea = new OutputArea(h("div", { class: "outputs", id: "attention-out" }));
  const lensArea = new OutputArea(h("div", { class: "outputs", id: "lens-out" }));
  const attTitle = h("p", { class: "hint" }, "Generate text, then click a token.");
  const lensTitle = h("p", { class: "hint" }, "Generate text, then click a token.");
  return {
    attention: h("section", { id: "panel-attention" }, attTitle, attArea.el),
    lens: h("section", { id: "panel-lens" }, lensTitle, lensArea.el),
    async inspect(position) {
      attTitle.textContent = `Token ${position}: every layer × head (click a cell to zoom; head view below).`;
      lensTitle.textContent = `Token ${position}: what each layer would predict.`;
      r.show("attention");
      attArea.clear();
      lensArea.clear();
      await r.run(snippets.attention(position), attArea);
      await r.run(snippets.logitLensAt(position), lensArea);
    },
  };
}

interface Compared { label: string; text: string; tokens: number; top: string; topProb: number; meanLogProb: number }

export function comparePanel(r: Runner): HTMLElement {
  const a = h("textarea", { id: "compare-a", rows: 2, cols: 60 }, "Once upon a time, there was a little girl named");
  const b = h("textarea", { id: "compare-b", rows: 2, cols: 60 }, "Once upon a time, there was a little boy named");
  const summary = h("table", { id: "compare-summary", class: "kv" });
  const area = new OutputArea(h("div", { class: "outputs", id: "compare-out" }));
  const go = async () => {
    const res = await r.run<{ comparison: Compared[] }>(snippets.comparePrompts(a.value, b.value), area);
    if (!res) return;
    summary.replaceChildren(
      h("tr", {}, ...["", "tokens", "most likely next", "p", "mean log-prob / token"].map((c) => h("th", {}, c))),
      ...res.comparison.map((c) => h("tr", {}, h("th", {}, c.label), h("td", {}, String(c.tokens)), h("td", {}, JSON.stringify(c.top)),
        h("td", {}, c.topProb.toFixed(3)), h("td", {}, c.meanLogProb.toFixed(3)))),
    );
  };
  return h("section", { id: "panel-compare" },
    h("div", { class: "row" }, field("prompt A", a), field("prompt B", b), h("button", { id: "compare-run", onclick: () => void go() }, "Compare")),
    summary, area.el);
}

export function tuningPanel(r: Runner): HTMLElement {
  const data = h("input", { id: "tune-data", type: "text", size: 60, value: `${r.config.root}/datasets/topic/train.jsonl` });
  const n = numberInput("tune-virtual-tokens", 8, { min: 1 });
  const init = h("select", { id: "tune-init" }, ...["TEXT", "RANDOM", "SAMPLE_VOCAB"].map((v) => h("option", { value: v }, v)));
  const initText = h("input", { id: "tune-init-text", type: "text", size: 40, value: "Decide the topic of this review:" });
  const lr = numberInput("tune-lr", 0.03, { step: 0.01 });
  const steps = numberInput("tune-steps", 20, { min: 1 });
  const batch = numberInput("tune-batch", 16, { min: 1 });
  const out = h("input", { id: "tune-out", type: "text", size: 60, value: `/tmp/llama-ts-workbench-adapter` });
  const area = new OutputArea(h("div", { class: "outputs", id: "tune-curve" }));
  const summary = h("p", { id: "tune-summary" });
  const go = async () => {
    summary.textContent = "training…";
    const res = await r.run<{ steps: number; losses: number[]; seconds: number; saved: string }>(
      snippets.promptTuning({
        dataFile: data.value, numVirtualTokens: Number(n.value), init: init.value as "TEXT", initText: initText.value,
        lr: Number(lr.value), steps: Number(steps.value), batchSize: Number(batch.value), outDir: out.value,
      }),
      area,
    );
    summary.textContent = res
      ? `${res.steps} steps in ${res.seconds.toFixed(1)} s; loss ${res.losses[0]?.toFixed(3)} → ${res.losses.at(-1)?.toFixed(3)}; adapter saved to ${res.saved}`
      : "";
  };
  return h("section", { id: "panel-tuning" },
    h("div", { class: "row" }, field("data (JSONL)", data)),
    h("div", { class: "row controls" }, field("virtual tokens", n), field("init", init), field("init text", initText), field("lr", lr), field("steps", steps), field("batch", batch)),
    h("div", { class: "row" }, field("save adapter to", out), h("button", { id: "tune-start", onclick: () => void go() }, "Start tuning")),
    summary, area.el);
}
