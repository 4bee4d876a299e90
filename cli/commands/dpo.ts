/**
 * `llama-ts dpo`: preference tuning as TRL's DPOTrainer with PEFT (the policy
 * is the model with a LoRA adapter, the reference the same model with the
 * adapter off); writes the adapter in PEFT's format.
 *
 *   llama-ts dpo [--model DIR] --data pairs.jsonl --out DIR [--beta B] [--loss sigmoid|ipo|LIST [--loss-weights W,…]] [--r R]
 *     [--target-modules all-linear|LIST] [--lr X] [--epochs N | --max-steps N | --time-budget S]
 *     [--batch-size N] [--device cpu|webgpu] [--seed S] [--init-adapter DIR [--ref adapter|base]]
 *
 * --init-adapter starts the policy from a trained LoRA adapter (an SFT one,
 * say); the reference is then that adapter as loaded (TRL 1.13's frozen
 * "ref" copy of a pretrained adapter; the DPO paper's π_ref = π_SFT), or with
 * --ref base the model without it (TRL's reference for an adapter it makes
 * itself from a peft_config).
 *
 * The defaults are the recipe that works on the shared preference task
 * without tuning (bench/dpo-bench.ts has the experiments that chose them).
 * stdout: one JSON line per step (loss and TRL's metrics), then the adapter
 * folder; progress and warnings on stderr. Bad input (a bad row, an empty
 * completion, a prompt that fills the context) fails before training, and
 * the adapter folder is written all at once at the end, so a failed run
 * writes nothing.
 */
import * as path from "node:path";
import { createDifferentiableBackend } from "../../lib/autograd/differentiable.js";
import { LlamaForCausalLM } from "../../lib/model/causal-lm.js";
import { AutoTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { LoraModel } from "../../lib/peft/lora-train.js";
import { tokenizeDpoRows } from "../../lib/peft/preference-data.js";
import { trainDpo } from "../../lib/peft/dpo.js";
import { DPO_RECIPE } from "../../lib/peft/dpo-recipe.js";
import { readLoraAdapter } from "../../lib/peft/lora.js";
import { namingBase, readAdapterKind } from "../../lib/peft/adapter-load.js";
import { DEVICE_FLAG, MODEL_FLAG, QUANTIZE_FLAG, choiceFlag, defineCommand, existingPath, intFlag, modelPath, quantizeFlag, numberFlag, positive } from "../args.js";
import { cliProgress } from "../progress.js";
import { readPairs, runLength, targetModules, writeFolderAtomic } from "../preference-common.js";
import { UsageError } from "../cli-error.js";

/** The flags' defaults: the recipe that works on the shared preference task without tuning (lib/peft/dpo-recipe.ts). */
export const DPO_DEFAULTS = {
  loss: DPO_RECIPE.lossType.join(","), lossWeights: DPO_RECIPE.lossWeights.join(","), beta: String(DPO_RECIPE.beta), r: String(DPO_RECIPE.r),
  targets: DPO_RECIPE.targetModules, lr: String(DPO_RECIPE.lr), epochs: String(DPO_RECIPE.epochs), batch: String(DPO_RECIPE.batchSize),
} as const;

export const command = defineCommand({
  summary: "preference-tune a LoRA adapter with DPO (TRL's DPOTrainer) on {prompt, chosen, rejected} pairs; writes a PEFT adapter",
  usage: "--data FILE --out DIR [options]",
  flags: {
    model: MODEL_FLAG,
    quantize: QUANTIZE_FLAG,
    data: { type: "string", arg: "FILE", required: true, help: "JSONL rows {\"prompt\", \"chosen\", \"rejected\"} (TRL's format)" },
    out: { type: "string", arg: "DIR", required: true, help: "the adapter folder to write (PEFT LoRA)" },
    beta: { type: "string", arg: "B", default: DPO_DEFAULTS.beta, help: "DPO beta: how far the policy may move from the reference" },
    loss: { type: "string", arg: "sigmoid|ipo|LIST", default: DPO_DEFAULTS.loss, help: "TRL's loss_type: sigmoid, ipo, apo_zero or sft; a comma list sums them (sigmoid,sft: TRL's RPO, the DPO loss plus the chosen completions' NLL)" },
    "loss-weights": { type: "string", arg: "W,…", shownDefault: `${DPO_DEFAULTS.lossWeights} with the default --loss, else 1 each`, help: "TRL's loss_weights, one per --loss type" },
    r: { type: "string", arg: "N", default: DPO_DEFAULTS.r, help: "LoRA rank" },
    "lora-alpha": { type: "string", arg: "X", shownDefault: "2*r", help: "LoRA alpha (scaling = alpha / r)" },
    "target-modules": { type: "string", arg: "LIST", default: DPO_DEFAULTS.targets, help: "all-linear, or comma-separated Linear names (q_proj,v_proj)" },
    lr: { type: "string", arg: "X", default: DPO_DEFAULTS.lr, help: "AdamW learning rate, decayed linearly to 0 over the run" },
    epochs: { type: "string", arg: "N", shownDefault: DPO_DEFAULTS.epochs, help: "passes over the pairs" },
    "max-steps": { type: "string", arg: "N", help: "optimizer steps (instead of --epochs)" },
    "time-budget": { type: "string", arg: "S", help: "train for this many seconds, the lr decaying over them (instead of --epochs)" },
    "batch-size": { type: "string", arg: "N", default: DPO_DEFAULTS.batch, help: "pairs per step" },
    device: DEVICE_FLAG,
    seed: { type: "string", arg: "N", default: "0", help: "seed of LoRA's init and of the shuffling" },
    "init-adapter": { type: "string", arg: "DIR", help: "start from this LoRA adapter (e.g. an SFT one; its r, alpha and targets replace the flags)" },
    ref: { type: "string", arg: "adapter|base", shownDefault: "adapter with --init-adapter", help: "the reference: the starting adapter as loaded (TRL's frozen ref copy), or the model without any adapter" },
  },
  async run(f) {
    const modelDir = modelPath("--model", f.model);
    const dataFile = existingPath("--data", f.data);
    const beta = positive("--beta", numberFlag("--beta", f.beta))!;
    const lossType = f.loss.split(",").map((t) => choiceFlag("--loss", t.trim(), ["sigmoid", "ipo", "apo_zero", "sft"] as const));
    const weightsText = f["loss-weights"] ?? (f.loss === DPO_DEFAULTS.loss ? DPO_DEFAULTS.lossWeights : undefined);
    const lossWeights = weightsText?.split(",").map((w) => numberFlag("--loss-weights", w.trim())!);
    if (lossWeights && lossWeights.length !== lossType.length) throw new UsageError(`--loss-weights: ${lossWeights.length} weights for ${lossType.length} loss types (${lossType.join(",")})`);
    const r = positive("--r", intFlag("--r", f.r))!;
    const alpha = positive("--lora-alpha", numberFlag("--lora-alpha", f["lora-alpha"])) ?? 2 * r;
    const targets = targetModules("--target-modules", f["target-modules"]);
    const lr = positive("--lr", numberFlag("--lr", f.lr))!;
    const length = runLength(f, DPO_DEFAULTS.epochs);
    const batchSize = positive("--batch-size", intFlag("--batch-size", f["batch-size"]))!;
    const device = choiceFlag("--device", f.device, ["cpu", "webgpu"] as const);
    const seed = intFlag("--seed", f.seed)!;
    const initAdapter = f["init-adapter"] === undefined ? undefined : existingPath("--init-adapter", f["init-adapter"]);
    const ref = choiceFlag("--ref", f.ref ?? (initAdapter ? "adapter" : "base"), ["adapter", "base"] as const);
    if (ref === "adapter" && !initAdapter) throw new UsageError("--ref adapter needs --init-adapter DIR (without one, the adapter starts as a no-op and the reference is the model itself)");
    const warn = (m: string) => process.stderr.write(`llama-ts dpo: warning: ${m}\n`);

    const tok = AutoTokenizer.fromPretrained(modelDir);
    const backend = await createDifferentiableBackend(device);
    try {
      const model = await LlamaForCausalLM.fromPretrained(modelDir, { backend, quantize: quantizeFlag(f.quantize) });
      const context = model.config.max_position_embeddings;
      const rows = readPairs(dataFile, tok, context, warn);
      // TRL keeps the first max_length tokens of prompt + completion; the model's context bounds it here.
      const maxLength = Math.min(1024, context);
      const { examples } = tokenizeDpoRows(tok, rows, { maxLength });
      const lora = initAdapter
        ? await namingBase(readAdapterKind(initAdapter).baseModel, modelDir, () => LoraModel.fromAdapter(model, readLoraAdapter(initAdapter)))
        : LoraModel.create(model, { r, lora_alpha: alpha, target_modules: targets }, { seed });
      const progress = cliProgress("dpo");
      const result = await trainDpo(lora, examples, {
        beta, lossType, lossWeights, maxLength, lr, batchSize, seed, ...length,
        // The reference is frozen: its log-probs are computed once up front (TRL's
        // precompute_ref_log_probs, the same numbers) instead of one extra forward per step.
        precomputeRefLogProbs: true,
        reference: ref === "adapter" ? "initial-adapter" : "base",
        optimizer: "adamw", schedule: "linear", scheduleBy: length.timeBudgetMs !== undefined ? "time" : "steps",
        onProgress: progress, onWarning: warn, onReferenceProgress: cliProgress("dpo reference log-probs"),
        onStep: (log) => {
          process.stdout.write(JSON.stringify({ step: log.step, loss: log.loss, lr: log.lr, ...log.metrics, step_s: log.ms / 1000, step_cpu_s: log.cpuMs / 1000 }) + "\n");
        },
      });
      await writeFolderAtomic(f.out, (dir) => lora.savePretrained(dir, { baseModelNameOrPath: path.resolve(modelDir) }));
      const last = result.logs[result.logs.length - 1]?.metrics ?? {};
      process.stderr.write(`dpo: ${result.steps} steps in ${result.seconds.toFixed(1)} s (${(result.meanStepMs / 1000).toFixed(2)} s/step, ${(result.meanStepCpuMs / 1000).toFixed(2)} CPU s/step)` +
        `, rewards/accuracies ${(last["rewards/accuracies"] ?? NaN).toFixed(2)}, rewards/margins ${(last["rewards/margins"] ?? NaN).toFixed(3)}\n`);
      process.stdout.write(`adapter: ${f.out}\n`);
      return 0;
    } finally {
      backend.dispose();
    }
  },
});
