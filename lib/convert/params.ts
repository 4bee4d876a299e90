/**
 * Meta's `params.json` → HF `config.json`, following what HF's
 * `convert_llama_weights_to_hf.py` writes for each LLaMA version.
 */
import * as fs from "node:fs";
import { ConfigError, FormatError } from "../errors.js";

/** The LLaMA generations the converter knows (flag `--llama_version`). */
export const LLAMA_VERSIONS = ["1", "2", "3", "3.1", "3.2", "3.3"] as const;
export type LlamaVersion = (typeof LLAMA_VERSIONS)[number];

export interface MetaParams {
  dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  multiple_of: number;
  ffn_dim_multiplier: number;
  norm_eps: number;
  /** -1 in LLaMA 1/2 params.json (the tokenizer decides); the converter then uses the embedding's rows. */
  vocab_size: number;
  rope_theta: number;
  use_scaled_rope: boolean;
  rope_scaling_factor?: number;
}

export function readMetaParams(file: string): MetaParams {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw new FormatError(file, `cannot read params.json (${(err as Error).message})`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new FormatError(file, "params.json must be a JSON object");
  const o = raw as Record<string, unknown>;
  const num = (field: string, fallback?: number, integer = false, min = Number.NEGATIVE_INFINITY): number => {
    const v = o[field];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new ConfigError(`${file}: missing field ${field}`);
      return fallback;
    }
    if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min) {
      throw new ConfigError(`${file}: field ${field} = ${JSON.stringify(v)}: expected ${integer ? "an integer" : "a number"}${min > Number.NEGATIVE_INFINITY ? ` >= ${min}` : ""}`);
    }
    return v;
  };
  const dim = num("dim", undefined, true, 1);
  const nHeads = num("n_heads", undefined, true, 1);
  const p: MetaParams = {
    dim,
    n_layers: num("n_layers", undefined, true, 1),
    n_heads: nHeads,
    n_kv_heads: num("n_kv_heads", nHeads, true, 1),
    multiple_of: num("multiple_of", 256, true, 1),
    ffn_dim_multiplier: num("ffn_dim_multiplier", 1, false, 0),
    norm_eps: num("norm_eps", 1e-5, false, 0),
    vocab_size: num("vocab_size", -1, true, -1),
    rope_theta: num("rope_theta", 10000, false, 0),
    use_scaled_rope: o.use_scaled_rope === true,
  };
  if (o.rope_scaling_factor !== undefined) p.rope_scaling_factor = num("rope_scaling_factor", 8, false, 1);
  if (dim % nHeads !== 0) throw new ConfigError(`${file}: dim ${dim} is not divisible by n_heads ${nHeads}`);
  if (nHeads % p.n_kv_heads !== 0) throw new ConfigError(`${file}: n_heads ${nHeads} is not a multiple of n_kv_heads ${p.n_kv_heads}`);
  if ((dim / nHeads) % 2 !== 0) throw new ConfigError(`${file}: head size ${dim / nHeads} must be even for rotary embeddings`);
  return p;
}

/**
 * The SwiGLU hidden size Meta's `FeedForward` uses: 2/3 of 4·dim, scaled by
 * ffn_dim_multiplier, rounded up to a multiple of multiple_of.
 */
export function computeIntermediateSize(dim: number, ffnDimMultiplier = 1, multipleOf = 256): number {
  const hidden = Math.floor(ffnDimMultiplier * Math.floor((8 * dim) / 3));
  return multipleOf * Math.floor((hidden + multipleOf - 1) / multipleOf);
}

export type HfDtypeName = "float16" | "bfloat16" | "float32";

/**
 * The HF config.json dict for these params, as HF's converter writes it.
 * `vocabSize` comes from the merged embedding (params.json may say -1);
 * `tied` when the checkpoint has no `output.weight` (Llama 3.2 1B/3B).
 */
export function metaParamsToHfConfig(
  p: MetaParams,
  version: LlamaVersion,
  opts: { vocabSize: number; tied: boolean; dtype: HfDtypeName },
): Record<string, unknown> {
  const v3 = version.startsWith("3");
  let maxPos = version === "1" ? 2048 : version === "2" ? 4096 : 8192;
  // CodeLlama (LLaMA 2 family) uses rope_theta 1e6 and 16k context.
  if (!v3 && p.rope_theta > 10000) maxPos = 16384;
  let ropeScaling: Record<string, unknown> | null = null;
  const scaled = version === "3.1" || version === "3.2" || version === "3.3" || p.use_scaled_rope;
  if (scaled) {
    maxPos = 131072;
    ropeScaling = {
      factor: p.rope_scaling_factor ?? (version === "3.2" ? 32 : 8),
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
      rope_type: "llama3",
    };
  }
  const headDim = p.dim / p.n_heads;
  return {
    architectures: ["LlamaForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: v3 ? 128000 : 1,
    eos_token_id: v3 ? 128001 : 2,
    head_dim: headDim,
    hidden_act: "silu",
    hidden_size: p.dim,
    initializer_range: 0.02,
    intermediate_size: computeIntermediateSize(p.dim, p.ffn_dim_multiplier, p.multiple_of),
    max_position_embeddings: maxPos,
    mlp_bias: false,
    model_type: "llama",
    num_attention_heads: p.n_heads,
    num_hidden_layers: p.n_layers,
    num_key_value_heads: p.n_kv_heads,
    pretraining_tp: 1,
    rms_norm_eps: p.norm_eps,
    rope_scaling: ropeScaling,
    rope_theta: p.rope_theta,
    tie_word_embeddings: opts.tied,
    torch_dtype: opts.dtype,
    use_cache: true,
    vocab_size: opts.vocabSize,
  };
}
