/**
 * Quantize at load: `fromPretrained(dir, { quantize: "q4_k_m" })` keeps the
 * f32/f16/bf16 matrices of a checkpoint as ggml blocks, tensor by tensor as
 * they stream in, as bitsandbytes' 8-bit/4-bit loading does in transformers.
 *
 * The result is the model `llama-ts quantize` then loading its GGUF gives,
 * bit for bit: the per-tensor types and fallbacks come from the same
 * `planQuantization` (mix.ts) over the same llama.cpp tensor names and dims,
 * and the blocks from the same `quantizeRows`. Quantizing one row never looks
 * at another, so quantizing HF's rows here equals quantizing the GGUF's
 * rotary-permuted q/k rows and permuting the blocks back on load.
 *
 * Memory: a tensor is read in its stored dtype, then widened to float32 one
 * slab of rows at a time; no tensor is ever whole in float32. Speed: a slab
 * is quantized on every core (quantize-sync-pool.ts) from the built package.
 */
import { ConfigError, FormatError } from "../errors.js";
import type { LlamaConfig } from "../config.js";
import { hfToGgufName } from "../io/gguf-llama.js";
import { GgmlType, ggmlTypeName } from "../io/gguf-types.js";
import { bf16ToF32, f16ToF32 } from "../tensor/dtype.js";
import { QuantizedTensor, quantTypeOfGgml } from "../tensor/quantized.js";
import { Tensor } from "../tensor/tensor.js";
import { QUANT_PRESETS, type QuantPreset, type TensorPlan, isQuantPreset, planQuantization } from "./mix.js";
import { type QuantOutputType, quantizeRows, typeBytes } from "./quantize.js";
import { type SyncQuantizePool, syncQuantizePool } from "./quantize-sync-pool.js";

/** A `quantize` option checked: lower-cased, or a one-line error listing the valid types. */
export function quantizePreset(value: string): QuantPreset {
  const preset = value.toLowerCase();
  if (!isQuantPreset(preset)) throw new ConfigError(`quantize "${value}": expected one of ${QUANT_PRESETS.join(", ")}`);
  return preset;
}

/** What the loader needs to know of a checkpoint tensor (a CheckpointReader's or GgufHfWeights' info). */
interface SourceInfo {
  readonly shape: readonly number[];
  /** Set by GgufHfWeights: the tensor's ggml type name in the file ("Q4_0", "F16", …). */
  readonly ggmlType?: string;
}

/** The per-tensor decisions for one checkpoint, keyed by its (HF) tensor names. */
export interface LoadQuantization {
  readonly preset: QuantPreset;
  /** The plan of a tensor; undefined for a tensor llama.cpp has no name for (a classification head): loaded as stored. */
  plan(name: string): TensorPlan | undefined;
}

/**
 * Plans the checkpoint's tensors exactly as `quantizeModel` plans its GGUF:
 * llama.cpp names, ggml dims (ne[0] = row length), the model's layer and head
 * counts. Throws if a tensor to quantize is not float (requantizing a
 * quantized GGUF is not supported, as in `llama-ts quantize`).
 */
export function planLoadQuantization(
  names: readonly string[], info: (name: string) => SourceInfo, config: LlamaConfig, preset: QuantPreset, source: string,
): LoadQuantization {
  const ggufName = new Map<string, string>();
  for (const hf of names) {
    const g = hfToGgufName(hf);
    if (g !== undefined) ggufName.set(hf, g);
  }
  const plans = planQuantization(
    [...ggufName].map(([hf, name]) => ({ name, ne: [...info(hf).shape].reverse() })),
    preset,
    { nLayer: config.num_hidden_layers, nHead: config.num_attention_heads, nHeadKv: config.num_key_value_heads },
  );
  const byGguf = new Map(plans.map((p) => [p.name, p]));
  for (const [hf, name] of ggufName) {
    const stored = info(hf).ggmlType;
    if (byGguf.get(name)!.type !== "keep" && stored !== undefined && !["F32", "F16", "BF16"].includes(stored)) {
      throw new FormatError(source, `tensor "${name}" is ${stored}: quantize at load needs an F32, F16 or BF16 model (requantizing is not supported)`);
    }
  }
  return {
    preset,
    plan: (hf) => {
      const name = ggufName.get(hf);
      return name === undefined ? undefined : byGguf.get(name);
    },
  };
}

/** Float32 values per slab of rows while quantizing (16 MiB), as quantizeModel's default. */
export const SLAB_ELEMENTS = 1 << 22;

/**
 * A float tensor [rows, cols] in the plan's type: a QuantizedTensor for a
 * ggml block type, an f16 Tensor for the F16 fallback. "keep" is what the
 * GGUF that `llama-ts quantize` writes holds: 1-D tensors (norms) in F32, as
 * convert_hf_to_gguf.py stores them, anything else as it is. `name` names the
 * tensor in errors; `slabElements` bounds the float32 widened at once (whole
 * rows, at least one); `pool` quantizes a slab on several threads (by default
 * the process's, where there is one: the built package; the bytes are the same).
 */
export function quantizeForLoad(
  t: Tensor, type: QuantOutputType | "keep", name: string, slabElements = SLAB_ELEMENTS, pool: SyncQuantizePool | undefined = syncQuantizePool(),
): Tensor | QuantizedTensor {
  if (type === "keep") return t.shape.length === 1 ? t.float() : t;
  if ((type === GgmlType.F16 && t.dtype === "f16") || (type === GgmlType.F32 && t.dtype === "f32")) return t;
  const rowLen = t.shape[t.shape.length - 1]!;
  const out = new Uint8Array(typeBytes(type, t.size));
  const step = Math.max(1, Math.floor(slabElements / rowLen)) * rowLen;
  for (let at = 0, byte = 0; at < t.size; at += step) {
    const slab = slabAsF32(t, at, Math.min(t.size, at + step));
    const bytes = pool ? pool.quantize(type, slab, rowLen) : quantizeRows(type, slab, rowLen);
    out.set(bytes, byte);
    byte += bytes.length;
  }
  if (type === GgmlType.F16) return new Tensor(new Uint16Array(out.buffer), t.shape, "f16");
  if (type === GgmlType.F32) return new Tensor(new Float32Array(out.buffer), t.shape, "f32");
  const q = quantTypeOfGgml(type);
  if (!q) throw new ConfigError(`quantize: no kernel type for ${ggmlTypeName(type)}`);
  return new QuantizedTensor(q, out, t.shape, `tensor "${name}" (${ggmlTypeName(type)})`);
}

/** Elements [from, to) of a float tensor as float32 (a view for f32, a widened copy for f16/bf16). */
function slabAsF32(t: Tensor, from: number, to: number): Float32Array {
  const src = t.data.subarray(from, to);
  if (t.dtype === "f32") return src as Float32Array;
  return t.dtype === "f16" ? f16ToF32(src as Uint16Array) : bf16ToF32(src as Uint16Array);
}
