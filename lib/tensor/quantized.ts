/**
 * Quantized weights kept in ggml's block encoding: the representation every
 * backend reads (the CPU's wasm/JS kernels today, WebGPU kernels later).
 *
 * A `QuantizedTensor` is a weight matrix of logical shape [rows, cols] (row-major,
 * as torch says it: a Linear weight is [out, in]) whose bytes are exactly the
 * tensor's data section in a GGUF file: each row is `cols / elems` consecutive
 * blocks of `bytes` bytes, rows one after another, no padding, little-endian.
 * `data.length === rows * (cols / elems) * bytes` always (checked at construction,
 * naming the tensor). Nothing is ever widened to float32 as a whole: kernels
 * dequantize blocks in registers (or a few rows into a scratch buffer).
 *
 * Block layouts (ggml's block_* structs; d, m, dmin are f16; weight i of a block):
 *   q8_0 (32, 34 B): d, int8 q[32]                              w = d·q[i]
 *   q4_0 (32, 18 B): d, u8 qs[16]                               w = d·(nib − 8); elements 0..15 are the low
 *                                                                nibbles of qs[0..15], 16..31 the high ones
 *   q4_1 (32, 20 B): d, m, u8 qs[16]                            w = d·nib + m
 *   q5_0 (32, 22 B): d, u32 qh, u8 qs[16]                       w = d·((nib | bit_i(qh) << 4) − 16)
 *   q5_1 (32, 24 B): d, m, u32 qh, u8 qs[16]                    w = d·(nib | bit_i(qh) << 4) + m
 *   q4_k (256, 144 B): d, dmin, u8 scales[12], u8 qs[128]        8 sub-blocks of 32 with 6-bit scale sc and min mn
 *                                                                (get_scale_min_k4): w = (d·sc)·nib − dmin·mn; each 32
 *                                                                bytes of qs hold two sub-blocks (low, then high nibbles)
 *   q5_k (256, 176 B): d, dmin, scales[12], u8 qh[32], qs[128]   as q4_k with a 5th bit from qh
 *   q6_k (256, 210 B): u8 ql[128], u8 qh[64], int8 sc[16], d     16 sub-blocks of 16: w = (d·sc)·(q6 − 32)
 * Every product above is exact in float32 except the final add/subtract of
 * the min (and q6_k's last product), which rounds once, as ggml's f32 code
 * does: so a kernel that computes these expressions in f32 gives each weight
 * bit for bit (lib/io/gguf-dequant.ts is the reference implementation).
 */
import { LlamaError } from "../errors.js";
import { dequantizeBlocks } from "../io/gguf-dequant.js";

export type QuantType = "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q4_k" | "q5_k" | "q6_k";

export interface QuantLayout {
  /** Weights per block. */
  readonly elems: number;
  /** Bytes per block. */
  readonly bytes: number;
  /** ggml_type id (as in GGUF tensor infos). */
  readonly ggml: number;
}

export const QUANT_LAYOUT: Readonly<Record<QuantType, QuantLayout>> = {
  q4_0: { elems: 32, bytes: 18, ggml: 2 },
  q4_1: { elems: 32, bytes: 20, ggml: 3 },
  q5_0: { elems: 32, bytes: 22, ggml: 6 },
  q5_1: { elems: 32, bytes: 24, ggml: 7 },
  q8_0: { elems: 32, bytes: 34, ggml: 8 },
  q4_k: { elems: 256, bytes: 144, ggml: 12 },
  q5_k: { elems: 256, bytes: 176, ggml: 13 },
  q6_k: { elems: 256, bytes: 210, ggml: 14 },
};

export const QUANT_TYPES = Object.keys(QUANT_LAYOUT) as QuantType[];

/** The QuantType of a ggml type id, or undefined for float and unsupported types. */
export function quantTypeOfGgml(ggml: number): QuantType | undefined {
  return QUANT_TYPES.find((t) => QUANT_LAYOUT[t].ggml === ggml);
}

export function isQuantType(s: string): s is QuantType {
  return s in QUANT_LAYOUT;
}

/** A [rows, cols] weight matrix in a ggml block encoding (see the file comment). */
export class QuantizedTensor {
  readonly shape: readonly [number, number];
  /** Bytes of one row (cols / elems blocks). */
  readonly rowBytes: number;

  /** `name` is only for the error message (a tensor name, a file). */
  constructor(readonly type: QuantType, readonly data: Uint8Array, shape: readonly number[], name = "quantized tensor") {
    const layout = QUANT_LAYOUT[type];
    if (!layout) throw new LlamaError(`${name}: unknown quantized type "${type}" (expected one of ${QUANT_TYPES.join(", ")})`);
    if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new LlamaError(`${name}: a ${type} tensor must be a matrix [rows, cols], got [${shape.join(", ")}]`);
    }
    const [rows, cols] = shape as [number, number];
    if (cols % layout.elems !== 0) {
      throw new LlamaError(`${name}: row length ${cols} is not a multiple of the ${type} block of ${layout.elems}`);
    }
    this.rowBytes = (cols / layout.elems) * layout.bytes;
    if (data.length !== rows * this.rowBytes) {
      throw new LlamaError(`${name}: ${type} [${rows}, ${cols}] needs ${rows * this.rowBytes} bytes, got ${data.length}`);
    }
    this.shape = Object.freeze([rows, cols]) as readonly [number, number];
  }

  get rows(): number {
    return this.shape[0];
  }

  get cols(): number {
    return this.shape[1];
  }

  /** Logical element count (rows · cols). */
  get size(): number {
    return this.shape[0] * this.shape[1];
  }
}

/**
 * Dequantizes rows [r0, r1) of a quantized [*, K] matrix (its block bytes `w`)
 * into `dst` (row-major, from index 0), each weight exactly as ggml defines it.
 */
export function dequantizeRows(type: QuantType, w: Uint8Array, K: number, r0: number, r1: number, dst: Float32Array): Float32Array {
  const { elems, bytes, ggml } = QUANT_LAYOUT[type];
  const rowBytes = (K / elems) * bytes;
  dequantizeBlocks(ggml, w.subarray(r0 * rowBytes, r1 * rowBytes), dst, ((r1 - r0) * K) / elems);
  return dst;
}
