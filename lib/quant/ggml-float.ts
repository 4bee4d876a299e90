/**
 * The float32 arithmetic of ggml's reference quantizers, reproduced in JS.
 *
 * ggml computes in IEEE float32; libggml-base is built without -ffast-math
 * and without FMA, so every `a op b` is rounded to float32 on its own, in
 * source order. JS computes in float64; rounding each + − × ÷ √ of float32
 * inputs back with Math.fround gives exactly the float32 result (float64
 * carries more than 2·24+2 bits), so writing `fr(...)` around each operation,
 * in ggml's order, makes our bytes equal theirs.
 */
import { f16ToF32Table, f32ToF16Bits } from "../tensor/dtype.js";

export const fr = Math.fround;

/** FLT_MAX and ggml's GROUP_MAX_EPS (1e-15f), as float32 values. */
export const FLT_MAX = fr(3.4028234663852886e38);
export const GROUP_MAX_EPS = fr(1e-15);

const bitsF = new Float32Array(1);
const bitsI = new Int32Array(bitsF.buffer);

/**
 * ggml's `nearest_int`: adds 1.5·2^23 in float32 so the FPU rounds to the
 * nearest integer (ties to even) and reads the integer from the mantissa.
 * Within ggml's asserted range (|x| ≤ 4194303) that is the plain sum minus
 * the magic; outside it we read the mantissa bits as ggml does.
 */
export function nearestInt(x: number): number {
  const v = fr(x + 12582912);
  if (Math.abs(x) <= 4194303) return v - 12582912;
  bitsF[0] = v;
  return (bitsI[0]! & 0x007fffff) - 0x00400000;
}

/** C's float → int32 conversion as x86 `cvttss2si` does it: truncation; NaN and out-of-range give INT32_MIN. */
export function truncI32(x: number): number {
  const t = Math.trunc(x);
  return t >= -2147483648 && t < 2147483648 ? t : -2147483648;
}

/** `(int8_t)(float)`: truncate to int32, keep the low byte, signed. */
export const truncI8 = (x: number): number => (truncI32(x) << 24) >> 24;

/** `(uint8_t)(float)`: truncate to int32, keep the low byte. */
export const truncU8 = (x: number): number => truncI32(x) & 0xff;

/** C's `roundf` (half away from zero) of a float32 value. */
export function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/** GGML_FP32_TO_FP16: round to nearest even, overflow to inf. */
export const toF16 = f32ToF16Bits;

/** GGML_FP16_TO_FP32 (exact). */
export function fromF16(bits: number): number {
  return f16ToF32Table()[bits]!;
}

/** Stores an f16 word little-endian at `at`. */
export function putF16(out: Uint8Array, at: number, bits: number): void {
  out[at] = bits & 0xff;
  out[at + 1] = bits >>> 8;
}
