/**
 * Random-weight models (benchmarks, tests of shapes): a WeightLoader that makes
 * each tensor from a seeded xorshift generator instead of reading a file. Norm
 * weights are 1; other weights are uniform in ±std·√3 (so their std is `std`),
 * stored directly as f16/bf16/f32 words — never an f32 copy of a 16-bit model.
 */
import type { Backend } from "../backend/backend.js";
import type { LlamaConfig } from "../config.js";
import { Tensor, numel } from "../tensor/tensor.js";
import { f32ToBf16, f32ToF16, type DType } from "../tensor/dtype.js";
import type { WeightLoader } from "./modules.js";

export interface RandomWeightsOptions {
  dtype?: DType;
  seed?: number;
  /** Standard deviation of the non-norm weights (default 0.02, HF's initializer_range). */
  std?: number;
}

export function randomWeightsLoader(backend: Backend, opts: RandomWeightsOptions = {}): WeightLoader {
  const dtype = opts.dtype ?? "f16";
  const half = (opts.std ?? 0.02) * Math.sqrt(3);
  let s = (opts.seed ?? 1) >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
  // 4096 random 16-bit words reused with a random stride keep generation fast for GB-sized models.
  const pool = new Float32Array(4096);
  return (name, shape) => {
    const n = numel(shape);
    const isNorm = name.endsWith("norm.weight");
    for (let i = 0; i < pool.length; i++) pool[i] = isNorm ? 1 : (2 * next() - 1) * half;
    const words = dtype === "f16" ? f32ToF16(pool) : dtype === "bf16" ? f32ToBf16(pool) : pool;
    const data = dtype === "f32" ? new Float32Array(n) : new Uint16Array(n);
    let j = Math.floor(next() * 4096);
    const step = 1 + 2 * Math.floor(next() * 1000); // odd: visits every pool entry
    for (let i = 0; i < n; i++) {
      data[i] = words[j]!;
      j = (j + step) & 4095;
    }
    return backend.upload(new Tensor(data, shape, dtype));
  };
}

/** TinyLlama-1.1B's shape (hidden 2048, 22 layers, 32 heads, 4 kv heads, intermediate 5632, vocab 32000). */
export const TINYLLAMA_1B_CONFIG = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632,
  num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048,
  rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
} as const;

export type { LlamaConfig };
