/**
 * Storage dtypes and their conversion to float32. Compute is float32; f16 and
 * bf16 are storage formats (weights stay packed as 16-bit words and are widened
 * in blocks inside kernels, so a model is never copied to f32 as a whole).
 */
export type DType = "f32" | "f16" | "bf16";

export type StorageArray = Float32Array | Uint16Array;

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, f16: 2, bf16: 2 };

// Lookup table for the f16 → f32 widening: 65536 entries (256 KiB), built once.
// A table is faster in V8 than bit manipulation per element.
let f16Table: Float32Array | undefined;
export function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  const u32 = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: value = mant * 2^-24
      table[h] = (sign ? -1 : 1) * mant * 5.960464477539063e-8;
    } else if (exp === 31) {
      u32[h] = sign | 0x7f800000 | (mant << 13); // inf / nan
    } else {
      u32[h] = sign | ((exp + 112) << 23) | (mant << 13);
    }
  }
  f16Table = table;
  return table;
}

/** Widens `src` f16 words into `dst` (same length) as float32. */
export function f16ToF32(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  const t = f16ToF32Table();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!;
  return dst;
}

/** Widens bf16 words (the top half of a float32) into float32. */
export function bf16ToF32(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  const u32 = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) u32[i] = src[i]! << 16;
  return dst;
}

const convBuf = new Float32Array(1);
const convU32 = new Uint32Array(convBuf.buffer);

/** Rounds one float32 to the nearest f16 (round-to-nearest-even), as torch's `.half()`. */
export function f32ToF16Bits(value: number): number {
  convBuf[0] = value;
  const x = convU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into exponent: correct
  return sign | half;
}

/** Rounds float32 values to f16 words. */
export function f32ToF16(src: ArrayLike<number>, dst = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = f32ToF16Bits(src[i]!);
  return dst;
}

/** Rounds float32 values to bf16 words (round-to-nearest-even, NaN preserved). */
export function f32ToBf16(src: Float32Array, dst = new Uint16Array(src.length)): Uint16Array {
  const u32 = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = u32[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) dst[i] = (x >>> 16) | 0x40;
    else dst[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return dst;
}
