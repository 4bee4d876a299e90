/**
 * One prompt-tuning training step (forward + backward + AdamW update) on the
 * WebGPU differentiable backend against the CPU tape: ms/step, training
 * tokens/s, and the GPU allocator's peak. Rows are real topic-task examples
 * (datasets/topic/train.jsonl, label-only loss, right padding), as in
 * bench/prompt-tune-bench.ts.
 *
 *   node --import tsx bench/gpu-train-bench.ts                    # batch 16, 20 virtual tokens, 5 timed steps
 *   options: --batch 16  --steps 5  --virtual 20  --model DIR  --no-cpu
 *
 * On Mesa lavapipe (~1 GFLOP/s) a batch-16 step of the default model takes
 * tens of seconds: use --batch 2 --steps 2 there. Prints the command, machine and adapter.
 */
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { createDifferentiableBackend, type DifferentiableBackend } from "../lib/autograd/differentiable.js";
import "../gpu/register.js"; // device "webgpu" for lib
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { PromptTuningModel, type PromptBatch } from "../lib/peft/prompt-tuning.js";
import { completionExample, readJsonl } from "../lib/peft/prompt-data.js";
import { AdamW } from "../lib/peft/optim.js";
import type { WebGpuTapeBackend } from "../gpu/tape-backend.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: flags } = parseArgs({
  options: {
    batch: { type: "string", default: "16" },
    steps: { type: "string", default: "5" },
    virtual: { type: "string", default: "20" },
    model: { type: "string" },
    "no-cpu": { type: "boolean", default: false },
  },
});

const MB = 1024 * 1024;

/** A right-padded batch of label-only examples. */
function makeBatch(dir: string, B: number): PromptBatch {
  const tokenizer = AutoTokenizer.fromPretrained(dir);
  const rows = readJsonl(path.join(ROOT, "datasets", "topic", "train.jsonl")).slice(0, B).map((r) => r.row as { prompt: string; label_text: string });
  const ex = rows.map((r) => completionExample(tokenizer, r.prompt, r.label_text));
  const T = Math.max(...ex.map((e) => e.inputIds.length));
  const pad = <X>(a: X[], v: X) => [...a, ...new Array<X>(T - a.length).fill(v)];
  return {
    inputIds: ex.map((e) => pad(e.inputIds, 0)),
    labels: ex.map((e) => pad(e.labels, -100)),
    attentionMask: ex.map((e) => pad(new Array<number>(e.inputIds.length).fill(1), 0)),
  };
}

async function timeSteps(device: "cpu" | "webgpu", dir: string, batch: PromptBatch, steps: number, nvt: number) {
  const be: DifferentiableBackend = await createDifferentiableBackend(device);
  try {
    const model = await LlamaForCausalLM.fromPretrained(dir, { backend: be });
    const pm = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: nvt, prompt_tuning_init: "RANDOM" }, { seed: 0 });
    const opt = new AdamW([pm.prompt], { lr: 0.03 });
    const step = async () => {
      opt.zeroGrad();
      const loss = await pm.lossAndGrad(batch);
      opt.step();
      return loss;
    };
    await step(); // warm-up: pipelines compiled, Wᵀ copies made
    const t0 = performance.now();
    let loss = 0;
    for (let s = 0; s < steps; s++) loss = await step();
    const ms = (performance.now() - t0) / steps;
    const peak = device === "webgpu" ? (be as WebGpuTapeBackend).gpu.memory().peak : undefined;
    return { ms, loss, peak, description: be.description };
  } finally {
    be.dispose();
  }
}

async function main(): Promise<void> {
  const dir = flags.model ?? path.join(ROOT, "models", "tiny-stories");
  const B = Number(flags.batch), steps = Number(flags.steps), nvt = Number(flags.virtual);
  const batch = makeBatch(dir, B);
  const T = batch.inputIds[0]!.length + nvt;
  const results: [string, Awaited<ReturnType<typeof timeSteps>>][] = [["webgpu", await timeSteps("webgpu", dir, batch, steps, nvt)]];
  if (!flags["no-cpu"]) results.push(["cpu", await timeSteps("cpu", dir, batch, steps, nvt)]);
  const lines = [
    `command: node --import tsx bench/gpu-train-bench.ts ${process.argv.slice(2).join(" ")}`.trim(),
    `machine: ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}, node ${process.version}, load avg ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`,
    `model:   ${path.relative(ROOT, dir) || dir}; batch ${B} × ${T} positions (${nvt} virtual + ${T - nvt} tokens, right-padded), ${steps} timed steps after 1 warm-up`,
    "",
    "| backend | ms/step | training tokens/s | last loss | GPU allocator peak |",
    "| --- | --- | --- | --- | --- |",
    ...results.map(([, r]) => `| ${r.description} | ${r.ms.toFixed(0)} | ${((B * T) / (r.ms / 1000)).toFixed(0)} | ${r.loss.toFixed(4)} | ${r.peak === undefined ? "–" : `${(r.peak / MB).toFixed(1)} MiB`} |`),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

await main();
