/**
 * The 32-element block formats, as ggml's `quantize_row_*_ref` writes them
 * (what `ggml_quantize_chunk` runs for these types without an importance
 * matrix). Block layouts (little-endian):
 *   Q8_0 34 B: f16 d, int8 q[32]                       x ≈ d·q
 *   Q4_0 18 B: f16 d, u8 qs[16]                        x ≈ d·(q − 8)
 *   Q4_1 20 B: f16 d, f16 m, u8 qs[16]                 x ≈ d·q + m
 *   Q5_0 22 B: f16 d, u32 qh, u8 qs[16]                x ≈ d·(q − 16)
 *   Q5_1 24 B: f16 d, f16 m, u32 qh, u8 qs[16]         x ≈ d·q + m
 * In qs, element j is the low nibble of byte j and element j+16 the high
 * nibble; the 5th bit of element j is bit j of qh.
 * Each function quantizes `blocks` consecutive blocks of `x` into `out`.
 */
import { FLT_MAX, fr, putF16, roundf, toF16, truncI8, truncU8 } from "./ggml-float.js";

export function quantizeQ8_0(x: Float32Array, out: Uint8Array, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const xb = b * 32, p = b * 34;
    let amax = 0;
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(x[xb + j]!);
      amax = amax > a ? amax : a; // MAX(amax, fabsf(v))
    }
    const d = fr(amax / 127);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as non-zero
    putF16(out, p, toF16(d));
    for (let j = 0; j < 32; j++) out[p + 2 + j] = truncI8(roundf(fr(x[xb + j]! * id))) & 0xff;
  }
}

/** The signed value of largest magnitude (the first one, on ties), as ggml's Q4_0/Q5_0 pick it. */
function signedAbsMax(x: Float32Array, xb: number): number {
  let amax = 0, max = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[xb + j]!;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

function minMax(x: Float32Array, xb: number): [number, number] {
  let min = FLT_MAX, max = -FLT_MAX;
  for (let j = 0; j < 32; j++) {
    const v = x[xb + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

export function quantizeQ4_0(x: Float32Array, out: Uint8Array, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const xb = b * 32, p = b * 18;
    // The extreme value maps to −8 exactly, so the other side gets 7 levels.
    const d = fr(signedAbsMax(x, xb) / -8);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as non-zero
    putF16(out, p, toF16(d));
    for (let j = 0; j < 16; j++) {
      const xi0 = Math.min(15, truncI8(fr(fr(x[xb + j]! * id) + 8.5)));
      const xi1 = Math.min(15, truncI8(fr(fr(x[xb + 16 + j]! * id) + 8.5)));
      out[p + 2 + j] = (xi0 | (xi1 << 4)) & 0xff;
    }
  }
}

export function quantizeQ4_1(x: Float32Array, out: Uint8Array, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const xb = b * 32, p = b * 20;
    const [min, max] = minMax(x, xb);
    const d = fr(fr(max - min) / 15);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as non-zero
    putF16(out, p, toF16(d));
    putF16(out, p + 2, toF16(min));
    for (let j = 0; j < 16; j++) {
      const xi0 = Math.min(15, truncI8(fr(fr(fr(x[xb + j]! - min) * id) + 0.5)));
      const xi1 = Math.min(15, truncI8(fr(fr(fr(x[xb + 16 + j]! - min) * id) + 0.5)));
      out[p + 4 + j] = (xi0 | (xi1 << 4)) & 0xff;
    }
  }
}

/** Writes the low nibbles of q[0..31] into qs and their 5th bits into the u32 qh (both at their offsets). */
function packQ5(q: Int32Array, out: Uint8Array, qhAt: number, qsAt: number): void {
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const xi0 = q[j]! & 0xff, xi1 = q[j + 16]! & 0xff;
    out[qsAt + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
    qh |= ((xi0 & 0x10) >> 4) << j;
    qh |= ((xi1 & 0x10) >> 4) << (j + 16);
  }
  out[qhAt] = qh & 0xff;
  out[qhAt + 1] = (qh >>> 8) & 0xff;
  out[qhAt + 2] = (qh >>> 16) & 0xff;
  out[qhAt + 3] = (qh >>> 24) & 0xff;
}

const q5 = new Int32Array(32);

export function quantizeQ5_0(x: Float32Array, out: Uint8Array, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const xb = b * 32, p = b * 22;
    const d = fr(signedAbsMax(x, xb) / -16);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as non-zero
    putF16(out, p, toF16(d));
    for (let j = 0; j < 32; j++) q5[j] = Math.min(31, truncI8(fr(fr(x[xb + j]! * id) + 16.5)));
    packQ5(q5, out, p + 2, p + 6);
  }
}

export function quantizeQ5_1(x: Float32Array, out: Uint8Array, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const xb = b * 32, p = b * 24;
    const [min, max] = minMax(x, xb);
    const d = fr(fr(max - min) / 31);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as non-zero
    putF16(out, p, toF16(d));
    putF16(out, p + 2, toF16(min));
    // Q5_1 has no MIN(31, …): ggml relies on (x − min)·id ≤ 31.
    for (let j = 0; j < 32; j++) q5[j] = truncU8(fr(fr(fr(x[xb + j]! - min) * id) + 0.5));
    packQ5(q5, out, p + 4, p + 8);
  }
}
