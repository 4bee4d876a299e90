/**
 * The LLaMA vocabulary of GGUF: `llama.*` metadata ↔ HF config.json fields,
 * and llama.cpp tensor names ↔ HF checkpoint keys, as llama.cpp's
 * `convert_hf_to_gguf.py` maps them. llama.cpp stores q/k projections in the
 * interleaved rotary layout (Meta's); HF uses the half-split one, so those
 * rows are permuted on the way in and out (see convert/rotary-permute.ts).
 */
import { ConfigError } from "../errors.js";
import type { GgufEntry } from "./gguf.js";
import { gguf } from "./gguf-writer.js";

/** HF key → GGUF name for one layer's tensors (suffix after `model.layers.N.` / `blk.N.`). */
const LAYER_NAMES: readonly (readonly [string, string])[] = [
  ["input_layernorm.weight", "attn_norm.weight"],
  ["self_attn.q_proj.weight", "attn_q.weight"],
  ["self_attn.k_proj.weight", "attn_k.weight"],
  ["self_attn.v_proj.weight", "attn_v.weight"],
  ["self_attn.o_proj.weight", "attn_output.weight"],
  ["self_attn.q_proj.bias", "attn_q.bias"],
  ["self_attn.k_proj.bias", "attn_k.bias"],
  ["self_attn.v_proj.bias", "attn_v.bias"],
  ["self_attn.o_proj.bias", "attn_output.bias"],
  ["post_attention_layernorm.weight", "ffn_norm.weight"],
  ["mlp.gate_proj.weight", "ffn_gate.weight"],
  ["mlp.up_proj.weight", "ffn_up.weight"],
  ["mlp.down_proj.weight", "ffn_down.weight"],
  ["mlp.gate_proj.bias", "ffn_gate.bias"],
  ["mlp.up_proj.bias", "ffn_up.bias"],
  ["mlp.down_proj.bias", "ffn_down.bias"],
];
const GLOBAL_NAMES: readonly (readonly [string, string])[] = [
  ["model.embed_tokens.weight", "token_embd.weight"],
  ["model.norm.weight", "output_norm.weight"],
  ["lm_head.weight", "output.weight"],
];

/** The GGUF tensor name of an HF key, or undefined when llama.cpp has no such tensor. */
export function hfToGgufName(hf: string): string | undefined {
  for (const [h, g] of GLOBAL_NAMES) if (h === hf) return g;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (!m) return undefined;
  const hit = LAYER_NAMES.find(([h]) => h === m[2]);
  return hit ? `blk.${m[1]}.${hit[1]}` : undefined;
}

/** The HF key of a GGUF tensor name, or undefined (e.g. rope_freqs.weight, which becomes config). */
export function ggufToHfName(name: string): string | undefined {
  for (const [h, g] of GLOBAL_NAMES) if (g === name) return h;
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const hit = LAYER_NAMES.find(([, g]) => g === m[2]);
  return hit ? `model.layers.${m[1]}.${hit[0]}` : undefined;
}

/** For q/k projections (weights and biases): the head count whose rotary rows are permuted. */
export function rotaryHeadsFor(hfName: string, numHeads: number, numKvHeads: number): number | undefined {
  if (/self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return numHeads;
  if (/self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return numKvHeads;
  return undefined;
}

export interface Llama3RopeParams {
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

/** RoPE inverse frequencies θ^(-2i/d), in float32 arithmetic as torch computes them. */
export function ropeInvFreq(theta: number, headDim: number): Float64Array {
  const out = new Float64Array(headDim / 2);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim))));
  return out;
}

/**
 * llama.cpp's `rope_freqs` for llama3-style scaling: the divisor of each
 * frequency (1 for high frequencies, `factor` for low ones, smooth between),
 * as convert_hf_to_gguf.py computes it from HF's rope_scaling.
 */
export function llama3RopeFactors(theta: number, headDim: number, p: Llama3RopeParams): Float32Array {
  const lowWavelen = p.original_max_position_embeddings / p.low_freq_factor;
  const highWavelen = p.original_max_position_embeddings / p.high_freq_factor;
  return Float32Array.from(ropeInvFreq(theta, headDim), (freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) return 1;
    if (wavelen > lowWavelen) return p.factor;
    const smooth = (p.original_max_position_embeddings / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
    return 1 / ((1 - smooth) / p.factor + smooth);
  });
}

export type FittedRope = { rope_type: "llama3"; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number } | { rope_type: "linear"; factor: number } | null;

/**
 * Finds HF rope_scaling parameters that reproduce a `rope_freqs` tensor.
 * llama.cpp stores only the per-frequency divisors; the function of
 * (factor, low/high frequency factors, original context) they came from is
 * determined by where the divisor is 1, `factor`, or in between, and by the
 * linear ramp in between, so any parameters that reproduce the divisors give
 * the same rotary embedding. Verified by recomputing; otherwise a ConfigError.
 */
export function fitRopeFreqs(factors: Float32Array, theta: number, headDim: number, originalContext = 8192, source = "rope_freqs.weight"): FittedRope {
  if (factors.length !== headDim / 2) throw new ConfigError(`${source}: ${factors.length} factors, expected head_dim/2 = ${headDim / 2}`);
  const factor = Math.max(...factors);
  if (!(factor >= 1 - 1e-6) || factors.some((f) => !(f > 0))) throw new ConfigError(`${source}: factors must be positive and at least 1 (got max ${factor})`);
  if (factor < 1 + 1e-6) return null;
  const L = originalContext;
  const x = Array.from(ropeInvFreq(theta, headDim), (freq) => (L * freq) / (2 * Math.PI)); // L / wavelength, decreasing
  const tol = 1e-5;
  const kind = Array.from(factors, (f) => (Math.abs(f - 1) < tol ? "high" : Math.abs(f - factor) < tol * factor ? "low" : "mid"));
  if (kind.every((k) => k === "low")) return { rope_type: "linear", factor };
  const order = { high: 0, mid: 1, low: 2 } as const;
  for (let i = 1; i < kind.length; i++) {
    if (order[kind[i]!] < order[kind[i - 1]!]) throw new ConfigError(`${source}: factors are not monotone in wavelength, so they are not llama3 rope scaling`);
  }
  const xLowMax = Math.max(-Infinity, ...x.filter((_, i) => kind[i] === "low"));
  const xHighMin = Math.min(Infinity, ...x.filter((_, i) => kind[i] === "high"));
  const mids = x.map((xi, i) => ({ x: xi, s: (1 / factors[i]! - 1 / factor) / (1 - 1 / factor) })).filter((_, i) => kind[i] === "mid");
  let lf: number, hf: number;
  if (mids.length >= 2) {
    // s = (x − lf) / (hf − lf): a line in x; least squares for slope and intercept.
    const n = mids.length;
    const mx = mids.reduce((a, m) => a + m.x, 0) / n;
    const ms = mids.reduce((a, m) => a + m.s, 0) / n;
    const slope = mids.reduce((a, m) => a + (m.x - mx) * (m.s - ms), 0) / mids.reduce((a, m) => a + (m.x - mx) ** 2, 0);
    const intercept = ms - slope * mx;
    lf = -intercept / slope;
    hf = lf + 1 / slope;
  } else if (mids.length === 1) {
    const { x: xm, s } = mids[0]!;
    let w = Math.min((xm - xLowMax) / s, (xHighMin - xm) / (1 - s)) / 2;
    if (!Number.isFinite(w)) w = xm;
    lf = xm - s * w;
    hf = lf + w;
  } else {
    const lo = Number.isFinite(xLowMax) ? xLowMax : 0;
    const hi = Number.isFinite(xHighMin) ? xHighMin : lo * 2 + 1;
    lf = lo + (hi - lo) / 3;
    hf = lo + (2 * (hi - lo)) / 3;
  }
  const fitted = { factor, low_freq_factor: lf, high_freq_factor: hf, original_max_position_embeddings: L };
  const check = llama3RopeFactors(theta, headDim, fitted);
  for (let i = 0; i < factors.length; i++) {
    if (Math.abs(check[i]! - factors[i]!) > 1e-4 * factors[i]!) {
      throw new ConfigError(`${source}: factor ${i} = ${factors[i]} cannot be reproduced by llama3 rope scaling (best fit gives ${check[i]})`);
    }
  }
  return { rope_type: "llama3", ...fitted };
}

type Json = Record<string, unknown>;

/** `llama.*` and `general.*` metadata for an HF config dict (what convert_hf_to_gguf.py writes for LLaMA). */
export function hfConfigToGgufMetadata(cfg: Json, fileType: number, name = "llama-ts export"): [string, GgufEntry][] {
  const int = (k: string, fallback?: number): number => {
    const v = cfg[k] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v)) throw new ConfigError(`config.json: ${k} = ${JSON.stringify(cfg[k])}: expected an integer`);
    return v;
  };
  const hidden = int("hidden_size");
  const heads = int("num_attention_heads");
  const headDim = int("head_dim", hidden / heads);
  const params = (cfg.rope_parameters ?? {}) as Json;
  const theta = Number(cfg.rope_theta ?? params.rope_theta ?? 10000);
  const md: [string, GgufEntry][] = [
    ["general.architecture", gguf.str("llama")],
    ["general.name", gguf.str(name)],
    ["general.file_type", gguf.u32(fileType)],
    ["llama.block_count", gguf.u32(int("num_hidden_layers"))],
    ["llama.context_length", gguf.u32(int("max_position_embeddings", 2048))],
    ["llama.embedding_length", gguf.u32(hidden)],
    ["llama.feed_forward_length", gguf.u32(int("intermediate_size"))],
    ["llama.attention.head_count", gguf.u32(heads)],
    ["llama.attention.head_count_kv", gguf.u32(int("num_key_value_heads", heads))],
    ["llama.rope.freq_base", gguf.f32(theta)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(Number(cfg.rms_norm_eps ?? 1e-6))],
    ["llama.attention.key_length", gguf.u32(headDim)],
    ["llama.attention.value_length", gguf.u32(headDim)],
    ["llama.rope.dimension_count", gguf.u32(headDim)],
    ["llama.vocab_size", gguf.u32(int("vocab_size"))],
  ];
  const scaling = ropeScalingOf(cfg);
  if (scaling) {
    const type = String(scaling.rope_type ?? scaling.type);
    const factor = Number(scaling.factor);
    if (type === "linear") {
      md.push(["llama.rope.scaling.type", gguf.str("linear")], ["llama.rope.scaling.factor", gguf.f32(factor)]);
    } else if (type === "yarn") {
      md.push(
        ["llama.rope.scaling.type", gguf.str("yarn")],
        ["llama.rope.scaling.factor", gguf.f32(factor)],
        ["llama.rope.scaling.original_context_length", gguf.u32(Number(scaling.original_max_position_embeddings))],
      );
    } else if (type === "llama3") {
      // llama.cpp keeps no llama3 keys: the rope_freqs tensor carries it (written by the exporter).
      md.push(["llama.rope.scaling.original_context_length", gguf.u32(Number(scaling.original_max_position_embeddings ?? 8192))]);
    } else {
      throw new ConfigError(`config.json: rope scaling type "${type}" has no GGUF equivalent (llama.cpp supports linear, yarn and llama3)`);
    }
  }
  return md;
}

/** The rope scaling dict of an HF config in either style (null for plain RoPE). */
export function ropeScalingOf(cfg: Json): Json | null {
  const legacy = cfg.rope_scaling as Json | null | undefined;
  if (legacy && typeof legacy === "object") return legacy;
  const p = cfg.rope_parameters as Json | undefined;
  if (p && typeof p === "object" && p.rope_type && p.rope_type !== "default") return p;
  return null;
}
