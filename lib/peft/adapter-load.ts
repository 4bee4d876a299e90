/**
 * `--adapter DIR` for a run: reads a PEFT adapter folder, tells a LoRA adapter
 * from a prompt-tuning one by `peft_type`, and applies it to a loaded model
 * for the run (what PEFT's `PeftModel.from_pretrained(base, dir)` does).
 *
 *   LORA           loadLora: the targeted weights become W + s·B·A until `remove()`
 *   PROMPT_TUNING  a PromptTuningModel: the soft prompt goes in front of every input
 *
 * An adapter made for another base model fails on its shapes (a LoRA module
 * whose A/B do not fit the weight, a module the model lacks, a prompt of
 * another width); the error then also names the adapter's
 * `base_model_name_or_path`. When the shapes fit but that path names a
 * different folder than the model's, the run goes on with a warning: PEFT
 * itself records but never checks it, and a copied or renamed base folder is
 * common.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, LlamaError } from "../errors.js";
import type { PretrainedLlama } from "../model/auto.js";
import type { GenerationModel } from "../generate/types.js";
import { loadLora, type LoadedLora } from "./lora.js";
import { PromptTuningModel } from "./prompt-tuning.js";
import { promptGenerationModel } from "./prompt-generate.js";

export type AdapterKind = "LORA" | "PROMPT_TUNING";

/** What an adapter folder holds, from its adapter_config.json. */
export function readAdapterKind(dir: string): { kind: AdapterKind; baseModel: string | null } {
  const file = path.join(dir, "adapter_config.json");
  if (!fs.existsSync(file)) throw new FormatError(dir, "no adapter_config.json (expected a PEFT adapter folder)");
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw new FormatError(file, `malformed JSON (${(err as Error).message})`);
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  if (o.peft_type !== "LORA" && o.peft_type !== "PROMPT_TUNING") {
    throw new FormatError(file, `field peft_type = ${JSON.stringify(o.peft_type)}: expected "LORA" or "PROMPT_TUNING"`);
  }
  return { kind: o.peft_type, baseModel: typeof o.base_model_name_or_path === "string" ? o.base_model_name_or_path : null };
}

/** An adapter applied to a model for one run. */
export interface AppliedAdapter {
  readonly kind: AdapterKind;
  readonly dir: string;
  /** Things worth telling the user (e.g. the adapter names another base folder). */
  readonly warnings: string[];
  /** LORA: the loaded adapter (the model's own forward now includes it). */
  readonly lora?: LoadedLora;
  /** PROMPT_TUNING: the model with its soft prompt (use its forward/generate instead of the model's). */
  readonly prompt?: PromptTuningModel;
  /** What `generate` drives: the model itself (LoRA) or the model behind the soft prompt. */
  generationModel(): GenerationModel;
  /** Takes the adapter off again (LoRA: the base weights come back bit for bit). */
  remove(): void;
}

/** Whether two base-model names plausibly mean the same model (same folder, or same last path part). */
function sameBase(recorded: string, modelDir: string): boolean {
  if (path.resolve(recorded) === path.resolve(modelDir)) return true;
  const last = (p: string) => path.basename(p.replace(/[\\/]+$/, ""));
  return last(recorded) === last(modelDir);
}

/**
 * Applies the adapter in `dir` to `model` (loaded from `modelDir`, used only in messages and the base check).
 * Throws a one-line error naming the adapter and its recorded base model when it does not fit.
 */
export async function applyAdapter(model: PretrainedLlama, dir: string, modelDir?: string): Promise<AppliedAdapter> {
  const { kind, baseModel } = readAdapterKind(dir);
  const warnings: string[] = [];
  const fit = <T>(apply: () => Promise<T>) => namingBase(baseModel, modelDir, apply);
  if (baseModel && modelDir && !sameBase(baseModel, modelDir)) {
    warnings.push(`${dir}: adapter_config.json names base model "${baseModel}", the model is ${modelDir}; the shapes fit, applying it`);
  }
  if (kind === "LORA") {
    const lora = await fit(() => loadLora(model, dir));
    return { kind, dir, warnings, lora, generationModel: () => asCausal(model, dir), remove: () => lora.unload() };
  }
  const prompt = await fit(() => PromptTuningModel.fromPretrained(model, dir));
  return {
    kind, dir, warnings, prompt,
    generationModel: () => promptGenerationModel(prompt, asCausal(model, dir)),
    remove: () => undefined,
  };
}

/**
 * Runs `apply` (which fits an adapter to a model); a LlamaError it throws gets
 * the adapter's recorded base model appended, the likely reason for a misfit.
 */
export async function namingBase<T>(baseModel: string | null, modelDir: string | undefined, apply: () => Promise<T> | T): Promise<T> {
  try {
    return await apply();
  } catch (err) {
    if (err instanceof LlamaError && baseModel) {
      throw new LlamaError(`${err.message} (the adapter was made for base_model_name_or_path "${baseModel}"${modelDir ? `, not ${modelDir}` : ""})`, { cause: err });
    }
    throw err;
  }
}

function asCausal(model: PretrainedLlama, dir: string) {
  if (!("lm_head" in model)) throw new LlamaError(`${dir}: generating needs a LlamaForCausalLM base model (this one is LlamaForSequenceClassification)`);
  return model;
}
