/**
 * `llama-ts lora-train`: trains a LoRA adapter on a frozen model and writes it
 * in PEFT's adapter format (the counterpart of `prompt-tune`).
 *
 *   llama-ts lora-train --model DIR --data FILE.jsonl [--r 8] [--lora-alpha 16] [--target-modules q_proj,v_proj]
 *     [--init-adapter DIR] --optimizer adam|adamw --lr X (--steps N | --epochs E) --batch B [--seed S]
 *     [--weight-decay W] [--device cpu|webgpu] --out DIR
 *
 * Rows as for prompt-tune: {"input_ids", "labels"} or {"prompt", "completion"} (loss on the
 * completion only). A and B start as PEFT's get_peft_model makes them (A kaiming-uniform from
 * --seed, B zeros) unless --init-adapter gives a saved adapter (ours or PEFT's) to continue: its
 * config (r, lora_alpha, target modules) then replaces --r, --lora-alpha and --target-modules. Batches are shuffled
 * with --seed and right-padded; plain torch Adam/AdamW. stdout: one JSON line per step
 * ({"step", "loss"}), then the adapter folder; progress on stderr.
 */
import * as path from "node:path";
import { createDifferentiableBackend } from "../../lib/autograd/differentiable.js";
import { LlamaForCausalLM } from "../../lib/model/causal-lm.js";
import { AutoTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { LoraModel } from "../../lib/peft/lora-train.js";
import { readLoraAdapter } from "../../lib/peft/lora.js";
import { collate, readTrainingFile } from "../../lib/peft/prompt-data.js";
import { seededUniform } from "../../lib/peft/prompt-init.js";
import { shuffled } from "../../lib/peft/prompt-train.js";
import { Adam, AdamW } from "../../lib/peft/optim.js";
import { ProgressBar } from "../../lib/convert/progress.js";
import { existingPath, intFlag, numberFlag, parseFlags, positive, required, trainingFlags } from "../args.js";
import { UsageError } from "../cli-error.js";
import type { Command } from "../main.js";

export const command: Command = {
  summary: "train a LoRA adapter on a frozen model; writes a PEFT adapter",
  async run(argv) {
    const f = parseFlags(argv, {
      model: { type: "string" },
      data: { type: "string" },
      r: { type: "string", default: "8" },
      "lora-alpha": { type: "string" },
      "target-modules": { type: "string", default: "q_proj,v_proj" },
      "init-adapter": { type: "string" },
      optimizer: { type: "string", default: "adamw" },
      lr: { type: "string" },
      steps: { type: "string" },
      epochs: { type: "string" },
      batch: { type: "string" },
      seed: { type: "string" },
      "weight-decay": { type: "string" },
      device: { type: "string", default: "cpu" },
      out: { type: "string" },
    });
    const modelDir = existingPath("--model", required("--model", f.model));
    const dataFile = existingPath("--data", required("--data", f.data));
    const out = required("--out", f.out);
    const { lr, batchSize, steps, epochs, optimizer, device, seed } = trainingFlags(f);
    const r = positive("--r", intFlag("--r", f.r))!;
    const alpha = positive("--lora-alpha", numberFlag("--lora-alpha", f["lora-alpha"])) ?? 2 * r;
    const targets = f["target-modules"]!.split(",").map((t) => t.trim()).filter(Boolean);
    if (targets.length === 0) throw new UsageError("--target-modules: expected a comma-separated list of module names");

    let loaded: ReturnType<typeof AutoTokenizer.fromPretrained> | undefined;
    const tokenizer = { encode: (text: string, o?: { addSpecialTokens?: boolean }) => (loaded ??= AutoTokenizer.fromPretrained(modelDir)).encode(text, o) };
    const backend = await createDifferentiableBackend(device);
    try {
      const model = await LlamaForCausalLM.fromPretrained(modelDir, { backend });
      const lora = f["init-adapter"] !== undefined
        ? LoraModel.fromAdapter(model, readLoraAdapter(existingPath("--init-adapter", f["init-adapter"])))
        : LoraModel.create(model, { r, lora_alpha: alpha, target_modules: targets }, { seed });
      const examples = readTrainingFile(dataFile, model.config.vocab_size, tokenizer);
      const perEpoch = Math.ceil(examples.length / batchSize);
      const total = steps ?? Math.ceil(epochs! * perEpoch);
      const opts = { lr, weightDecay: numberFlag("--weight-decay", f["weight-decay"]) };
      const opt = optimizer === "adam" ? new Adam(lora.parameters(), opts) : new AdamW(lora.parameters(), opts);
      const rand = seededUniform(seed);
      const pad = model.config.pad_token_id ?? 0;
      const bar = new ProgressBar("lora-train", total, process.stderr, "items");
      const t0 = performance.now();
      let order = examples;
      for (let step = 0; step < total; step++) {
        const within = step % perEpoch;
        if (within === 0) order = shuffled(examples, rand);
        const b = collate(order.slice(within * batchSize, (within + 1) * batchSize), pad, "right");
        opt.zeroGrad();
        const loss = await lora.lossAndGrad({ inputIds: b.inputIds, attentionMask: b.attentionMask, labels: b.labels! });
        opt.step();
        process.stdout.write(JSON.stringify({ step: step + 1, loss }) + "\n");
        bar.update(step + 1, `loss ${loss.toFixed(4)}`);
      }
      bar.finish(`${total} steps`);
      lora.savePretrained(out, { baseModelNameOrPath: path.resolve(modelDir) });
      process.stderr.write(`lora-train: ${total} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      process.stdout.write(`adapter: ${out}\n`);
      return 0;
    } finally {
      backend.dispose();
    }
  },
};
