/**
 * LlamaConfig: an HF `config.json` parsed and validated into one clean type.
 *
 * Both rope styles load: transformers 5 writes `rope_parameters: {rope_type,
 * rope_theta, factor, …}`; older checkpoints write `rope_theta` at the top level
 * plus `rope_scaling: {type | rope_type, factor, …}` (or null). Both end up in
 * `rope_theta` + `rope_scaling` (null for plain RoPE) here, and `toJSON()`
 * writes the transformers-5 style back. Missing fields take HF's LlamaConfig
 * defaults (as `from_pretrained` does); present fields of the wrong type, and
 * combinations transformers rejects, are ConfigErrors that name field and value.
 */
import * as fs from "node:fs";
import { ConfigError, FormatError } from "./errors.js";

export type RopeType = "default" | "linear" | "dynamic" | "llama3" | "yarn";
export const ROPE_TYPES: readonly RopeType[] = ["default", "linear", "dynamic", "llama3", "yarn"];

/** Rope scaling parameters (normalized: always `rope_type`, never the legacy `type`). */
export interface RopeScaling {
  rope_type: Exclude<RopeType, "default">;
  factor: number;
  /** llama3 / yarn: the context length the model was pretrained with. */
  original_max_position_embeddings?: number;
  /** llama3 */
  low_freq_factor?: number;
  high_freq_factor?: number;
  /** yarn */
  attention_factor?: number;
  beta_fast?: number;
  beta_slow?: number;
  mscale?: number;
  mscale_all_dim?: number;
  truncate?: boolean;
}

/** Architectures this library implements (the first of `architectures` decides the head). */
export const LLAMA_ARCHITECTURES = ["LlamaForCausalLM", "LlamaModel", "LlamaForSequenceClassification", "LLaMAForCausalLM"] as const;
export type LlamaArchitecture = (typeof LLAMA_ARCHITECTURES)[number];

type Json = Record<string, unknown>;

/** Field readers that name the field, value and source on failure. */
class FieldReader {
  constructor(readonly obj: Json, readonly source: string) {}

  fail(field: string, expected: string): never {
    throw new ConfigError(`${this.source}: field ${field} = ${JSON.stringify(this.obj[field])}: expected ${expected}`);
  }

  has(field: string): boolean {
    return this.obj[field] !== undefined && this.obj[field] !== null;
  }

  int(field: string, fallback: number, min = 1): number {
    if (!this.has(field)) return fallback;
    const v = this.obj[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) this.fail(field, `an integer >= ${min}`);
    return v;
  }

  num(field: string, fallback: number, check: (v: number) => boolean = Number.isFinite, expected = "a finite number"): number {
    if (!this.has(field)) return fallback;
    const v = this.obj[field];
    if (typeof v !== "number" || !check(v)) this.fail(field, expected);
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    if (!this.has(field)) return fallback;
    const v = this.obj[field];
    if (typeof v !== "boolean") this.fail(field, "true or false");
    return v;
  }

  str(field: string, fallback: string): string {
    if (!this.has(field)) return fallback;
    const v = this.obj[field];
    if (typeof v !== "string") this.fail(field, "a string");
    return v;
  }

  /** A token id: a non-negative integer or null. */
  tokenId(field: string, fallback: number | null): number | null {
    if (!(field in this.obj)) return fallback;
    const v = this.obj[field];
    if (v === null) return null;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) this.fail(field, "a non-negative integer token id or null");
    return v;
  }

  /** eos_token_id: an id, a list of ids, or null. */
  tokenIds(field: string, fallback: number | number[] | null): number | number[] | null {
    if (!(field in this.obj)) return fallback;
    const v = this.obj[field];
    if (v === null) return null;
    if (Array.isArray(v)) {
      if (!v.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0)) this.fail(field, "a token id or a list of token ids");
      return [...(v as number[])];
    }
    return this.tokenId(field, null);
  }
}

export class LlamaConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Per-head size; HF's default is hidden_size / num_attention_heads, but a checkpoint may set another. */
  head_dim: number;
  hidden_act: "silu";
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  /** null = plain RoPE ("default"). */
  rope_scaling: RopeScaling | null;
  attention_bias: boolean;
  mlp_bias: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  pad_token_id: number | null;
  /** Sequence classification: number of labels (HF: len(id2label), default 2). */
  num_labels: number;
  id2label: Record<number, string>;
  architectures: string[];
  /** Storage dtype named by the checkpoint ("float32", "float16", "bfloat16"); informational. */
  torch_dtype: string | null;
  /** Every field of the original JSON, for round-tripping unknown keys on save. */
  readonly raw: Json;

  private constructor(raw: Json, source: string) {
    this.raw = raw;
    const r = new FieldReader(raw, source);
    const modelType = r.str("model_type", "llama");
    if (modelType !== "llama") r.fail("model_type", `"llama" (this library implements the LLaMA architecture only)`);

    this.architectures = [];
    if (r.has("architectures")) {
      const a = raw.architectures;
      if (!Array.isArray(a) || !a.every((x) => typeof x === "string")) r.fail("architectures", "a list of class names");
      for (const name of a as string[]) {
        if (!(LLAMA_ARCHITECTURES as readonly string[]).includes(name)) {
          r.fail("architectures", `one of ${LLAMA_ARCHITECTURES.slice(0, 3).join(", ")} (unknown architecture "${name}")`);
        }
      }
      this.architectures = [...(a as string[])];
    }

    this.vocab_size = r.int("vocab_size", 32000);
    this.hidden_size = r.int("hidden_size", 4096);
    this.intermediate_size = r.int("intermediate_size", 11008);
    this.num_hidden_layers = r.int("num_hidden_layers", 32);
    this.num_attention_heads = r.int("num_attention_heads", 32);
    this.num_key_value_heads = r.int("num_key_value_heads", this.num_attention_heads);
    if (this.hidden_size % this.num_attention_heads !== 0) {
      throw new ConfigError(
        `${source}: field hidden_size = ${this.hidden_size} is not divisible by num_attention_heads = ${this.num_attention_heads}`,
      );
    }
    if (this.num_attention_heads % this.num_key_value_heads !== 0) {
      throw new ConfigError(
        `${source}: field num_attention_heads = ${this.num_attention_heads} is not divisible by num_key_value_heads = ${this.num_key_value_heads}`,
      );
    }
    this.head_dim = r.int("head_dim", this.hidden_size / this.num_attention_heads);
    if (this.head_dim % 2 !== 0) r.fail("head_dim", "an even number (rotary embedding rotates pairs)");
    const act = r.str("hidden_act", "silu");
    if (act !== "silu") r.fail("hidden_act", `"silu" (the only activation LLaMA uses)`);
    this.hidden_act = "silu";
    this.max_position_embeddings = r.int("max_position_embeddings", 2048);
    this.rms_norm_eps = r.num("rms_norm_eps", 1e-6, (v) => Number.isFinite(v) && v >= 0, "a non-negative number");
    this.attention_bias = r.bool("attention_bias", false);
    this.mlp_bias = r.bool("mlp_bias", false);
    this.tie_word_embeddings = r.bool("tie_word_embeddings", false);
    this.bos_token_id = r.tokenId("bos_token_id", 1);
    this.eos_token_id = r.tokenIds("eos_token_id", 2);
    this.pad_token_id = r.tokenId("pad_token_id", null);
    this.torch_dtype = r.has("torch_dtype") ? r.str("torch_dtype", "") : r.has("dtype") ? r.str("dtype", "") : null;

    // Labels: HF derives num_labels from id2label when present.
    this.id2label = {};
    if (r.has("id2label")) {
      const m = raw.id2label;
      if (typeof m !== "object" || m === null || Array.isArray(m)) r.fail("id2label", "an object {index: label}");
      for (const [k, v] of Object.entries(m as Json)) {
        if (!/^\d+$/.test(k) || typeof v !== "string") r.fail("id2label", `integer keys and string labels (bad entry "${k}")`);
        this.id2label[Number(k)] = v as string;
      }
      this.num_labels = Object.keys(this.id2label).length;
    } else {
      this.num_labels = r.int("num_labels", 2);
      for (let i = 0; i < this.num_labels; i++) this.id2label[i] = `LABEL_${i}`;
    }

    const { theta, scaling } = parseRope(raw, source, r);
    this.rope_theta = theta;
    this.rope_scaling = scaling;
  }

  /** Validates an HF config dict; `source` names it in errors (usually the file path). */
  static fromJSON(obj: unknown, source = "config.json"): LlamaConfig {
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      throw new ConfigError(`${source}: expected a JSON object, got ${Array.isArray(obj) ? "an array" : JSON.stringify(obj)}`);
    }
    return new LlamaConfig({ ...(obj as Json) }, source);
  }

  /** Reads and validates a config.json file. */
  static fromFile(file: string): LlamaConfig {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      throw new FormatError(file, `cannot read config (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new FormatError(file, `malformed JSON (${(err as Error).message})`);
    }
    return LlamaConfig.fromJSON(obj, file);
  }

  /** The rope type in effect ("default" when there is no scaling). */
  get ropeType(): RopeType {
    return this.rope_scaling?.rope_type ?? "default";
  }

  /** The transformers-5 `rope_parameters` dict. */
  get rope_parameters(): Json {
    return { ...(this.rope_scaling ?? { rope_type: "default" }), rope_theta: this.rope_theta };
  }

  /** The head the checkpoint was saved with (from `architectures`, default causal LM). */
  get architecture(): LlamaArchitecture {
    return (this.architectures[0] as LlamaArchitecture | undefined) ?? "LlamaForCausalLM";
  }

  /** End-of-sequence ids as a list (possibly empty). */
  get eosTokenIds(): number[] {
    const e = this.eos_token_id;
    return e === null ? [] : Array.isArray(e) ? e : [e];
  }

  /** An HF-style dict (transformers-5 rope style), keeping unknown keys of the original. */
  toJSON(): Json {
    const out: Json = { ...this.raw };
    delete out.rope_scaling;
    delete out.rope_theta;
    Object.assign(out, {
      architectures: this.architectures.length ? this.architectures : ["LlamaForCausalLM"],
      model_type: "llama",
      vocab_size: this.vocab_size,
      hidden_size: this.hidden_size,
      intermediate_size: this.intermediate_size,
      num_hidden_layers: this.num_hidden_layers,
      num_attention_heads: this.num_attention_heads,
      num_key_value_heads: this.num_key_value_heads,
      head_dim: this.head_dim,
      hidden_act: this.hidden_act,
      max_position_embeddings: this.max_position_embeddings,
      rms_norm_eps: this.rms_norm_eps,
      rope_parameters: this.rope_parameters,
      attention_bias: this.attention_bias,
      mlp_bias: this.mlp_bias,
      tie_word_embeddings: this.tie_word_embeddings,
      bos_token_id: this.bos_token_id,
      eos_token_id: this.eos_token_id,
      pad_token_id: this.pad_token_id,
    });
    if (this.architecture === "LlamaForSequenceClassification" || "id2label" in this.raw) {
      out.id2label = Object.fromEntries(Object.entries(this.id2label).map(([k, v]) => [String(k), v]));
      out.label2id = Object.fromEntries(Object.entries(this.id2label).map(([k, v]) => [v, Number(k)]));
    }
    return out;
  }
}

/** Reads either rope style into (theta, normalized scaling or null). */
function parseRope(raw: Json, source: string, r: FieldReader): { theta: number; scaling: RopeScaling | null } {
  let field = "rope_scaling";
  let params: Json | null = null;
  let theta = r.num("rope_theta", 10000, (v) => v > 0, "a positive number");
  if (raw.rope_parameters !== undefined && raw.rope_parameters !== null) {
    field = "rope_parameters";
    const p = raw.rope_parameters;
    if (typeof p !== "object" || Array.isArray(p)) r.fail(field, "an object {rope_type, rope_theta, …}");
    params = p as Json;
  } else if (raw.rope_scaling !== undefined && raw.rope_scaling !== null) {
    const p = raw.rope_scaling;
    if (typeof p !== "object" || Array.isArray(p)) r.fail(field, "an object {rope_type | type, factor, …} or null");
    params = p as Json;
  }
  if (!params) return { theta, scaling: null };

  const pr = new FieldReader(params, `${source}: ${field}`);
  if (pr.has("rope_theta")) theta = pr.num("rope_theta", theta, (v) => v > 0, "a positive number");
  // The legacy key is `type`; transformers also accepts both (rope_type wins).
  const typeKey = pr.has("rope_type") ? "rope_type" : pr.has("type") ? "type" : undefined;
  const type = typeKey ? pr.str(typeKey, "default") : "default";
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    pr.fail(typeKey!, `one of ${ROPE_TYPES.join(", ")} (unsupported rope type)`);
  }
  if (pr.has("partial_rotary_factor") && pr.num("partial_rotary_factor", 1) !== 1) {
    pr.fail("partial_rotary_factor", "1.0 (LLaMA rotates the whole head)");
  }
  if (type === "default") return { theta, scaling: null };

  const positive = (v: number) => Number.isFinite(v) && v > 0;
  const s: RopeScaling = { rope_type: type as RopeScaling["rope_type"], factor: 1 };
  if (type !== "yarn" || pr.has("factor")) {
    if (!pr.has("factor")) pr.fail("factor", `a number (required by rope type ${type})`);
    s.factor = pr.num("factor", 1, positive, "a positive number");
  }
  if (type === "linear" || type === "dynamic") {
    if (s.factor < 1) pr.fail("factor", "a number >= 1");
  }
  if (pr.has("original_max_position_embeddings")) {
    s.original_max_position_embeddings = pr.int("original_max_position_embeddings", 0);
  }
  if (type === "llama3") {
    for (const k of ["low_freq_factor", "high_freq_factor", "original_max_position_embeddings"] as const) {
      if (!pr.has(k)) pr.fail(k, `a number (required by rope type llama3)`);
    }
    s.low_freq_factor = pr.num("low_freq_factor", 1, positive, "a positive number");
    s.high_freq_factor = pr.num("high_freq_factor", 4, positive, "a positive number");
    if (s.high_freq_factor <= s.low_freq_factor) pr.fail("high_freq_factor", `a number > low_freq_factor (${s.low_freq_factor})`);
  }
  if (type === "yarn") {
    // transformers' standardize_rope_params: original_max_position_embeddings defaults to
    // max_position_embeddings, and factor to max_position_embeddings / original.
    const maxPos = r.int("max_position_embeddings", 2048);
    s.original_max_position_embeddings ??= maxPos;
    if (!pr.has("factor")) s.factor = maxPos / s.original_max_position_embeddings;
    if (pr.has("attention_factor")) s.attention_factor = pr.num("attention_factor", 1, positive, "a positive number");
    if (pr.has("beta_fast")) s.beta_fast = pr.num("beta_fast", 32);
    if (pr.has("beta_slow")) s.beta_slow = pr.num("beta_slow", 1);
    if (pr.has("mscale")) s.mscale = pr.num("mscale", 1);
    if (pr.has("mscale_all_dim")) s.mscale_all_dim = pr.num("mscale_all_dim", 1);
    if (pr.has("truncate")) s.truncate = pr.bool("truncate", true);
  }
  return { theta, scaling: s };
}
