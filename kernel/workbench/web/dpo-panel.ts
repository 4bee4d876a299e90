/**
 * The DPO panel: preference tuning on a pairs file (TRL's {"prompt", "chosen",
 * "rejected"} JSONL) as one kernel cell of library code (snippets.dpo), like
 * the prompt-tuning panel: live curves, the adapter saved in PEFT's format,
 * a few of the file's prompts sampled before and after.
 */
import { h, field, numberInput } from "./dom.js";
import { OutputArea } from "./render.js";
import * as snippets from "./snippets.js";
import type { Runner } from "./panels.js";
import { DPO_RECIPE } from "../../../lib/peft/dpo-recipe.js";

interface DpoRun {
  steps: number;
  seconds: number;
  losses: number[];
  margin: number;
  accuracy: number;
  guardTrips: number;
  saved: string;
}

/**
 * The defaults are the CLI's recipe (lib/peft/dpo-recipe.ts: the sigmoid loss
 * plus half the chosen completions' NLL, beta 0.5, AdamW 4e-3 decaying
 * linearly, batch 8, LoRA r 8 on every linear layer), for one pass over the
 * repo's 240 preference pairs.
 */
export function dpoPanel(r: Runner): HTMLElement {
  const data = h("input", { id: "dpo-data", type: "text", size: 60, value: `${r.config.root}/datasets/preference/train.jsonl` });
  const steps = numberInput("dpo-steps", 30, { min: 1 });
  const beta = numberInput("dpo-beta", DPO_RECIPE.beta, { step: 0.05, min: 0.01 });
  const sftWeight = numberInput("dpo-sft-weight", DPO_RECIPE.lossWeights[1], { step: 0.1, min: 0 });
  const lr = numberInput("dpo-lr", DPO_RECIPE.lr, { step: 0.0005, min: 0 });
  const batch = numberInput("dpo-batch", DPO_RECIPE.batchSize, { min: 1 });
  const rank = numberInput("dpo-rank", DPO_RECIPE.r, { min: 1 });
  const out = h("input", { id: "dpo-out-dir", type: "text", size: 60, value: "/tmp/llama-ts-workbench-dpo" });
  const area = new OutputArea(h("div", { class: "outputs", id: "dpo-out" }));
  const summary = h("p", { id: "dpo-summary" });
  const go = async () => {
    summary.textContent = "training…";
    const res = await r.run<DpoRun>(
      snippets.dpo({
        dataFile: data.value.trim(), steps: Number(steps.value), beta: Number(beta.value), sftWeight: Number(sftWeight.value), lr: Number(lr.value),
        batchSize: Number(batch.value), rank: Number(rank.value), outDir: out.value.trim(),
      }),
      area,
    );
    summary.textContent = res
      ? `${res.steps} steps in ${res.seconds.toFixed(1)} s; loss ${res.losses[0]?.toFixed(3)} → ${res.losses.at(-1)?.toFixed(3)}; ` +
        `reward margin ${res.margin.toFixed(3)}, accuracy ${res.accuracy.toFixed(2)}` +
        `${res.guardTrips ? `; the chosen log-prob fell far below the reference's at ${res.guardTrips} steps` : ""}; adapter saved to ${res.saved}`
      : "";
  };
  return h("section", { id: "panel-dpo" },
    h("p", { class: "hint" }, "DPO (TRL's DPOTrainer with a LoRA adapter) on preference pairs {\"prompt\", \"chosen\", \"rejected\"}. " +
      "30 steps is one pass over the repo's 240 pairs; the full recipe is three (llama-ts dpo, npm run bench -- dpo). The samples below compare the model before and after."),
    h("div", { class: "row" }, field("pairs (JSONL)", data)),
    h("div", { class: "row controls" }, field("steps", steps), field("beta", beta), field("NLL weight (0: plain DPO)", sftWeight), field("lr", lr), field("batch", batch), field("LoRA rank", rank)),
    h("div", { class: "row" }, field("save adapter to", out), h("button", { id: "dpo-start", onclick: () => void go() }, "Start DPO")),
    summary, area.el);
}
