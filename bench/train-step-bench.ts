/**
 * `npm run bench -- train-step`: the cost of one training step on the CPU tape, on the default model
 * (models/tiny-stories), batch 8 rows of the preference task (datasets/preference/train.jsonl):
 *
 *   prompt-tuning  8 virtual tokens (RANDOM), causal-LM loss on prompt + chosen completion
 *   lora           LoRA r 8 / alpha 16 on every decoder Linear (PEFT's all-linear), same batch and loss
 *   dpo            DPO (sigmoid, beta 0.1) on 8 pairs, LoRA as above; the reference forward included
 *   dpo-precomp    the same with the reference log-probs precomputed (what `llama-ts dpo` runs)
 *
 *   node --import tsx bench/train-step-bench.ts [--steps 6] [--warmup 2] [--only lora,dpo]
 *
 * Prints ms per step (wall) and CPU-seconds per step (process.cpuUsage: every thread of the process).
 * The machine is usually shared, so CPU-s/step is the figure to compare; TRL 1.13's DPO step (LoRA r 8
 * all-linear, batch 8) measured 0.45–0.52 s/step wall here (0.74–0.86 CPU-s/step; issue 16).
 *
 * 2026-12-07, AMD EPYC × 2 (load 1.6–2.0), `npm run bench -- train-step`'s malloc settings, `--steps 5 --warmup 1`,
 * this stop's tree and the previous stop's (8bf542e) run alternately, two rounds (same losses to 4 decimals):
 *
 * | step | 8bf542e ms/step (CPU-s) | now ms/step (CPU-s) |
 * | --- | --- | --- |
 * | LoRA r 8 all-linear | 608, 660 (0.92, 0.99) | 370, 393 (0.58, 0.59) |
 * | DPO, reference forward | 1369, 1338 (2.06, 2.05) | 932, 1062 (1.44, 1.61) |
 * | DPO, precomputed reference (what `llama-ts dpo` runs) | 998, 1036 (1.54, 1.57) | 683, 709 (1.03, 1.08) |
 *
 * What changed: a LoRA layer is one tape node (ops.loraLinear: no scale/add nodes, x's gradient written once,
 * base product and x·Aᵀ in one pass over x); the LoRA weight gradients and attention's backward run on
 * wasm kernels that read their operands as they lie (gemm_tn, gemm_nn, attn_bwd_group) instead of
 * JavaScript transposes, split over the worker threads as pool tasks; siluMul, rmsNorm and RoPE backwards
 * on wasm SIMD. Of a DPO step now (1 thread's view, profiled): the frozen products ~60% (~40 GFLOP/s on
 * 2 threads), attention's forward softmax in JavaScript ~10%, copies into and out of the kernels' memory,
 * the log-softmax over the vocabulary and GC the rest.
 */
import * as os from "node:os";
import { parseArgs } from "node:util";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { ALL_LINEAR, LoraModel } from "../lib/peft/lora-train.js";
import { completionExample, collate } from "../lib/peft/prompt-data.js";
import { readPreferenceFile, tokenizeDpoRows } from "../lib/peft/preference-data.js";
import { dpoLossAndGrad, precomputeReferenceLogps } from "../lib/peft/dpo.js";
import { AdamW } from "../lib/peft/optim.js";
import { memorySettingsApplied } from "../lib/process-memory.js";

const { values: flags } = parseArgs({
  options: {
    steps: { type: "string", default: "6" },
    warmup: { type: "string", default: "2" },
    only: { type: "string", default: "prompt-tuning,lora,dpo,dpo-precomp" },
  },
});
const MODEL = "models/tiny-stories";
const BATCH = 8;

/** Runs `step` warmup + n times; wall ms and CPU s per timed step. */
async function time(step: () => Promise<number>, warmup: number, n: number): Promise<{ ms: number; cpu: number; loss: number }> {
  let loss = NaN;
  for (let i = 0; i < warmup; i++) loss = await step();
  const c0 = process.cpuUsage(), t0 = performance.now();
  for (let i = 0; i < n; i++) loss = await step();
  const c = process.cpuUsage(c0);
  return { ms: (performance.now() - t0) / n, cpu: (c.user + c.system) / 1e6 / n, loss };
}

async function main(): Promise<void> {
  const steps = Number(flags.steps), warmup = Number(flags.warmup);
  const only = new Set(flags.only!.split(","));
  console.log(`command: node --import tsx bench/train-step-bench.ts ${process.argv.slice(2).join(" ")}`.trim());
  console.log(`machine: ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, node ${process.version}, load avg ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  console.log(`memory: ${memorySettingsApplied() ? "the training settings (lib/process-memory.ts)" : "glibc's and V8's defaults (npm run bench sets lib/process-memory.ts's, as the CLI's training commands do)"}`);
  const be = await TapeBackend.create();
  const rows: string[] = [];
  try {
    const base = await LlamaForCausalLM.fromPretrained(MODEL, { backend: be });
    const tok = AutoTokenizer.fromPretrained(MODEL);
    const pref = readPreferenceFile("datasets/preference/train.jsonl").slice(0, BATCH);
    const batch = collate(pref.map((r) => completionExample(tok, r.prompt, r.chosen)), 0, "right");
    const tokens = batch.attentionMask!.flat().reduce((a, b) => a + b, 0);
    const { examples: pairs } = tokenizeDpoRows(tok, pref);
    const report = (what: string, r: { ms: number; cpu: number; loss: number }) => {
      rows.push(`| ${what} | ${r.ms.toFixed(0)} | ${r.cpu.toFixed(2)} | ${r.loss.toFixed(4)} |`);
      process.stderr.write(`  ${what}: ${r.ms.toFixed(0)} ms/step, ${r.cpu.toFixed(2)} CPU-s/step\n`);
    };

    if (only.has("prompt-tuning")) {
      const pm = await PromptTuningModel.create(base, { task_type: "CAUSAL_LM", num_virtual_tokens: 8, prompt_tuning_init: "RANDOM" }, { seed: 0 });
      const opt = new AdamW(await pm.trainableParameters(), { lr: 0.03 });
      report("prompt-tuning (8 virtual tokens)", await time(async () => {
        opt.zeroGrad();
        const loss = await pm.lossAndGrad(batch);
        opt.step();
        return loss;
      }, warmup, steps));
    }
    const lora = LoraModel.create(base, { r: 8, lora_alpha: 16, target_modules: ALL_LINEAR }, { seed: 0 });
    const opt = new AdamW(lora.parameters(), { lr: 2e-3 });
    if (only.has("lora")) {
      report("LoRA r 8 all-linear", await time(async () => {
        opt.zeroGrad();
        const loss = await lora.lossAndGrad({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, labels: batch.labels! });
        opt.step();
        return loss;
      }, warmup, steps));
    }
    const dpoStep = (ex: typeof pairs) => async () => {
      opt.zeroGrad();
      const { loss } = await dpoLossAndGrad(lora, ex);
      opt.step();
      return loss;
    };
    if (only.has("dpo")) report("DPO (reference forward each step)", await time(dpoStep(pairs), warmup, steps));
    if (only.has("dpo-precomp")) {
      const pre = await precomputeReferenceLogps(lora, pairs);
      report("DPO (reference log-probs precomputed)", await time(dpoStep(pre), warmup, steps));
    }
    console.log(`\nbatch ${BATCH} (${tokens} tokens in the LM batch; DPO: ${2 * BATCH} sequences), ${be.description}, ${warmup} warm-up + ${steps} timed steps\n`);
    console.log("| step | ms/step (wall) | CPU-s/step | last loss |");
    console.log("| --- | --- | --- | --- |");
    for (const r of rows) console.log(r);
  } finally {
    be.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
