/**
 * `llama-ts lora-train`: trains a LoRA adapter on a frozen model and writes it
 * in PEFT's adapter format (the counterpart of `prompt-tune`).
 *
 *   llama-ts lora-train [--model DIR] --data FILE.jsonl [--r 8] [--lora-alpha 16] [--target-modules q_proj,v_proj]
 *     [--init-adapter DIR] --optimizer adam|adamw --lr X (--steps N | --epochs E) --batch B [--seed S]
 *     [--weight-decay W] [--device cpu|webgpu] --out DIR
 *
 * Rows as for prompt-tune: {"input_ids", "labels"} or {"prompt", "completion"} (loss on the
 * completion only). A and B start as PEFT's get_peft_model makes them (A kaiming-uniform from
 * --seed, B zeros) unless --init-adapter gives a saved adapter (ours or PEFT's) to continue: its
 * config (r, lora_alpha, target modules) then replaces --r, --lora-alpha and --target-modules. Batches are shuffled
 * with --seed and right-padded; plain torch Adam/AdamW (the library's one training loop, trainLora). stdout: one JSON line per step
 * ({"step", "loss"}), then the adapter folder; progress on stderr.
 */
import * as path from "node:path";
import { createDifferentiableBackend } from "../../lib/autograd/differentiable.js";
import { LlamaForCausalLM } from "../../lib/model/causal-lm.js";
import { AutoTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { LoraModel, trainLora } from "../../lib/peft/lora-train.js";
import { readLoraAdapter } from "../../lib/peft/lora.js";
import { readTrainingFile } from "../../lib/peft/prompt-data.js";
import { MODEL_FLAG, QUANTIZE_FLAG, TRAINING_FLAGS, defineCommand, existingPath, intFlag, modelPath, quantizeFlag, numberFlag, positive, trainingFlags } from "../args.js";
import { UsageError } from "../cli-error.js";
import { cliProgress, terminalProgress } from "../progress.js";

export const command = defineCommand({
  summary: "train a LoRA adapter on a frozen model; writes a PEFT adapter",
  flags: {
    model: MODEL_FLAG,
    quantize: QUANTIZE_FLAG,
    data: { type: "string", arg: "FILE", required: true, help: "JSONL rows {\"input_ids\", \"labels\"} or {\"prompt\", \"completion\"}" },
    r: { type: "string", arg: "N", default: "8", help: "LoRA rank" },
    "lora-alpha": { type: "string", arg: "X", shownDefault: "2*r", help: "LoRA alpha (scaling = alpha / r)" },
    "target-modules": { type: "string", arg: "LIST", default: "q_proj,v_proj", help: "comma-separated Linear module names to adapt" },
    "init-adapter": { type: "string", arg: "DIR", help: "continue from this adapter (its r, alpha and targets replace the flags)" },
    ...TRAINING_FLAGS,
    "weight-decay": { type: "string", arg: "W", shownDefault: "torch's (0 for adam, 0.01 for adamw)", help: "weight decay" },
    out: { type: "string", arg: "DIR", required: true, help: "the adapter folder to write" },
  },
  async run(f) {
    const modelDir = modelPath("--model", f.model);
    const dataFile = existingPath("--data", f.data);
    const out = f.out;
    const { lr, batchSize, steps, epochs, optimizer, device, seed } = trainingFlags(f);
    const r = positive("--r", intFlag("--r", f.r))!;
    const alpha = positive("--lora-alpha", numberFlag("--lora-alpha", f["lora-alpha"])) ?? 2 * r;
    const targets = f["target-modules"]!.split(",").map((t) => t.trim()).filter(Boolean);
    if (targets.length === 0) throw new UsageError("--target-modules: expected a comma-separated list of module names");

    let loaded: ReturnType<typeof AutoTokenizer.fromPretrained> | undefined;
    const tokenizer = { encode: (text: string, o?: { addSpecialTokens?: boolean }) => (loaded ??= AutoTokenizer.fromPretrained(modelDir)).encode(text, o) };
    const backend = await createDifferentiableBackend(device);
    try {
      const model = await LlamaForCausalLM.fromPretrained(modelDir, { backend, quantize: quantizeFlag(f.quantize), onProgress: terminalProgress("loading") });
      const lora = f["init-adapter"] !== undefined
        ? LoraModel.fromAdapter(model, readLoraAdapter(existingPath("--init-adapter", f["init-adapter"])))
        : LoraModel.create(model, { r, lora_alpha: alpha, target_modules: targets }, { seed });
      const examples = readTrainingFile(dataFile, model.config.vocab_size, tokenizer);
      const progress = cliProgress("lora-train");
      const result = await trainLora(lora, examples, {
        optimizer, lr, weightDecay: numberFlag("--weight-decay", f["weight-decay"]), batchSize, steps, epochs, seed,
        onStep: (log) => void process.stdout.write(JSON.stringify({ step: log.step, loss: log.loss }) + "\n"),
        onProgress: progress,
      });
      lora.savePretrained(out, { baseModelNameOrPath: path.resolve(modelDir) });
      process.stderr.write(`lora-train: ${result.steps} steps in ${result.seconds.toFixed(1)} s\n`);
      process.stdout.write(`adapter: ${out}\n`);
      return 0;
    } finally {
      backend.dispose();
    }
  },
});
