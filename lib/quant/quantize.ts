/**
 * `quantizeRows`: float32 rows → ggml blocks, byte for byte what
 * `ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, NULL)` writes
 * (no importance matrix). Also F16 (round to nearest even), as the fallback
 * type for rows no block size divides.
 */
import { LlamaError } from "../errors.js";
import { GGML_BLOCK, GgmlType, ggmlTypeName } from "../io/gguf-types.js";
import { toF16 } from "./ggml-float.js";
import { quantizeQ4_K, quantizeQ5_K, quantizeQ6_K } from "./k-quants.js";
import { quantizeQ4_0, quantizeQ4_1, quantizeQ5_0, quantizeQ5_1, quantizeQ8_0 } from "./q4-q5-q8.js";

/** The ggml types we quantize to. */
export type QuantizedType =
  | GgmlType.Q8_0 | GgmlType.Q4_0 | GgmlType.Q4_1 | GgmlType.Q5_0 | GgmlType.Q5_1
  | GgmlType.Q4_K | GgmlType.Q5_K | GgmlType.Q6_K;

/** Every type `quantizeRows` writes: the quantized ones, and F16/F32 for tensors that fall back or stay. */
export type QuantOutputType = QuantizedType | GgmlType.F16 | GgmlType.F32;

type BlockQuantizer = (x: Float32Array, out: Uint8Array, blocks: number) => void;

const QUANTIZERS: Record<QuantizedType, BlockQuantizer> = {
  [GgmlType.Q8_0]: quantizeQ8_0,
  [GgmlType.Q4_0]: quantizeQ4_0,
  [GgmlType.Q4_1]: quantizeQ4_1,
  [GgmlType.Q5_0]: quantizeQ5_0,
  [GgmlType.Q5_1]: quantizeQ5_1,
  [GgmlType.Q4_K]: quantizeQ4_K,
  [GgmlType.Q5_K]: quantizeQ5_K,
  [GgmlType.Q6_K]: quantizeQ6_K,
};

export function isQuantizedType(t: GgmlType): t is QuantizedType {
  return t in QUANTIZERS;
}

/** Elements per block of `type` (1 for F16/F32). */
export function blockSize(type: QuantOutputType): number {
  return GGML_BLOCK[type]!.elems;
}

/** Bytes of `n` elements of `type` (n a multiple of its block size). */
export function typeBytes(type: QuantOutputType, n: number): number {
  const b = GGML_BLOCK[type]!;
  return (n / b.elems) * b.bytes;
}

/**
 * Quantizes `src` (rows of `nPerRow` floats, row-major) to `type`. Throws if
 * a row is not a whole number of blocks (callers pick a fallback type first).
 */
export function quantizeRows(type: QuantOutputType, src: Float32Array, nPerRow: number): Uint8Array {
  const block = blockSize(type);
  if (nPerRow <= 0 || src.length % nPerRow !== 0) throw new LlamaError(`quantize: ${src.length} values are not whole rows of ${nPerRow}`);
  if (nPerRow % block !== 0) throw new LlamaError(`quantize: a row of ${nPerRow} is not a multiple of ${ggmlTypeName(type)}'s block of ${block}`);
  const out = new Uint8Array(typeBytes(type, src.length));
  if (type === GgmlType.F32) {
    out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
  } else if (type === GgmlType.F16) {
    for (let i = 0; i < src.length; i++) {
      const h = toF16(src[i]!);
      out[2 * i] = h & 0xff;
      out[2 * i + 1] = h >>> 8;
    }
  } else {
    QUANTIZERS[type](src, out, src.length / block);
  }
  return out;
}
