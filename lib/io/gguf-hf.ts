/**
 * A llama.cpp GGUF file seen as an HF checkpoint: `readGgufAsHf(path)` gives
 * the HF config.json dict (from `llama.*` metadata), the weights under HF
 * names (read lazily, dequantized, q/k rows permuted back to HF's rotary
 * layout) and the tokenizer data. Its `weights` object answers the same
 * questions as a safetensors CheckpointReader (names/has/info/read/bytes), so
 * a model loader can take either.
 */
import { ConfigError, FormatError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { QuantizedTensor, quantTypeOfGgml } from "../tensor/quantized.js";
import { interleavedToHalfSplit } from "../convert/rotary-permute.js";
import { GgufFile, type GgufTensorInfo } from "./gguf.js";
import { fitRopeFreqs, ggufToHfName, rotaryHeadsFor } from "./gguf-llama.js";
import { type GgufTokenizerData, readGgufTokenizer } from "./gguf-tokenizer.js";
import { GgmlType, ggmlTypeName } from "./gguf-types.js";
import type { TensorInfo } from "./safetensors.js";
import type { ByteAlloc } from "./byte-alloc.js";

export interface GgufAsHf {
  /** The HF config.json dict. */
  config: Record<string, unknown>;
  /** Lazily read weights under HF names. Close when done. */
  weights: GgufHfWeights;
  tokenizer: GgufTokenizerData | null;
  /** The underlying file (metadata, raw tensor infos). */
  gguf: GgufFile;
}

export function readGgufAsHf(file: string): GgufAsHf {
  const g = GgufFile.open(file);
  try {
    const config = ggufToHfConfig(g);
    const tokenizer = readGgufTokenizer(g);
    return { config, weights: new GgufHfWeights(g, config), tokenizer, gguf: g };
  } catch (err) {
    g.close();
    throw err;
  }
}

/** The HF config dict described by a GGUF file's `llama.*` metadata and tensors. */
export function ggufToHfConfig(g: GgufFile): Record<string, unknown> {
  const arch = g.string("general.architecture");
  if (arch !== "llama") throw new ConfigError(`${g.path}: general.architecture is "${arch}"; only "llama" models are supported`);
  const k = (s: string) => `llama.${s}`;
  const hidden = g.number(k("embedding_length"));
  const heads = g.number(k("attention.head_count"));
  const kvHeads = g.number(k("attention.head_count_kv"), heads);
  const headDim = g.number(k("attention.key_length"), hidden / heads);
  const valueDim = g.number(k("attention.value_length"), headDim);
  if (valueDim !== headDim) throw new ConfigError(`${g.path}: llama.attention.value_length ${valueDim} differs from key_length ${headDim} (not a LLaMA layout)`);
  const ropeDims = g.number(k("rope.dimension_count"), headDim);
  if (ropeDims !== headDim) throw new ConfigError(`${g.path}: llama.rope.dimension_count ${ropeDims} != head size ${headDim} (partial rotary is not LLaMA)`);
  if (!Number.isInteger(headDim) || headDim % 2) throw new ConfigError(`${g.path}: head size ${headDim} must be an even integer`);
  const embd = g.tensors.get("token_embd.weight");
  if (!embd) throw new FormatError(g.path, `missing tensor "token_embd.weight"`);
  const vocab = g.number(k("vocab_size"), embd.shape[0]!);
  const theta = g.number(k("rope.freq_base"), 10000);
  const tok = (key: string, fallback: number | null) => (g.has(`tokenizer.ggml.${key}`) ? g.number(`tokenizer.ggml.${key}`) : fallback);
  const typeCounts = new Map<number, number>();
  for (const t of g.tensors.values()) typeCounts.set(t.type, (typeCounts.get(t.type) ?? 0) + 1);
  // Quantized tensors load as float32; otherwise the dominant 16-bit type names the checkpoint dtype.
  const quantized = [...typeCounts.keys()].some((t) => t !== GgmlType.F32 && t !== GgmlType.F16 && t !== GgmlType.BF16);
  const dtype = quantized ? "float32"
    : (typeCounts.get(GgmlType.BF16) ?? 0) > (typeCounts.get(GgmlType.F16) ?? 0) ? "bfloat16"
    : typeCounts.has(GgmlType.F16) ? "float16" : "float32";
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    attention_bias: g.tensors.has("blk.0.attn_q.bias"),
    attention_dropout: 0.0,
    bos_token_id: tok("bos_token_id", 1),
    eos_token_id: tok("eos_token_id", 2),
    pad_token_id: tok("padding_token_id", null),
    head_dim: headDim,
    hidden_act: "silu",
    hidden_size: hidden,
    intermediate_size: g.number(k("feed_forward_length")),
    max_position_embeddings: g.number(k("context_length"), 2048),
    mlp_bias: g.tensors.has("blk.0.ffn_up.bias"),
    num_attention_heads: heads,
    num_hidden_layers: g.number(k("block_count")),
    num_key_value_heads: kvHeads,
    rms_norm_eps: g.number(k("attention.layer_norm_rms_epsilon"), 1e-5),
    rope_theta: theta,
    rope_scaling: ropeScaling(g, theta, headDim),
    tie_word_embeddings: !g.tensors.has("output.weight"),
    torch_dtype: dtype,
    vocab_size: vocab,
  };
}

function ropeScaling(g: GgufFile, theta: number, headDim: number): Record<string, unknown> | null {
  const type = g.string("llama.rope.scaling.type", g.has("llama.rope.scale_linear") ? "linear" : "none");
  const orig = g.has("llama.rope.scaling.original_context_length") ? g.number("llama.rope.scaling.original_context_length") : undefined;
  if (g.tensors.has("rope_freqs.weight")) {
    if (type !== "none") throw new ConfigError(`${g.path}: both a rope_freqs tensor and llama.rope.scaling.type "${type}"`);
    const factors = g.read("rope_freqs.weight").toFloat32();
    return fitRopeFreqs(factors, theta, headDim, orig ?? 8192, `${g.path}: rope_freqs.weight`);
  }
  switch (type) {
    case "none": return null;
    case "linear": {
      const factor = g.has("llama.rope.scaling.factor") ? g.number("llama.rope.scaling.factor") : g.number("llama.rope.scale_linear");
      return factor === 1 ? null : { rope_type: "linear", factor };
    }
    case "yarn": {
      const s: Record<string, unknown> = { rope_type: "yarn", factor: g.number("llama.rope.scaling.factor") };
      if (orig !== undefined) s.original_max_position_embeddings = orig;
      if (g.has("llama.rope.scaling.yarn_beta_fast")) s.beta_fast = g.number("llama.rope.scaling.yarn_beta_fast");
      if (g.has("llama.rope.scaling.yarn_beta_slow")) s.beta_slow = g.number("llama.rope.scaling.yarn_beta_slow");
      return s;
    }
    default:
      throw new ConfigError(`${g.path}: llama.rope.scaling.type "${type}" is not supported (expected none, linear, yarn)`);
  }
}

const DTYPE_NAME = { f32: "F32", f16: "F16", bf16: "BF16" } as const;

/** The weights of a GGUF under HF names, read one at a time. */
export class GgufHfWeights {
  private readonly byHf = new Map<string, GgufTensorInfo>();
  private readonly heads: number;
  private readonly kvHeads: number;

  constructor(readonly gguf: GgufFile, config: Record<string, unknown>) {
    this.heads = config.num_attention_heads as number;
    this.kvHeads = config.num_key_value_heads as number;
    for (const t of gguf.tensors.values()) {
      const hf = ggufToHfName(t.name);
      if (hf) this.byHf.set(hf, t);
      else if (t.name !== "rope_freqs.weight") throw new FormatError(gguf.path, `tensor "${t.name}" is not part of a LLaMA model`);
    }
  }

  get dir(): string {
    return this.gguf.path;
  }

  names(): string[] {
    return [...this.byHf.keys()];
  }

  has(name: string): boolean {
    return this.byHf.has(name);
  }

  /** Safetensors-style info: dtype as loaded (quantized types load as F32), byte range in the GGUF file. */
  info(name: string): TensorInfo & { file: string; ggmlType: string } {
    const t = this.raw(name);
    const dtype = t.type === GgmlType.F16 ? "F16" : t.type === GgmlType.BF16 ? "BF16" : "F32";
    return { name, dtype, shape: t.shape, begin: t.offset, end: t.offset + t.byteSize, file: this.gguf.path, ggmlType: ggmlTypeName(t.type) };
  }

  private raw(name: string): GgufTensorInfo {
    const t = this.byHf.get(name);
    if (!t) throw new FormatError(this.gguf.path, `no tensor for "${name}" (GGUF name ${hfNameHint(name)})`);
    return t;
  }

  /** `alloc` places the data of an F32/F16/BF16 tensor (after the q/k row permutation, if any). */
  read(name: string, alloc?: ByteAlloc): Tensor {
    const t = this.raw(name);
    const heads = rotaryHeadsFor(name, this.heads, this.kvHeads);
    let tensor = this.gguf.read(t.name, heads === undefined ? alloc : undefined);
    if (heads !== undefined) {
      const rows = tensor.shape[0]!;
      const data = tensor.data;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const rowBytes = bytes.length / rows;
      const p = interleavedToHalfSplit(bytes, rows, rowBytes, heads, alloc?.(bytes.length));
      const n = data.length;
      const out = tensor.dtype === "f32" ? new Float32Array(p.buffer, p.byteOffset, n) : new Uint16Array(p.buffer, p.byteOffset, n);
      tensor = new Tensor(out, tensor.shape, tensor.dtype);
    }
    if (DTYPE_NAME[tensor.dtype] !== this.info(name).dtype) throw new FormatError(this.gguf.path, `internal: dtype of "${name}"`);
    return tensor;
  }

  /**
   * The tensor as stored: a matrix in Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or
   * Q6_K stays in its blocks (one positioned read, no float32 at any point; q/k
   * rows permuted as whole rows of blocks); anything else is `read(name)`.
   */
  readStored(name: string, alloc?: ByteAlloc): Tensor | QuantizedTensor {
    const t = this.raw(name);
    const type = quantTypeOfGgml(t.type);
    if (!type || t.shape.length !== 2) return this.read(name, alloc);
    const heads = rotaryHeadsFor(name, this.heads, this.kvHeads);
    let bytes = this.gguf.readRaw(t.name, heads === undefined ? alloc : undefined);
    if (heads !== undefined) bytes = interleavedToHalfSplit(bytes, t.shape[0]!, bytes.length / t.shape[0]!, heads, alloc?.(bytes.length));
    return new QuantizedTensor(type, bytes, t.shape, `${this.gguf.path}: tensor "${t.name}"`);
  }

  bytes(names: readonly string[]): number {
    let n = 0;
    for (const name of names) if (this.byHf.has(name)) n += this.byHf.get(name)!.byteSize;
    return n;
  }

  close(): void {
    this.gguf.close();
  }
}

function hfNameHint(name: string): string {
  return name.replace(/^model\.layers\.(\d+)\./, "blk.$1.");
}
