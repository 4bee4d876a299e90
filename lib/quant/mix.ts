/**
 * Which ggml type each tensor of a LLaMA GGUF gets, following llama.cpp's
 * `llama-quant.cpp` (the release node-llama-cpp bundles) for dense LLaMA
 * models:
 *
 * Which tensors are quantized: 2-D (or more) tensors whose name ends in
 * "weight", except norms ("_norm.weight") and MoE gates ("ffn_gate_inp").
 * Everything else (norms, rope_freqs) is copied as it is.
 *
 * Uniform types (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k) are
 * `llama-quantize --pure`: every quantized tensor gets that type.
 *
 * q4_k_m / q5_k_m are llama.cpp's Q4_K_M / Q5_K_M mixes (base Q4_K / Q5_K):
 *   - output.weight, and token_embd.weight when there is no output.weight
 *     (tied embeddings): Q6_K, or Q8_0 when its row length is not a multiple
 *     of 256;
 *   - attn_v.weight and ffn_down.weight: Q6_K in "more bits" layers, i.e.
 *     layer i of n with i < n/8, i ≥ 7n/8, or (i − n/8) % 3 == 2 (integer
 *     division); otherwise the base type (for attn_v with Q4_K_M on an
 *     80-layer GQA model, llama.cpp's "70B" rule, Q5_K);
 *   - every other quantized tensor (untied token_embd, attn_q/k/output,
 *     ffn_gate/up): the base type.
 *
 * Fallback (both kinds), when a tensor's row length ne[0] is not a multiple
 * of the chosen type's block: Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; and if
 * that (or a 32-block type) still does not divide the row, F16.
 */
import { GgmlType } from "../io/gguf-types.js";
import { type QuantOutputType, type QuantizedType, blockSize } from "./quantize.js";

/** The `--type` values. */
export const QUANT_PRESETS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m"] as const;
export type QuantPreset = (typeof QUANT_PRESETS)[number];

interface PresetInfo {
  readonly base: QuantizedType;
  /** llama_ftype, written as general.file_type. */
  readonly fileType: number;
  /** false: llama.cpp's per-tensor mix; true: every tensor in the base type (--pure). */
  readonly pure: boolean;
}

export const PRESETS: Record<QuantPreset, PresetInfo> = {
  q8_0: { base: GgmlType.Q8_0, fileType: 7, pure: true },
  q4_0: { base: GgmlType.Q4_0, fileType: 2, pure: true },
  q4_1: { base: GgmlType.Q4_1, fileType: 3, pure: true },
  q5_0: { base: GgmlType.Q5_0, fileType: 8, pure: true },
  q5_1: { base: GgmlType.Q5_1, fileType: 9, pure: true },
  q4_k: { base: GgmlType.Q4_K, fileType: 14, pure: true }, // LLAMA_FTYPE_MOSTLY_Q4_K_S
  q5_k: { base: GgmlType.Q5_K, fileType: 16, pure: true }, // LLAMA_FTYPE_MOSTLY_Q5_K_S
  q6_k: { base: GgmlType.Q6_K, fileType: 18, pure: true },
  q4_k_m: { base: GgmlType.Q4_K, fileType: 15, pure: false },
  q5_k_m: { base: GgmlType.Q5_K, fileType: 17, pure: false },
};

export function isQuantPreset(s: string): s is QuantPreset {
  return (QUANT_PRESETS as readonly string[]).includes(s);
}

/** What the plan says for one tensor. */
export interface TensorPlan {
  readonly name: string;
  /** "keep": written as it is in the source. */
  readonly type: QuantOutputType | "keep";
  /** The type the rules asked for when the row length forced a fallback. */
  readonly fellBackFrom?: QuantizedType;
}

export interface ModelShape {
  /** block_count */
  readonly nLayer: number;
  readonly nHead: number;
  readonly nHeadKv: number;
}

/** llama.cpp's tensor order (its weights map): by layer number (non-layer tensors first), then by name. */
export function llamaTensorOrder(names: readonly string[]): string[] {
  const layer = (n: string) => {
    const m = /^blk\.(\d+)\./.exec(n);
    return m ? Number(m[1]) : -1;
  };
  return [...names].sort((a, b) => layer(a) - layer(b) || (a < b ? -1 : a > b ? 1 : 0));
}

export function allowsQuantization(name: string, nDims: number): boolean {
  return nDims >= 2 && name.endsWith("weight") && !name.includes("_norm.weight") && !name.includes("ffn_gate_inp.weight");
}

const useMoreBits = (i: number, n: number) => i < Math.trunc(n / 8) || i >= Math.trunc((7 * n) / 8) || (i - Math.trunc(n / 8)) % 3 === 2;

/** llama.cpp's fallback for a row length its block does not divide. */
function fallback(type: QuantizedType, ne0: number): QuantOutputType {
  if (ne0 % blockSize(type) === 0) return type;
  const next: Partial<Record<GgmlType, QuantizedType>> = { [GgmlType.Q4_K]: GgmlType.Q5_0, [GgmlType.Q5_K]: GgmlType.Q5_1, [GgmlType.Q6_K]: GgmlType.Q8_0 };
  const to = next[type] ?? type;
  return ne0 % blockSize(to) === 0 ? to : GgmlType.F16;
}

/**
 * The type of every tensor, in llama.cpp's order. `tensors` gives each
 * tensor's name and ggml dims (ne[0] = row length).
 */
export function planQuantization(tensors: readonly { name: string; ne: readonly number[] }[], preset: QuantPreset, model: ModelShape): TensorPlan[] {
  const { base, pure } = PRESETS[preset];
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const tied = !byName.has("output.weight");
  const is70B = model.nLayer === 80 && model.nHead !== model.nHeadKv;
  const nAttnV = tensors.filter((t) => t.name.includes("attn_v.weight")).length;
  let iAttnV = 0, iFfnDown = 0;
  return llamaTensorOrder([...byName.keys()]).map((name): TensorPlan => {
    const ne = byName.get(name)!.ne;
    if (!allowsQuantization(name, ne.length)) return { name, type: "keep" };
    let want: QuantizedType = base;
    if (!pure) {
      if (name === "output.weight" || (tied && name === "token_embd.weight")) {
        want = ne[0]! % blockSize(base) !== 0 ? GgmlType.Q8_0 : GgmlType.Q6_K;
      } else if (name.includes("attn_v.weight")) {
        if (useMoreBits(iAttnV, nAttnV)) want = GgmlType.Q6_K;
        else if (is70B && base === GgmlType.Q4_K) want = GgmlType.Q5_K;
        iAttnV++;
      } else if (name.includes("ffn_down")) {
        if (useMoreBits(iFfnDown, model.nLayer)) want = GgmlType.Q6_K;
        iFfnDown++;
      }
    }
    const type = fallback(want, ne[0]!);
    return type === want ? { name, type } : { name, type, fellBackFrom: want };
  });
}
