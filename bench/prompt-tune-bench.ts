/**
 * Prompt tuning on the topic task (datasets/topic/), full runs: zero-shot
 * accuracy, then each recipe's test accuracy, train time, time per step and
 * peak RSS, as a table next to PEFT 0.21's numbers from issue 8.
 *
 *   node --import tsx bench/prompt-tune-bench.ts [--recipes a,b] [--test-limit N] [--no-zero-shot]
 *
 * Recipes: the five PEFT settings (batch 16, AdamW, loss on the label tokens,
 * right padding) and ours (see RECIPES below). Prints the command and machine.
 */
import * as os from "node:os";
import { parseArgs } from "node:util";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { completionExample, readJsonl, splitContinuation } from "../lib/peft/prompt-data.js";
import { trainPrompt, type TrainOptions } from "../lib/peft/prompt-train.js";
import { classifyByLabelScores } from "../lib/peft/prompt-classify.js";
import { cliProgress } from "../cli/progress.js";
import type { PromptTuningConfigInit } from "../lib/peft/prompt-config.js";

const MODEL = "models/tiny-stories";
const DATA = "datasets/topic";
const INIT_TEXT = "Decide the topic of this review:";

interface Recipe {
  name: string;
  init: PromptTuningConfigInit;
  train: Omit<TrainOptions, "onStep" | "evaluate">;
  /** PEFT's test accuracy and train time for the same setting (issue 8), when there is one. */
  peft?: { accuracy: number; seconds: number };
}

const peft = (name: string, init: PromptTuningConfigInit, lr: number, epochs: number, accuracy: number, seconds: number): Recipe => ({
  name, init, train: { optimizer: "adamw", lr, epochs, batchSize: 16, seed: 0 }, peft: { accuracy, seconds },
});

const RECIPES: Recipe[] = [
  peft("peft-random-8", { task_type: "CAUSAL_LM", num_virtual_tokens: 8, prompt_tuning_init: "RANDOM" }, 0.03, 4, 0.313, 99),
  peft("peft-random-20", { task_type: "CAUSAL_LM", num_virtual_tokens: 20, prompt_tuning_init: "RANDOM" }, 0.03, 4, 0.303, 104),
  peft("peft-text-8", { task_type: "CAUSAL_LM", num_virtual_tokens: 8, prompt_tuning_init: "TEXT", prompt_tuning_init_text: INIT_TEXT, tokenizer_name_or_path: MODEL }, 0.03, 4, 0.377, 82),
  peft("peft-text-20", { task_type: "CAUSAL_LM", num_virtual_tokens: 20, prompt_tuning_init: "TEXT", prompt_tuning_init_text: INIT_TEXT, tokenizer_name_or_path: MODEL }, 0.03, 4, 0.407, 102),
  peft("peft-text-20-lr0.3", { task_type: "CAUSAL_LM", num_virtual_tokens: 20, prompt_tuning_init: "TEXT", prompt_tuning_init_text: INIT_TEXT, tokenizer_name_or_path: MODEL }, 0.3, 6, 0.453, 166),
  // Ours, within a 5-minute budget: PEFT's TEXT init, constant lr 0.3, length-grouped batches, and the
  // discriminative term (cross-entropy over the three labels' first tokens ▁f / ▁mo / ▁thing).
  {
    name: "ours-text20-choice-5min",
    init: { task_type: "CAUSAL_LM", num_virtual_tokens: 20, prompt_tuning_init: "TEXT", prompt_tuning_init_text: INIT_TEXT, tokenizer_name_or_path: MODEL },
    train: { optimizer: "adamw", lr: 0.3, steps: 400, batchSize: 16, seed: 0, groupByLength: true, choices: [275, 931, 612], choiceWeight: 1, timeBudgetMs: 300_000 },
  },
  // Issue 8's target (>= 0.60 in 5 minutes): the same TEXT init and choice term, but many small
  // class-balanced batches (3 rows, one per label: each step's update carries no label-frequency
  // bias) and lr 0.1 with 10 warmup steps then a linear decay to 0 over the time budget (scheduleBy
  // "time": it ends at 0 however many steps the machine manages). Measured on the 2-core EPYC box,
  // all 300 test rows, 300 s of training: seed 0 954 steps 0.660, seed 1 972 steps 0.680 (machine
  // otherwise idle, 0.31 s/step); seed 0 with another job running: 750 steps 0.603, and 414 steps
  // 0.457 while a full test suite took both cores. Accuracy follows the step count, so measure on
  // an idle machine. steps is only a cap here; the time budget ends the run.
  {
    name: "ours-text20-balanced3-lindecay-5min",
    init: { task_type: "CAUSAL_LM", num_virtual_tokens: 20, prompt_tuning_init: "TEXT", prompt_tuning_init_text: INIT_TEXT, tokenizer_name_or_path: MODEL },
    train: {
      optimizer: "adamw", lr: 0.1, steps: 5000, batchSize: 3, seed: 0, balancedBatches: true, choices: [275, 931, 612], choiceWeight: 1,
      schedule: "linear", scheduleBy: "time", warmupSteps: 10, timeBudgetMs: 300_000,
    },
  },
];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      recipes: { type: "string" },
      "test-limit": { type: "string" },
      "no-zero-shot": { type: "boolean", default: false },
      extra: { type: "string" },
    },
  });
  const extra: Recipe[] = values.extra ? (JSON.parse(values.extra) as Recipe[]) : [];
  const all = [...RECIPES, ...extra];
  const wanted = values.recipes ? values.recipes.split(",") : all.map((r) => r.name);
  const recipes = wanted.map((n) => {
    const r = all.find((x) => x.name === n);
    if (!r) throw new Error(`unknown recipe ${n} (known: ${all.map((x) => x.name).join(", ")})`);
    return r;
  });
  console.log(`command: node --import tsx bench/prompt-tune-bench.ts ${process.argv.slice(2).join(" ")}`);
  console.log(`machine: ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, node ${process.version}, load avg ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);

  const tokenizer = AutoTokenizer.fromPretrained(MODEL);
  const backend = await TapeBackend.create();
  console.log(`backend: ${backend.description}`);
  const model = await LlamaForCausalLM.fromPretrained(MODEL, { backend });
  const load = (f: string) => readJsonl(`${DATA}/${f}`).map((r) => r.row as { prompt: string; label_text: string });
  const train = load("train.jsonl");
  let test = load("test.jsonl");
  if (values["test-limit"]) test = test.slice(0, Number(values["test-limit"]));
  const examples = train.map((r) => completionExample(tokenizer, r.prompt, r.label_text));
  // The choice ids in RECIPES are the first label tokens of the default tokenizer; check them.
  const firstTokens = [" food", " movie", " thing"].map((l) => {
    const { ids, start } = splitContinuation(tokenizer, train[0]!.prompt, l);
    return ids[start]!;
  });
  for (const r of recipes) {
    if (r.train.choices && r.train.choices.join() !== firstTokens.join()) throw new Error(`${r.name}: choices ${r.train.choices.join()} are not the labels' first tokens ${firstTokens.join()}`);
  }

  const rows: string[] = [];
  if (!values["no-zero-shot"]) {
    const t0 = performance.now();
    const zs = await classifyByLabelScores(model, tokenizer, test);
    console.log(`zero-shot accuracy: ${zs.accuracy.toFixed(3)} (${test.length} test rows, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  for (const r of recipes) {
    const pm = await PromptTuningModel.create(model, r.init, { tokenizer, seed: r.train.seed ?? 0 });
    const result = await trainPrompt(pm, examples, {
      ...r.train,
      onProgress: cliProgress(r.name),
      onStep: (s) => { if (s.step % 10 === 0) console.error(`  ${r.name} step ${s.step} loss ${s.loss.toFixed(4)} (${s.ms.toFixed(0)} ms)`); },
    });
    const acc = await classifyByLabelScores(pm, tokenizer, test);
    const predicted = acc.labelTexts.map((l, i) => `${JSON.stringify(l)} ${acc.predictions.filter((p) => p === i).length}`);
    console.log(`${r.name}: ${result.steps} steps in ${result.seconds.toFixed(1)} s; test predictions per label: ${predicted.join(", ")}`);
    const rss = process.resourceUsage().maxRSS / 1024;
    const curve = [0, 0.25, 0.5, 0.75, 1].map((q) => result.losses[Math.min(result.losses.length - 1, Math.floor(q * (result.losses.length - 1)))]!.toFixed(3));
    rows.push(`| ${r.name} | ${r.init.prompt_tuning_init} | ${r.init.num_virtual_tokens} | ${r.train.lr} | ${r.train.epochs ?? "-"} | ${r.train.steps ?? result.steps} | ${acc.accuracy.toFixed(3)} | ${r.peft ? r.peft.accuracy.toFixed(3) : "-"} | ${result.seconds.toFixed(0)} s | ${r.peft ? `${r.peft.seconds} s` : "-"} | ${(result.meanStepMs / 1000).toFixed(2)} s | ${(result.meanStepCpuMs / 1000).toFixed(2)} s | ${curve.join(" → ")} | ${rss.toFixed(0)} MiB |`);
    console.log(rows[rows.length - 1]);
  }
  console.log("\n| recipe | init | virtual tokens | lr | epochs | steps | test acc (ours) | test acc (PEFT) | train time (ours) | train time (PEFT) | wall s/step (ours; PEFT ~0.6) | CPU s/step, all threads (ours) | loss curve (0/25/50/75/100%) | peak RSS |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const row of rows) console.log(row);
  backend.dispose();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
