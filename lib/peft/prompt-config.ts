/**
 * PromptTuningConfig with PEFT's fields and names (snake_case, as
 * `adapter_config.json` stores them), parsed and validated from JSON and
 * written back in the layout PEFT 0.21 writes.
 */
import { ConfigError } from "../errors.js";

export type TaskType = "CAUSAL_LM" | "SEQ_CLS";
export type PromptTuningInit = "RANDOM" | "TEXT" | "SAMPLE_VOCAB";
export const TASK_TYPES: readonly TaskType[] = ["CAUSAL_LM", "SEQ_CLS"];
export const PROMPT_TUNING_INITS: readonly PromptTuningInit[] = ["RANDOM", "TEXT", "SAMPLE_VOCAB"];

/** The PEFT version whose layout we write (and whose files the tests load). */
export const PEFT_VERSION = "0.21.0";

export interface PromptTuningConfigInit {
  task_type: TaskType;
  num_virtual_tokens: number;
  prompt_tuning_init?: PromptTuningInit;
  prompt_tuning_init_text?: string | null;
  /** Hidden size of the base model (filled from the model when omitted). */
  token_dim?: number | null;
  num_transformer_submodules?: number | null;
  num_attention_heads?: number | null;
  num_layers?: number | null;
  tokenizer_name_or_path?: string | null;
  tokenizer_kwargs?: Record<string, unknown> | null;
  base_model_name_or_path?: string | null;
  revision?: string | null;
  inference_mode?: boolean;
  modules_to_save?: string[] | null;
}

export class PromptTuningConfig {
  readonly peft_type = "PROMPT_TUNING";
  task_type: TaskType;
  num_virtual_tokens: number;
  prompt_tuning_init: PromptTuningInit;
  prompt_tuning_init_text: string | null;
  token_dim: number | null;
  num_transformer_submodules: number | null;
  num_attention_heads: number | null;
  num_layers: number | null;
  tokenizer_name_or_path: string | null;
  tokenizer_kwargs: Record<string, unknown> | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
  modules_to_save: string[] | null;
  auto_mapping: unknown = null;
  peft_version: string = PEFT_VERSION;

  constructor(init: PromptTuningConfigInit, source = "PromptTuningConfig") {
    const bad = (field: string, expected: string, value: unknown): never => {
      throw new ConfigError(`${source}: field ${field} = ${JSON.stringify(value)}: expected ${expected}`);
    };
    if (!TASK_TYPES.includes(init.task_type)) bad("task_type", TASK_TYPES.join(" or "), init.task_type);
    if (!Number.isSafeInteger(init.num_virtual_tokens) || init.num_virtual_tokens < 1) {
      bad("num_virtual_tokens", "a positive integer", init.num_virtual_tokens);
    }
    const initKind = init.prompt_tuning_init ?? "RANDOM";
    if (!PROMPT_TUNING_INITS.includes(initKind)) bad("prompt_tuning_init", PROMPT_TUNING_INITS.join(", "), initKind);
    const optInt = (field: keyof PromptTuningConfigInit): number | null => {
      const v = init[field];
      if (v === undefined || v === null) return null;
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) bad(field, "a positive integer or null", v);
      return v as number;
    };
    this.task_type = init.task_type;
    this.num_virtual_tokens = init.num_virtual_tokens;
    this.prompt_tuning_init = initKind;
    this.prompt_tuning_init_text = init.prompt_tuning_init_text ?? null;
    // PEFT's __post_init__ checks: TEXT needs both the text and the tokenizer it is read with.
    if (initKind === "TEXT" && !this.prompt_tuning_init_text) {
      bad("prompt_tuning_init_text", "the init text (prompt_tuning_init is TEXT)", init.prompt_tuning_init_text);
    }
    if (initKind === "TEXT" && !init.tokenizer_name_or_path) {
      bad("tokenizer_name_or_path", "the tokenizer's name or folder (prompt_tuning_init is TEXT)", init.tokenizer_name_or_path ?? null);
    }
    if (init.tokenizer_kwargs && initKind !== "TEXT") {
      bad("tokenizer_kwargs", "null unless prompt_tuning_init is TEXT", init.tokenizer_kwargs);
    }
    this.token_dim = optInt("token_dim");
    this.num_transformer_submodules = optInt("num_transformer_submodules");
    if (this.num_transformer_submodules !== null && this.num_transformer_submodules !== 1) {
      // Two submodules are for encoder-decoder models; LLaMA is decoder-only.
      bad("num_transformer_submodules", "1 (decoder-only model)", this.num_transformer_submodules);
    }
    this.num_attention_heads = optInt("num_attention_heads");
    this.num_layers = optInt("num_layers");
    this.tokenizer_name_or_path = init.tokenizer_name_or_path ?? null;
    this.tokenizer_kwargs = init.tokenizer_kwargs ?? null;
    this.base_model_name_or_path = init.base_model_name_or_path ?? null;
    this.revision = init.revision ?? null;
    this.inference_mode = init.inference_mode ?? false;
    this.modules_to_save = init.modules_to_save ?? null;
  }

  /** Virtual tokens in the prompt table (× submodules, as PEFT's PromptEmbedding). */
  get totalVirtualTokens(): number {
    return this.num_virtual_tokens * (this.num_transformer_submodules ?? 1);
  }

  /** Parses an adapter_config.json object; `source` names the file in errors. */
  static fromJSON(obj: unknown, source = "adapter_config.json"): PromptTuningConfig {
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw new ConfigError(`${source}: expected a JSON object`);
    const o = obj as Record<string, unknown>;
    if (o.peft_type !== "PROMPT_TUNING") {
      throw new ConfigError(`${source}: field peft_type = ${JSON.stringify(o.peft_type)}: expected "PROMPT_TUNING" (this is not a prompt-tuning adapter)`);
    }
    const str = (k: string): string | null | undefined => {
      const v = o[k];
      if (v === undefined || v === null) return v as null | undefined;
      if (typeof v !== "string") throw new ConfigError(`${source}: field ${k} = ${JSON.stringify(v)}: expected a string or null`);
      return v;
    };
    if (o.inference_mode !== undefined && typeof o.inference_mode !== "boolean") {
      throw new ConfigError(`${source}: field inference_mode = ${JSON.stringify(o.inference_mode)}: expected true or false`);
    }
    if (o.modules_to_save != null && !(Array.isArray(o.modules_to_save) && o.modules_to_save.every((m) => typeof m === "string"))) {
      throw new ConfigError(`${source}: field modules_to_save = ${JSON.stringify(o.modules_to_save)}: expected a list of names or null`);
    }
    const cfg = new PromptTuningConfig({
      task_type: o.task_type as TaskType,
      num_virtual_tokens: o.num_virtual_tokens as number,
      prompt_tuning_init: (o.prompt_tuning_init ?? "RANDOM") as PromptTuningInit,
      prompt_tuning_init_text: str("prompt_tuning_init_text"),
      token_dim: o.token_dim as number | null,
      num_transformer_submodules: o.num_transformer_submodules as number | null,
      num_attention_heads: o.num_attention_heads as number | null,
      num_layers: o.num_layers as number | null,
      tokenizer_name_or_path: str("tokenizer_name_or_path"),
      tokenizer_kwargs: (o.tokenizer_kwargs ?? null) as Record<string, unknown> | null,
      base_model_name_or_path: str("base_model_name_or_path"),
      revision: str("revision"),
      inference_mode: o.inference_mode as boolean | undefined,
      modules_to_save: o.modules_to_save as string[] | null,
    }, source);
    cfg.auto_mapping = o.auto_mapping ?? null;
    if (typeof o.peft_version === "string") cfg.peft_version = o.peft_version;
    return cfg;
  }

  /** The adapter_config.json object, keys sorted as PEFT writes them. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {
      auto_mapping: this.auto_mapping,
      base_model_name_or_path: this.base_model_name_or_path,
      inference_mode: this.inference_mode,
      modules_to_save: this.modules_to_save,
      num_attention_heads: this.num_attention_heads,
      num_layers: this.num_layers,
      num_transformer_submodules: this.num_transformer_submodules,
      num_virtual_tokens: this.num_virtual_tokens,
      peft_type: this.peft_type,
      peft_version: this.peft_version,
      prompt_tuning_init: this.prompt_tuning_init,
      prompt_tuning_init_text: this.prompt_tuning_init_text,
      revision: this.revision,
      task_type: this.task_type,
      token_dim: this.token_dim,
      tokenizer_kwargs: this.tokenizer_kwargs,
      tokenizer_name_or_path: this.tokenizer_name_or_path,
    };
    return out;
  }
}
