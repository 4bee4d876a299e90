/**
 * Writes a random-weight LLaMA checkpoint (HF folder, f16 safetensors,
 * sharded one layer per file so memory stays at one layer) for benchmarks.
 * Deterministic: the same spec and seed give the same bytes. A `.complete`
 * marker holding the spec lets a later run reuse the folder.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { saveSafetensors } from "../lib/io/safetensors.js";
import { writeTextAtomic } from "../lib/io/atomic.js";
import { f32ToF16Bits } from "../lib/tensor/dtype.js";
import { Tensor } from "../lib/tensor/tensor.js";

export interface RandomLlamaSpec {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
}

/** TinyLlama-1.1B's shape. */
export const TINYLLAMA_1_1B: RandomLlamaSpec = {
  hidden: 2048, layers: 22, heads: 32, kvHeads: 4, intermediate: 5632, vocab: 32000, maxPositions: 2048,
};

/**
 * f16 words of N(0, std²)-like values (sum of 4 uniforms), from a xorshift32
 * stream. A 4096-entry table of f16 words keeps it at ~2 ns per weight.
 */
function randomF16(n: number, std: number, state: { s: number }): Uint16Array {
  const table = new Uint16Array(4096);
  for (let i = 0; i < 4096; i++) {
    // inverse of an Irwin–Hall(4) CDF approximated by a scaled uniform sum is overkill here:
    // a symmetric triangular-ish spread with the right variance is enough for timing.
    const u = (i + 0.5) / 4096;
    const z = Math.sqrt(-2 * Math.log(u < 0.5 ? u * 2 : (1 - u) * 2)) * (u < 0.5 ? -1 : 1) * 0.7;
    table[i] = f32ToF16Bits(z * std);
  }
  const out = new Uint16Array(n);
  let s = state.s | 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = table[(s >>> 20) & 4095]!;
  }
  state.s = s;
  return out;
}

function ones(n: number): Uint16Array {
  return new Uint16Array(n).fill(f32ToF16Bits(1));
}

/** Writes the folder unless a complete one with the same spec exists. Returns the folder. */
export function ensureRandomLlama(dir: string, spec: RandomLlamaSpec, seed = 1, log: (m: string) => void = () => {}): string {
  const marker = path.join(dir, ".complete");
  const specJson = JSON.stringify({ spec, seed });
  if (fs.existsSync(marker) && fs.readFileSync(marker, "utf8") === specJson) return dir;
  fs.mkdirSync(dir, { recursive: true });
  const { hidden: H, layers: L, heads, kvHeads, intermediate: I, vocab: V } = spec;
  const D = H / heads;
  const state = { s: seed * 2654435761 };
  const weightMap: Record<string, string> = {};
  let total = 0;
  const shard = (file: string, tensors: Record<string, Tensor>) => {
    saveSafetensors(path.join(dir, file), tensors, { metadata: { format: "pt" } });
    for (const [name, t] of Object.entries(tensors)) {
      weightMap[name] = file;
      total += t.size * 2;
    }
  };
  const w = (rows: number, cols: number) => new Tensor(randomF16(rows * cols, 0.02, state), [rows, cols], "f16");
  const shards = L + 2;
  const name = (i: number) => `model-${String(i + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
  log(`writing a random ${L}-layer model to ${dir} …`);
  shard(name(0), { "model.embed_tokens.weight": w(V, H) });
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    shard(name(l + 1), {
      [`${p}.input_layernorm.weight`]: new Tensor(ones(H), [H], "f16"),
      [`${p}.post_attention_layernorm.weight`]: new Tensor(ones(H), [H], "f16"),
      [`${p}.self_attn.q_proj.weight`]: w(heads * D, H),
      [`${p}.self_attn.k_proj.weight`]: w(kvHeads * D, H),
      [`${p}.self_attn.v_proj.weight`]: w(kvHeads * D, H),
      [`${p}.self_attn.o_proj.weight`]: w(H, heads * D),
      [`${p}.mlp.gate_proj.weight`]: w(I, H),
      [`${p}.mlp.up_proj.weight`]: w(I, H),
      [`${p}.mlp.down_proj.weight`]: w(H, I),
    });
  }
  shard(name(L + 1), { "model.norm.weight": new Tensor(ones(H), [H], "f16"), "lm_head.weight": w(V, H) });
  writeTextAtomic(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 1));
  writeTextAtomic(
    path.join(dir, "config.json"),
    JSON.stringify(
      {
        architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: H, intermediate_size: I, num_hidden_layers: L,
        num_attention_heads: heads, num_key_value_heads: kvHeads, head_dim: D, hidden_act: "silu", max_position_embeddings: spec.maxPositions,
        rms_norm_eps: 1e-5, rope_theta: 10000.0, attention_bias: false, mlp_bias: false, tie_word_embeddings: false,
        vocab_size: V, bos_token_id: 1, eos_token_id: 2, torch_dtype: "float16",
      },
      null,
      1,
    ),
  );
  writeTextAtomic(path.join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
  writeTextAtomic(marker, specJson);
  return dir;
}
