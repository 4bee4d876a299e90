/**
 * ggml tensor types → our Tensor. F32/F16/BF16 are kept as stored (no copy
 * of the data's meaning); quantized blocks are expanded to float32 following
 * ggml's reference `dequantize_row_*` formulas:
 *   Q8_0  (32 elems, 34 B): f16 d, int8 q[32]                 → d·q
 *   Q4_0  (32 elems, 18 B): f16 d, nibbles q[16]              → d·(q − 8); low nibbles are
 *                                                               elements 0..15, high nibbles 16..31
 *   Q4_1  (32 elems, 20 B): f16 d, f16 m, nibbles             → d·q + m
 *   Q5_0/Q5_1: like Q4_0/Q4_1 with a 5th bit from a u32 qh
 *   Q4_K (256 elems, 144 B): f16 d, f16 dmin, 12 B of 6-bit scales/mins for 8 sub-blocks, 128 B nibbles
 *   Q6_K (256 elems, 210 B): ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16], f16 d
 */
import { FormatError } from "../errors.js";
import { f16ToF32Table } from "../tensor/dtype.js";
import { Tensor, numel } from "../tensor/tensor.js";
import { GGML_BLOCK, GgmlType, ggmlTypeName } from "./gguf-types.js";

/** Dequantizes `raw` (exactly the tensor's bytes) of ggml type `type` into a tensor of `shape`. */
export function dequantize(raw: Uint8Array, type: GgmlType, shape: readonly number[], where: string): Tensor {
  const n = numel(shape);
  const block = GGML_BLOCK[type];
  if (!block) throw new FormatError(where, `ggml type ${ggmlTypeName(type)} is not supported`);
  const expected = (n / block.elems) * block.bytes;
  if (raw.length !== expected) throw new FormatError(where, `has ${raw.length} bytes, ${ggmlTypeName(type)} [${shape.join(", ")}] needs ${expected}`);
  const aligned = raw.byteOffset % 8 === 0 ? raw : raw.slice();
  const buf = aligned.buffer;
  const off = aligned.byteOffset;
  switch (type) {
    case GgmlType.F32: return new Tensor(new Float32Array(buf, off, n), shape, "f32");
    case GgmlType.F16: return new Tensor(new Uint16Array(buf, off, n), shape, "f16");
    case GgmlType.BF16: return new Tensor(new Uint16Array(buf, off, n), shape, "bf16");
    case GgmlType.F64: return new Tensor(Float32Array.from(new Float64Array(buf, off, n)), shape, "f32");
    case GgmlType.I8: return new Tensor(Float32Array.from(new Int8Array(buf, off, n)), shape, "f32");
    case GgmlType.I16: return new Tensor(Float32Array.from(new Int16Array(buf, off, n)), shape, "f32");
    case GgmlType.I32: return new Tensor(Float32Array.from(new Int32Array(buf, off, n)), shape, "f32");
    case GgmlType.I64: return new Tensor(Float32Array.from(new BigInt64Array(buf, off, n), (v) => Number(v)), shape, "f32");
    default: {
      const out = new Float32Array(n);
      const fn = DEQUANT[type];
      if (!fn) throw new FormatError(where, `dequantizing ${ggmlTypeName(type)} is not implemented (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)`);
      fn(aligned, out, n / block.elems);
      return new Tensor(out, shape, "f32");
    }
  }
}

type BlockDequant = (src: Uint8Array, dst: Float32Array, blocks: number) => void;

/**
 * Dequantizes `blocks` whole blocks of a quantized ggml type from `src` (starting
 * at its first byte) into `dst` (from index 0): the per-weight reference the
 * CPU kernels match bit for bit.
 */
export function dequantizeBlocks(type: GgmlType, src: Uint8Array, dst: Float32Array, blocks: number): void {
  const fn = DEQUANT[type];
  if (!fn) throw new FormatError("dequantize", `ggml type ${ggmlTypeName(type)} is not a supported quantized type`);
  fn(src, dst, blocks);
}

const h = (src: Uint8Array, at: number, t: Float32Array) => t[src[at]! | (src[at + 1]! << 8)]!;

function q8_0(src: Uint8Array, dst: Float32Array, blocks: number): void {
  const t = f16ToF32Table();
  for (let b = 0; b < blocks; b++) {
    const p = b * 34;
    const d = h(src, p, t);
    for (let j = 0; j < 32; j++) dst[b * 32 + j] = d * ((src[p + 2 + j]! << 24) >> 24);
  }
}

function q4_0(src: Uint8Array, dst: Float32Array, blocks: number): void {
  const t = f16ToF32Table();
  for (let b = 0; b < blocks; b++) {
    const p = b * 18;
    const d = h(src, p, t);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 2 + j]!;
      dst[b * 32 + j] = d * ((q & 0x0f) - 8);
      dst[b * 32 + j + 16] = d * ((q >> 4) - 8);
    }
  }
}

function q4_1(src: Uint8Array, dst: Float32Array, blocks: number): void {
  const t = f16ToF32Table();
  for (let b = 0; b < blocks; b++) {
    const p = b * 20;
    const d = h(src, p, t);
    const m = h(src, p + 2, t);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 4 + j]!;
      dst[b * 32 + j] = d * (q & 0x0f) + m;
      dst[b * 32 + j + 16] = d * (q >> 4) + m;
    }
  }
}

function q5(src: Uint8Array, dst: Float32Array, blocks: number, withMin: boolean): void {
  const t = f16ToF32Table();
  const size = withMin ? 24 : 22;
  for (let b = 0; b < blocks; b++) {
    const p = b * size;
    const d = h(src, p, t);
    const m = withMin ? h(src, p + 2, t) : 0;
    const qhAt = p + (withMin ? 4 : 2);
    const qh = (src[qhAt]! | (src[qhAt + 1]! << 8) | (src[qhAt + 2]! << 16) | (src[qhAt + 3]! << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = src[qhAt + 4 + j]!;
      const x0 = (q & 0x0f) | (((qh >>> j) & 1) << 4);
      const x1 = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      dst[b * 32 + j] = withMin ? d * x0 + m : d * (x0 - 16);
      dst[b * 32 + j + 16] = withMin ? d * x1 + m : d * (x1 - 16);
    }
  }
}

/** The 6-bit scale and min of sub-block j (0..7) packed in 12 bytes at `s` (ggml's get_scale_min_k4). */
function scaleMinK4(src: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [src[s + j]! & 63, src[s + j + 4]! & 63];
  return [
    (src[s + j + 4]! & 0x0f) | ((src[s + j - 4]! >> 6) << 4),
    (src[s + j + 4]! >> 4) | ((src[s + j]! >> 6) << 4),
  ];
}

function q4_k(src: Uint8Array, dst: Float32Array, blocks: number): void {
  const t = f16ToF32Table();
  for (let b = 0; b < blocks; b++) {
    const p = b * 144;
    const d = h(src, p, t);
    const dmin = h(src, p + 2, t);
    const scales = p + 4;
    let q = p + 16;
    let y = b * 256;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
      const [sc1, m1] = scaleMinK4(src, scales, is);
      const [sc2, m2] = scaleMinK4(src, scales, is + 1);
      const d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
      for (let l = 0; l < 32; l++) dst[y + l] = d1 * (src[q + l]! & 0x0f) - mm1;
      for (let l = 0; l < 32; l++) dst[y + 32 + l] = d2 * (src[q + l]! >> 4) - mm2;
      q += 32;
      y += 64;
    }
  }
}

function q5_k(src: Uint8Array, dst: Float32Array, blocks: number): void {
  const t = f16ToF32Table();
  for (let b = 0; b < blocks; b++) {
    const p = b * 176;
    const d = h(src, p, t);
    const dmin = h(src, p + 2, t);
    const scales = p + 4;
    const qh = p + 16;
    let ql = p + 48;
    let y = b * 256;
    let u1 = 1, u2 = 2;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
      const [sc1, m1] = scaleMinK4(src, scales, is);
      const [sc2, m2] = scaleMinK4(src, scales, is + 1);
      const d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
      for (let l = 0; l < 32; l++) dst[y + l] = d1 * ((src[ql + l]! & 0x0f) + (src[qh + l]! & u1 ? 16 : 0)) - mm1;
      for (let l = 0; l < 32; l++) dst[y + 32 + l] = d2 * ((src[ql + l]! >> 4) + (src[qh + l]! & u2 ? 16 : 0)) - mm2;
      ql += 32;
      y += 64;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

function q6_k(src: Uint8Array, dst: Float32Array, blocks: number): void {
  const t = f16ToF32Table();
  for (let b = 0; b < blocks; b++) {
    const p = b * 210;
    const d = h(src, p + 208, t);
    let ql = p;
    let qh = p + 128;
    let sc = p + 192;
    let y = b * 256;
    for (let n = 0; n < 256; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = src[qh + l]!;
        const q1 = ((src[ql + l]! & 0x0f) | ((hb & 3) << 4)) - 32;
        const q2 = ((src[ql + l + 32]! & 0x0f) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((src[ql + l]! >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((src[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        const s = (i: number) => (src[sc + i]! << 24) >> 24; // int8 scales
        dst[y + l] = d * s(is) * q1;
        dst[y + l + 32] = d * s(is + 2) * q2;
        dst[y + l + 64] = d * s(is + 4) * q3;
        dst[y + l + 96] = d * s(is + 6) * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

const DEQUANT: Partial<Record<GgmlType, BlockDequant>> = {
  [GgmlType.Q8_0]: q8_0,
  [GgmlType.Q4_0]: q4_0,
  [GgmlType.Q4_1]: q4_1,
  [GgmlType.Q5_0]: (s, d, n) => q5(s, d, n, false),
  [GgmlType.Q5_1]: (s, d, n) => q5(s, d, n, true),
  [GgmlType.Q4_K]: q4_k,
  [GgmlType.Q5_K]: q5_k,
  [GgmlType.Q6_K]: q6_k,
};
