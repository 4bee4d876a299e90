/**
 * PEFT's LoraConfig, as `adapter_config.json` stores it (snake_case), parsed
 * and validated: which modules an adapter targets and how each is scaled.
 * Options that change the math in ways we do not implement (DoRA, LoRA
 * biases, embedding targets, fan_in_fan_out) are ConfigErrors, never ignored.
 */
import * as fs from "node:fs";
import { ConfigError, FormatError } from "../errors.js";

export interface LoraConfig {
  readonly r: number;
  readonly lora_alpha: number;
  /** A list of module-name suffixes, or one regex that must match the whole module name (PEFT's rule). */
  readonly target_modules: readonly string[] | string;
  readonly use_rslora: boolean;
  /** Per-module overrides: key = module-name pattern. */
  readonly rank_pattern: Readonly<Record<string, number>>;
  readonly alpha_pattern: Readonly<Record<string, number>>;
  /** Only these layer indices, when set. */
  readonly layers_to_transform: readonly number[] | null;
  readonly base_model_name_or_path: string | null;
  readonly task_type: string | null;
  /** Modules trained whole beside the LoRA pairs: only a SEQ_CLS head (["classifier", "score"], PEFT's default for that task) is supported. */
  readonly modules_to_save: readonly string[] | null;
}

export function readLoraConfig(file: string): LoraConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw new FormatError(file, `cannot read adapter_config.json (${(err as Error).message})`);
  }
  return parseLoraConfig(raw, file);
}

export function parseLoraConfig(raw: unknown, source = "adapter_config.json"): LoraConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`${source}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const bad = (field: string, expected: string): never => {
    throw new ConfigError(`${source}: field ${field} = ${JSON.stringify(o[field])}: expected ${expected}`);
  };
  if (o.peft_type !== "LORA") bad("peft_type", `"LORA" (this loader reads LoRA adapters only)`);
  const r = o.r;
  if (typeof r !== "number" || !Number.isSafeInteger(r) || r < 1) bad("r", "a positive integer");
  const alpha = o.lora_alpha ?? 8;
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) bad("lora_alpha", "a number");
  let targets: readonly string[] | string;
  if (typeof o.target_modules === "string") targets = o.target_modules;
  else if (Array.isArray(o.target_modules) && o.target_modules.length > 0 && o.target_modules.every((t) => typeof t === "string")) targets = o.target_modules as string[];
  else return bad("target_modules", "a non-empty list of module names or a regex string");
  if (o.use_dora === true) bad("use_dora", "false (DoRA adapters are not supported)");
  if (o.bias !== undefined && o.bias !== "none") bad("bias", `"none" (LoRA bias training is not supported)`);
  if (o.lora_bias === true) bad("lora_bias", "false (LoRA biases are not supported)");
  if (o.fan_in_fan_out === true) bad("fan_in_fan_out", "false (LLaMA layers are nn.Linear)");
  let modulesToSave: string[] | null = null;
  if (Array.isArray(o.modules_to_save) && o.modules_to_save.length > 0) {
    // A SEQ_CLS adapter saves its classification head whole; PEFT names it "classifier" or "score" depending on the model.
    const heads = ["classifier", "score"];
    if (o.task_type !== "SEQ_CLS" || !o.modules_to_save.every((m) => typeof m === "string" && heads.includes(m))) {
      bad("modules_to_save", `null, or ["classifier", "score"] with task_type "SEQ_CLS" (other fully trained modules are not supported)`);
    }
    modulesToSave = o.modules_to_save as string[];
  } else if (o.modules_to_save !== undefined && o.modules_to_save !== null && !(Array.isArray(o.modules_to_save))) {
    bad("modules_to_save", "a list of module names or null");
  }
  const numMap = (field: string): Record<string, number> => {
    const v = o[field];
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" || Array.isArray(v) || !Object.values(v).every((x) => typeof x === "number" && x > 0)) bad(field, "an object {pattern: positive number}");
    return v as Record<string, number>;
  };
  let layers: number[] | null = null;
  if (typeof o.layers_to_transform === "number") layers = [o.layers_to_transform];
  else if (Array.isArray(o.layers_to_transform)) {
    if (!o.layers_to_transform.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) bad("layers_to_transform", "layer indices");
    layers = o.layers_to_transform as number[];
  } else if (o.layers_to_transform !== undefined && o.layers_to_transform !== null) bad("layers_to_transform", "an index, a list of indices or null");
  return {
    r: r as number,
    lora_alpha: alpha as number,
    target_modules: targets,
    use_rslora: o.use_rslora === true,
    rank_pattern: numMap("rank_pattern"),
    alpha_pattern: numMap("alpha_pattern"),
    layers_to_transform: layers,
    base_model_name_or_path: typeof o.base_model_name_or_path === "string" ? o.base_model_name_or_path : null,
    task_type: typeof o.task_type === "string" ? o.task_type : null,
    modules_to_save: modulesToSave,
  };
}

/** PEFT's target check: a regex string must match the whole name; list entries match the name or its last dotted part(s). */
export function isTargeted(cfg: LoraConfig, moduleName: string): boolean {
  if (typeof cfg.target_modules === "string") return new RegExp(`^(?:${cfg.target_modules})$`).test(moduleName);
  const hit = cfg.target_modules.some((t) => moduleName === t || moduleName.endsWith(`.${t}`));
  if (!hit || !cfg.layers_to_transform) return hit;
  const m = /\.layers\.(\d+)\./.exec(moduleName);
  return m !== null && cfg.layers_to_transform.includes(Number(m[1]));
}

/** The first pattern key matching a module name (PEFT matches `(.*\.)?key$`). */
function patternValue(patterns: Readonly<Record<string, number>>, moduleName: string): number | undefined {
  for (const [key, v] of Object.entries(patterns)) {
    if (new RegExp(`(^|\\.)${key.replace(/[.*+?^${}()|[\]\\]/g, (c) => (c === "." ? "\\." : `\\${c}`))}$`).test(moduleName) || new RegExp(`^(?:.*\\.)?${key}$`).test(moduleName)) return v;
  }
  return undefined;
}

/** Rank and scaling (alpha / r, or alpha / √r with rsLoRA) of one module. */
export function loraScaling(cfg: LoraConfig, moduleName: string): { r: number; scaling: number } {
  const r = patternValue(cfg.rank_pattern, moduleName) ?? cfg.r;
  const alpha = patternValue(cfg.alpha_pattern, moduleName) ?? cfg.lora_alpha;
  return { r, scaling: cfg.use_rslora ? alpha / Math.sqrt(r) : alpha / r };
}
