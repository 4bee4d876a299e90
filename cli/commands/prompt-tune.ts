/**
 * `llama-ts prompt-tune`: trains a soft prompt on a frozen model and writes it
 * in PEFT's adapter format.
 *
 *   llama-ts prompt-tune [--model DIR] --data FILE.jsonl --num-virtual-tokens N
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
import { MODEL_FLAG, QUANTIZE_FLAG, TRAINING_FLAGS, defineCommand, existingPath, intFlag, modelPath, quantizeFlag, numberFlag, positive, required, trainingFlags } from "../args.js";
import { UsageError } from "../cli-error.js";
import { cliProgress, terminalProgress } from "../progress.js";

const INITS: Record<string, PromptTuningInit> = { random: "RANDOM", text: "TEXT", sample_vocab: "SAMPLE_VOCAB" };

export const command = defineCommand({
  summary: "train a soft prompt (prompt tuning) on a frozen model; writes a PEFT adapter",
  flags: {
    model: MODEL_FLAG,
    quantize: QUANTIZE_FLAG,
    data: { type: "string", arg: "FILE", required: true, help: "JSONL rows {\"input_ids\", \"labels\"} or {\"prompt\", \"completion\"}" },
    "num-virtual-tokens": { type: "string", arg: "N", help: "soft prompt length (required unless --init-adapter)" },
    init: { type: "string", arg: "random|text|sample_vocab", default: "random", help: "how the prompt starts (PEFT's prompt_tuning_init)" },
    "init-text": { type: "string", arg: "TEXT", help: "the text whose token embeddings start the prompt (--init text)" },
    "init-adapter": { type: "string", arg: "DIR", help: "continue from this adapter's prompt (overrides --init)" },
    ...TRAINING_FLAGS,
    out: { type: "string", arg: "DIR", required: true, help: "the adapter folder to write" },
    "weight-decay": { type: "string", arg: "W", shownDefault: "torch's (0 for adam, 0.01 for adamw)", help: "weight decay" },
    "max-grad-norm": { type: "string", arg: "G", shownDefault: "no clipping", help: "clip the gradient's global norm to G" },
    schedule: { type: "string", arg: SCHEDULES.join("|"), shownDefault: "constant", help: "learning-rate schedule" },
    "warmup-steps": { type: "string", arg: "K", shownDefault: "0", help: "linear warmup steps before the schedule" },
  },
  async run(f) {
    const modelDir = modelPath("--model", f.model);
    const dataFile = existingPath("--data", f.data);
    const out = f.out;
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
      const model = await LlamaForCausalLM.fromPretrained(modelDir, { backend, quantize: quantizeFlag(f.quantize), onProgress: terminalProgress("loading") });
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
        onProgress: cliProgress("prompt-tune"),
      });
      pm.savePretrained(out, { baseModelNameOrPath: path.resolve(modelDir) });
      process.stderr.write(`prompt-tune: ${result.steps} steps in ${result.seconds.toFixed(1)} s (${result.meanStepMs.toFixed(0)} ms/step)\n`);
      process.stdout.write(`adapter: ${out}\n`);
      return 0;
    } finally {
      backend.dispose();
    }
  },
});
