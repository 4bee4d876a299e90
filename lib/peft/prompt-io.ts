/**
 * Prompt-tuning adapters in PEFT's folder format:
 *   adapter_config.json         the PromptTuningConfig (inference_mode true once saved)
 *   adapter_model.safetensors   `prompt_embeddings` [n, token_dim] (F32), and for
 *                               SEQ_CLS the trained head `base_model.score.weight`
 *                               [num_labels, hidden] (PEFT's modules_to_save), metadata {"format": "pt"}
 * Both files are written atomically; loading checks every field and shape and
 * names the file at fault.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { SafetensorsFile, saveSafetensors } from "../io/safetensors.js";
import { writeTextAtomic } from "../io/atomic.js";
import { PromptTuningConfig } from "./prompt-config.js";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";
export const PROMPT_KEY = "prompt_embeddings";
/** PEFT's key for the SEQ_CLS head it trains and saves with the prompt (modules_to_save "score"). */
export const SCORE_KEY = "base_model.score.weight";

/** Saves config + prompt values [n, token_dim] into `dir` (created when missing). */
export function savePromptAdapter(
  dir: string, config: PromptTuningConfig, values: Float32Array, shape: readonly number[], baseModelNameOrPath?: string,
  score?: { values: Float32Array; shape: readonly number[] },
): void {
  fs.mkdirSync(dir, { recursive: true });
  const json = config.toJSON();
  json.inference_mode = true; // PEFT's save_pretrained marks saved adapters for inference
  if (baseModelNameOrPath !== undefined) json.base_model_name_or_path = baseModelNameOrPath;
  // PeftModelForSequenceClassification adds its heads to modules_to_save (and so to the saved config).
  if (score && !json.modules_to_save) json.modules_to_save = ["classifier", "score"];
  const tensors: Record<string, Tensor> = { [PROMPT_KEY]: new Tensor(values.slice(), shape, "f32") };
  if (score) tensors[SCORE_KEY] = new Tensor(score.values.slice(), score.shape, "f32");
  // Weights first: a folder with a config but no weights would look loadable.
  saveSafetensors(path.join(dir, ADAPTER_WEIGHTS_FILE), tensors, { metadata: { format: "pt" } });
  writeTextAtomic(path.join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(json, null, 2) + "\n");
}

/**
 * Loads and checks an adapter folder; the prompt is float32 [n·submodules,
 * token_dim]; `score` is the SEQ_CLS head when the adapter carries one.
 */
export function loadPromptAdapter(dir: string): { config: PromptTuningConfig; prompt: Float32Array; score?: { values: Float32Array; shape: number[] } } {
  const cfgFile = path.join(dir, ADAPTER_CONFIG_FILE);
  if (!fs.existsSync(cfgFile)) throw new FormatError(dir, `no ${ADAPTER_CONFIG_FILE} in the adapter folder`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
  } catch (err) {
    throw new FormatError(cfgFile, `malformed JSON (${(err as Error).message})`);
  }
  const config = PromptTuningConfig.fromJSON(raw, cfgFile);
  const wFile = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(wFile)) {
    const bin = fs.existsSync(path.join(dir, "adapter_model.bin"));
    throw new FormatError(dir, `no ${ADAPTER_WEIGHTS_FILE}${bin ? " (only adapter_model.bin, a torch pickle: re-save it with safe_serialization=True)" : ""}`);
  }
  const st = SafetensorsFile.open(wFile);
  try {
    if (!st.has(PROMPT_KEY)) throw new FormatError(wFile, `no tensor "${PROMPT_KEY}" (found: ${st.names().join(", ") || "none"})`);
    const info = st.info(PROMPT_KEY);
    if (!["F32", "F16", "BF16", "F64"].includes(info.dtype)) throw new FormatError(wFile, `"${PROMPT_KEY}" has dtype ${info.dtype}, expected a float type`);
    const n = config.totalVirtualTokens;
    const [rows, dim] = info.shape;
    if (info.shape.length !== 2 || rows !== n || (config.token_dim !== null && dim !== config.token_dim)) {
      throw new FormatError(wFile, `"${PROMPT_KEY}" has shape [${info.shape.join(", ")}], expected [${n}, ${config.token_dim ?? "token_dim"}] from ${ADAPTER_CONFIG_FILE}`);
    }
    const prompt = st.read(PROMPT_KEY).toFloat32().slice();
    if (!st.has(SCORE_KEY)) return { config, prompt };
    const s = st.info(SCORE_KEY);
    if (s.shape.length !== 2 || !["F32", "F16", "BF16", "F64"].includes(s.dtype)) {
      throw new FormatError(wFile, `"${SCORE_KEY}" has dtype ${s.dtype} and shape [${s.shape.join(", ")}], expected a float [num_labels, hidden] matrix`);
    }
    return { config, prompt, score: { values: st.read(SCORE_KEY).toFloat32().slice(), shape: [...s.shape] } };
  } finally {
    st.close();
  }
}
