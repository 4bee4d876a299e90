/**
 * Random-weight LLaMA models for benchmarks, never committed: an HF folder
 * (f16 safetensors, sharded one layer per file so memory stays at one layer),
 * its GGUF export, or a GGUF written straight from random ggml blocks.
 * Deterministic: the same spec and seed give the same bytes. A `.complete`
 * marker holding the spec lets a later run reuse the folder.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { saveSafetensors } from "../lib/io/safetensors.js";
import { writeTextAtomic } from "../lib/io/atomic.js";
import { f32ToF16Bits } from "../lib/tensor/dtype.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { exportHfToGguf } from "../lib/io/gguf-export.js";
import { gguf, writeGguf, type GgufTensorSpec } from "../lib/io/gguf-writer.js";
import { GgmlType } from "../lib/io/gguf-types.js";
import { syntheticSpmVocab, tokenizerMetadata } from "../lib/io/gguf-tokenizer.js";

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

/** The exported GGUF of a checkpoint folder (llama.cpp's convert_hf_to_gguf layout), made once per folder and type, then reused. */
export function ensureGgufExport(dir: string, file: string, outtype: "f32" | "f16", log: (m: string) => void = () => {}): string {
  const stamp = `${file}.source`;
  const source = JSON.stringify({ dir: path.resolve(dir), mtime: fs.statSync(path.join(dir, "config.json")).mtimeMs, outtype });
  if (!fs.existsSync(file) || !fs.existsSync(stamp) || fs.readFileSync(stamp, "utf8") !== source) {
    log(`exporting ${dir} → ${file} (${outtype})`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    exportHfToGguf(dir, file, { outtype, name: path.basename(file, ".gguf") });
    fs.writeFileSync(stamp, source);
  }
  return file;
}

/** A model's shape for a GGUF written straight from random blocks (no f16 checkpoint first: a 7B one would be 13.5 GB). */
export interface GgufShape { hidden: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number; ropeTheta: number; context: number }
export const TINYLLAMA_GGUF: GgufShape = { hidden: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, ropeTheta: 10000, context: 2048 };
export const LLAMA2_7B: GgufShape = { hidden: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, vocab: 32000, ropeTheta: 10000, context: 4096 };
export const LLAMA3_8B: GgufShape = { hidden: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, vocab: 128256, ropeTheta: 500000, context: 8192 };
/** A 4-layer, hidden-512 model: checks a bench script itself in seconds. */
export const SMALL_GGUF: GgufShape = { hidden: 512, layers: 4, heads: 8, kvHeads: 2, ffn: 1536, vocab: 4096, ropeTheta: 500000, context: 8192 };

/**
 * Blocks of random codes from a xorshift32 stream, with one fixed f16 scale
 * chosen so the weights have std ≈ 0.018: Q4_0 (scale, 16 bytes of nibbles;
 * codes 0..15 − 8, std ≈ 4.6·d) or Q8_0 (scale, 32 int8 codes, std ≈ 74·d).
 */
function* randomBlocks(type: "q4_0" | "q8_0", elems: number, state: { s: number }): Iterable<Uint8Array> {
  const codeBytes = type === "q4_0" ? 16 : 32;
  const scale = f32ToF16Bits(type === "q4_0" ? 0.004 : 0.00025);
  const blockBytes = 2 + codeBytes;
  const blocksPerChunk = 1 << 20;
  for (let left = elems / 32; left > 0; left -= blocksPerChunk) {
    const n = Math.min(left, blocksPerChunk);
    const out = new Uint8Array(n * blockBytes);
    const words = new Uint32Array((n * codeBytes) / 4);
    let s = state.s;
    for (let i = 0; i < words.length; i++) {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
      words[i] = s >>> 0;
    }
    state.s = s;
    const bytes = new Uint8Array(words.buffer);
    for (let b = 0; b < n; b++) {
      out[blockBytes * b] = scale & 0xff;
      out[blockBytes * b + 1] = scale >> 8;
      out.set(bytes.subarray(codeBytes * b, codeBytes * (b + 1)), blockBytes * b + 2);
    }
    yield out;
  }
}

/**
 * A random-weight GGUF (every matrix in `type`, norms F32), written once to
 * `file` and reused: the same shape and type always give the same bytes.
 */
export function ensureRandomGguf(file: string, s: GgufShape, type: "q4_0" | "q8_0", name: string, log: (m: string) => void = () => {}): string {
  if (fs.existsSync(file)) return file;
  log(`writing ${file} (once)`);
  const t0 = performance.now();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const state = { s: 2024 };
  const headDim = s.hidden / s.heads;
  const ggml = type === "q4_0" ? GgmlType.Q4_0 : GgmlType.Q8_0;
  const mat = (tensor: string, shape: [number, number]): GgufTensorSpec => ({ name: tensor, shape, type: ggml, data: () => randomBlocks(type, shape[0] * shape[1], state) });
  const norm = (tensor: string): GgufTensorSpec => ({ name: tensor, shape: [s.hidden], type: GgmlType.F32, data: () => new Tensor(new Float32Array(s.hidden).fill(1), [s.hidden], "f32") });
  const tensors: GgufTensorSpec[] = [mat("token_embd.weight", [s.vocab, s.hidden])];
  for (let l = 0; l < s.layers; l++) {
    const b = `blk.${l}.`;
    tensors.push(norm(`${b}attn_norm.weight`),
      mat(`${b}attn_q.weight`, [s.heads * headDim, s.hidden]), mat(`${b}attn_k.weight`, [s.kvHeads * headDim, s.hidden]),
      mat(`${b}attn_v.weight`, [s.kvHeads * headDim, s.hidden]), mat(`${b}attn_output.weight`, [s.hidden, s.heads * headDim]),
      norm(`${b}ffn_norm.weight`),
      mat(`${b}ffn_gate.weight`, [s.ffn, s.hidden]), mat(`${b}ffn_up.weight`, [s.ffn, s.hidden]), mat(`${b}ffn_down.weight`, [s.hidden, s.ffn]));
  }
  tensors.push(norm("output_norm.weight"), mat("output.weight", [s.vocab, s.hidden]));
  const meta: [string, ReturnType<typeof gguf.u32>][] = [
    ["general.architecture", gguf.str("llama")], ["general.name", gguf.str(name)], ["general.file_type", gguf.u32(type === "q4_0" ? 2 : 7)],
    ["llama.context_length", gguf.u32(s.context)], ["llama.embedding_length", gguf.u32(s.hidden)], ["llama.block_count", gguf.u32(s.layers)],
    ["llama.feed_forward_length", gguf.u32(s.ffn)], ["llama.attention.head_count", gguf.u32(s.heads)],
    ["llama.attention.head_count_kv", gguf.u32(s.kvHeads)], ["llama.rope.freq_base", gguf.f32(s.ropeTheta)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(1e-5)], ["llama.vocab_size", gguf.u32(s.vocab)],
    ...tokenizerMetadata(syntheticSpmVocab(s.vocab)), // a placeholder vocabulary: llama.cpp will not load a GGUF without one
  ];
  const tmp = `${file}.partial`;
  writeGguf(tmp, meta, tensors, { onTensor: (t) => { if (t.endsWith("ffn_down.weight")) log(`wrote ${t}`); } });
  fs.renameSync(tmp, file);
  log(`written in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return file;
}
