/**
 * LoRA on the topic task (datasets/topic/), the counterpart of
 * bench/prompt-tune-bench.ts: zero-shot, then LoRA r 8 on q_proj/v_proj
 * (alpha 16, AdamW lr 3e-3, batches of 16, label-only loss) for a time budget,
 * scored on all 300 test rows by the summed log-prob of each label text.
 *
 *   node --import tsx bench/lora-bench.ts [--seconds 120] [--device cpu|webgpu] [--r 8] [--targets q_proj,v_proj]
 *
 * Prints the command, machine and a table row with steps, seconds, s/step and accuracy.
 */
import * as os from "node:os";
import { parseArgs } from "node:util";
import { createDifferentiableBackend } from "../lib/autograd/differentiable.js";
import "../gpu/register.js"; // device "webgpu" for lib
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { completionExample, readJsonl } from "../lib/peft/prompt-data.js";
import { classifyByLabelScores } from "../lib/peft/prompt-classify.js";
import { LoraModel, trainLora } from "../lib/peft/lora-train.js";
import { loadLora } from "../lib/peft/lora.js";

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "120" },
    device: { type: "string", default: "cpu" },
    r: { type: "string", default: "8" },
    targets: { type: "string", default: "q_proj,v_proj" },
    lr: { type: "string", default: "3e-3" },
  },
});
const MODEL = "models/tiny-stories";

async function main(): Promise<void> {
  const device = flags.device === "webgpu" ? "webgpu" : "cpu";
  const r = Number(flags.r), lr = Number(flags.lr), budgetMs = Number(flags.seconds) * 1000;
  const targets = flags.targets!.split(",");
  console.log(`command: node --import tsx bench/lora-bench.ts ${process.argv.slice(2).join(" ")}`.trim());
  console.log(`machine: ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, node ${process.version}, load avg ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  const tok = AutoTokenizer.fromPretrained(MODEL);
  const be = await createDifferentiableBackend(device);
  try {
    const base = await LlamaForCausalLM.fromPretrained(MODEL, { backend: be });
    const load = (f: string) => readJsonl(`datasets/topic/${f}`).map((row) => row.row as { prompt: string; label_text: string });
    const train = load("train.jsonl"), test = load("test.jsonl");
    const zero = await classifyByLabelScores(base, tok, test);
    const examples = train.map((row) => completionExample(tok, row.prompt, row.label_text));
    const lora = LoraModel.create(base, { r, lora_alpha: 2 * r, target_modules: targets }, { seed: 0 });
    // The library's one training loop: shuffled batches of 16 for the time budget.
    const result = await trainLora(lora, examples, {
      optimizer: "adamw", lr, batchSize: 16, timeBudgetMs: budgetMs, seed: 0,
      onStep: (log) => { if (log.step % 10 === 0) process.stderr.write(`  step ${log.step} loss ${log.loss.toFixed(3)} (${(log.ms / 1000).toFixed(1)} s/step)\n`); },
    });
    const steps = result.steps, loss = result.losses[result.losses.length - 1] ?? NaN;
    const seconds = result.seconds;
    const loaded = await loadLora(base, lora.toAdapter());
    const acc = await classifyByLabelScores(base, tok, test);
    loaded.unload();
    console.log("");
    console.log("| method | device | trainable | steps × batch | train time | s/step | last loss | test accuracy (300) | zero-shot |");
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    const trainable = lora.parameters().reduce((n, p) => n + p.size, 0);
    console.log(`| LoRA r ${r} α ${2 * r} on ${targets.join("+")}, AdamW ${lr} | ${be.description} | ${trainable.toLocaleString()} | ${steps} × 16 | ${seconds.toFixed(0)} s | ${(seconds / steps).toFixed(2)} | ${loss.toFixed(3)} | ${acc.accuracy.toFixed(3)} | ${zero.accuracy.toFixed(3)} |`);
  } finally {
    be.dispose();
  }
}

await main();
