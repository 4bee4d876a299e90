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
 * all-linear, batch 8, the reference forward inside each step) measured 0.44–0.52 s/step wall here
 * (0.72–0.86 CPU-s/step; issue 16).
 *
 * 2026-12-07 03:40, AMD EPYC × 2 (load 1.8–1.9), `--steps 5 --warmup 1 --only lora,dpo,dpo-precomp`, the
 * previous stop's tree (2791552, with its malloc settings) and this stop's (with lib/process-memory.ts's malloc
 * settings and V8 old space) run alternately, two rounds; the same losses (every change keeps the bits):
 *
 * | step | 2791552 ms/step (CPU-s) | now ms/step (CPU-s) |
 * | --- | --- | --- |
 * | LoRA r 8 all-linear | 408, 425 (0.64, 0.66) | 343, 371 (0.55, 0.57) |
 * | DPO, reference forward | 1070, 1114 (1.64, 1.70) | 823, 873 (1.36, 1.45) |
 * | DPO, precomputed reference (what `llama-ts dpo` runs) | 744, 760 (1.16, 1.17) | 577, 591 (0.94, 0.98) |
 *
 * (Run alone, `--only dpo-precomp --steps 8`, the last row reads 441–480 ms, 0.74–0.81 CPU-s at load ~1.5.)
 *
 * What changed: attention's forward runs as one wasm task per (batch row, kv head) group, its softmax in
 * float64 with exp_f64x2 (Math.exp's algorithm, bit for bit), split over the threads; the sequence
 * log-probs' softmax likewise (softmax_rows); RMSNorm's and RoPE's forwards on wasm kernels with
 * rmsNormInto's and splitHeadsInto's bits; 16-bit weights widened once per run of rows instead of once per
 * block of x; a LoRA layer's low-rank term, and B's gradient, added inside the product's call (y, dX and g
 * no longer round-trip through other workspaces); the backward sums into a free incoming buffer; 16
 * chunks per thread; a 512 MiB V8 old space (a third of the full GCs). Of a step now (profiled, main
 * thread): the frozen products ~55% at ~90% of 128-bit SIMD's multiply-add peak per thread, then waiting
 * for the other thread's last chunk, copies of outputs out of the kernels' memory, and GC.
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
