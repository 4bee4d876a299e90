/**
 * `llama-ts prompt-tune`: trains a soft prompt on a frozen model and writes it
 * in PEFT's adapter format.
 *
 *   llama-ts prompt-tune --model DIR --data FILE.jsonl --num-virtual-tokens N
 *     --init random|text|sample_vocab [--init-text T] [--init-adapter DIR]
 *     --optimizer adam|adamw --lr X (--steps N | --epochs E) --batch B [--seed S] --out DIR
 *     [--weight-decay W] [--max-grad-norm G] [--schedule constant|linear|cosine] [--warmup-steps K]
 *     [--device cpu|webgpu]
 *
 * Rows: {"input_ids": [...], "labels": [...]} or {"prompt", "completion"} (loss on
 * the completion only). Defaults are plain torch Adam/AdamW: no clipping,
 * schedule or warmup unless asked. stdout: one JSON line per step
 * ({"step", "loss"}), then the adapter folder; progress on stderr.
 */
import * as path from "node:path";
import { createDifferentiableBackend } from "../../lib/autograd/differentiable.js";
import { LlamaForCausalLM } from "../../lib/model/causal-lm.js";
import { AutoTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { PromptTuningModel } from "../../lib/peft/prompt-tuning.js";
import { readTrainingFile } from "../../lib/peft/prompt-data.js";
import { trainPrompt } from "../../lib/peft/prompt-train.js";
import { SCHEDULES, type ScheduleName } from "../../lib/peft/optim-schedule.js";
import type { PromptTuningInit } from "../../lib/peft/prompt-config.js";
import { existingPath, intFlag, numberFlag, parseFlags, positive, required, trainingFlags } from "../args.js";
import { UsageError } from "../cli-error.js";
import type { Command } from "../main.js";

const INITS: Record<string, PromptTuningInit> = { random: "RANDOM", text: "TEXT", sample_vocab: "SAMPLE_VOCAB" };

export const command: Command = {
  summary: "train a soft prompt (prompt tuning) on a frozen model; writes a PEFT adapter",
  async run(argv) {
    const f = parseFlags(argv, {
      model: { type: "string" },
      data: { type: "string" },
      "num-virtual-tokens": { type: "string" },
      init: { type: "string", default: "random" },
      "init-text": { type: "string" },
      "init-adapter": { type: "string" },
      optimizer: { type: "string", default: "adamw" },
      lr: { type: "string" },
      steps: { type: "string" },
      epochs: { type: "string" },
      batch: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      "weight-decay": { type: "string" },
      "max-grad-norm": { type: "string" },
      schedule: { type: "string" },
      "warmup-steps": { type: "string" },
      device: { type: "string", default: "cpu" },
    });

    const modelDir = existingPath("--model", required("--model", f.model));
    const dataFile = existingPath("--data", required("--data", f.data));
    const out = required("--out", f.out);
    const { lr, batchSize: batch, steps, epochs, optimizer, device, seed } = trainingFlags(f);
    const init = INITS[f.init!];
    if (!init) throw new UsageError(`--init: expected random, text or sample_vocab, got "${f.init}"`);
    if (init === "TEXT" && f["init-text"] === undefined && f["init-adapter"] === undefined) throw new UsageError("--init text needs --init-text T");
    const schedule = f.schedule as ScheduleName | undefined;
    if (schedule !== undefined && !SCHEDULES.includes(schedule)) throw new UsageError(`--schedule: expected ${SCHEDULES.join(", ")}, got "${schedule}"`);
    const nvt = f["init-adapter"] === undefined
      ? positive("--num-virtual-tokens", intFlag("--num-virtual-tokens", required("--num-virtual-tokens", f["num-virtual-tokens"])))!
      : intFlag("--num-virtual-tokens", f["num-virtual-tokens"]);

    // The tokenizer loads only when needed (TEXT init, prompt/completion rows): an
    // input_ids-only run works on a model folder without tokenizer files.
    let loaded: ReturnType<typeof AutoTokenizer.fromPretrained> | undefined;
    const tokenizer = { encode: (text: string, o?: { addSpecialTokens?: boolean }) => (loaded ??= AutoTokenizer.fromPretrained(modelDir)).encode(text, o) };
    // Forward and backward both run on the device (WGSL backward kernels on webgpu).
    const backend = await createDifferentiableBackend(device);
    try {
      const model = await LlamaForCausalLM.fromPretrained(modelDir, { backend });
      let pm: PromptTuningModel;
      if (f["init-adapter"] !== undefined) {
        // --init-adapter starts from that adapter's prompt and overrides --init.
        pm = await PromptTuningModel.fromPretrained(model, existingPath("--init-adapter", f["init-adapter"]));
        if (nvt !== undefined && nvt !== pm.config.num_virtual_tokens) {
          throw new UsageError(`--num-virtual-tokens ${nvt} differs from the adapter's ${pm.config.num_virtual_tokens}`);
        }
        pm.config.inference_mode = false;
      } else {
        pm = await PromptTuningModel.create(model, {
          task_type: "CAUSAL_LM", num_virtual_tokens: nvt!, prompt_tuning_init: init,
          prompt_tuning_init_text: f["init-text"] ?? null, tokenizer_name_or_path: init === "TEXT" ? path.resolve(modelDir) : null,
        }, { tokenizer, seed });
      }
      const examples = readTrainingFile(dataFile, model.config.vocab_size, tokenizer);
      const result = await trainPrompt(pm, examples, {
        optimizer, lr, batchSize: batch, steps, epochs, seed,
        weightDecay: numberFlag("--weight-decay", f["weight-decay"]),
        maxGradNorm: positive("--max-grad-norm", numberFlag("--max-grad-norm", f["max-grad-norm"])),
        schedule, warmupSteps: intFlag("--warmup-steps", f["warmup-steps"]),
        onStep: (s) => { process.stdout.write(JSON.stringify({ step: s.step, loss: s.loss }) + "\n"); },
      });
      pm.savePretrained(out, { baseModelNameOrPath: path.resolve(modelDir) });
      process.stderr.write(`prompt-tune: ${result.steps} steps in ${result.seconds.toFixed(1)} s (${result.meanStepMs.toFixed(0)} ms/step)\n`);
      process.stdout.write(`adapter: ${out}\n`);
      return 0;
    } finally {
      backend.dispose();
    }
  },
};
