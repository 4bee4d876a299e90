/**
 * WGSL dequantizers for the ggml block formats (layouts: lib/tensor/quantized.ts).
 *
 * A quantized weight is its file bytes in an `array<u32>` (the tail padded to
 * 4 bytes). Blocks are 18, 20, 22, 34 or 210 bytes for most types, so a block
 * (and a row) can start at any even byte: fields are read with byte-offset
 * helpers (`W_u8`, an unaligned little-endian `W_u32`, and `W_f16` for an f16
 * at an even offset, which always lies inside one word). f16 scales are
 * widened with `unpack2x16float`, so no kernel needs `shader-f16`.
 *
 * One function per format, `W_dq4(row, k) -> vec4<f32>`: the weights k..k+3
 * (k a multiple of 4) of the row whose blocks start at byte `row`. Four
 * consecutive weights never straddle a block or sub-block, so each call
 * decodes its scales once. Every weight is ggml's dequantize_row_* expression
 * in f32, in ggml's order (products of an f16 and small integers are exact;
 * the min's subtraction and q6_k's last product round once, as in ggml), so
 * the values are bit for bit those of lib/io/gguf-dequant.ts. The GEMV, the
 * tiled matmul, the transposed (backward) matmul and the embedding gather all
 * call this same function.
 */
import type { QuantType } from "../../lib/tensor/quantized.js";

/** Byte helpers over the storage array W (bound at `binding`). */
function prelude(binding: number): string {
  return /* wgsl */ `@group(0) @binding(${binding}) var<storage, read> W: array<u32>;
fn W_u8(o: u32) -> u32 { return (W[o >> 2u] >> ((o & 3u) << 3u)) & 0xffu; }
// Four bytes from any byte offset, little-endian (a block need not be 4-aligned).
fn W_u32(o: u32) -> u32 {
  let s = (o & 3u) << 3u;
  let lo = W[o >> 2u];
  if (s == 0u) { return lo; }
  return (lo >> s) | (W[(o >> 2u) + 1u] << (32u - s));
}
// An f16 at an even byte offset.
fn W_f16(o: u32) -> f32 { return unpack2x16float(W[o >> 2u])[(o >> 1u) & 1u]; }
// The four bytes of a word, lowest first.
fn bytes4(w: u32) -> vec4<u32> { return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu); }
// Four nibbles: the low ones of bytes o..o+3, or their high ones.
fn W_nib4(o: u32, high: bool) -> vec4<u32> {
  let q = W_u32(o);
  return bytes4(select(q, q >> 4u, high) & 0x0f0f0f0fu);
}
`;
}

/** get_scale_min_k4: the 6-bit scale and min of sub-block j (0..7) from the 12 scale bytes at byte s. */
const SCALE_MIN_K4 = /* wgsl */ `
fn scale_min_k4(s: u32, j: u32) -> vec2<f32> {
  if (j < 4u) { return vec2<f32>(f32(W_u8(s + j) & 63u), f32(W_u8(s + j + 4u) & 63u)); }
  let sc = (W_u8(s + j + 4u) & 0xfu) | ((W_u8(s + j - 4u) >> 6u) << 4u);
  let mn = (W_u8(s + j + 4u) >> 4u) | ((W_u8(s + j) >> 6u) << 4u);
  return vec2<f32>(f32(sc), f32(mn));
}
`;

const DQ4: Record<QuantType, string> = {
  // d, int8 q[32]: w = q·d
  q8_0: /* wgsl */ `
fn dq4(row: u32, k: u32) -> vec4<f32> {
  let b = row + (k >> 5u) * 34u;
  let d = W_f16(b);
  let q = W_u32(b + 2u + (k & 31u));
  let v = vec4<i32>(i32(q << 24u) >> 24u, i32(q << 16u) >> 24u, i32(q << 8u) >> 24u, i32(q) >> 24u);
  return vec4<f32>(v) * d;
}`,
  // d, qs[16]: w = (nib − 8)·d; elements 16..31 are the high nibbles
  q4_0: /* wgsl */ `
fn dq4(row: u32, k: u32) -> vec4<f32> {
  let b = row + (k >> 5u) * 18u;
  let i = k & 31u;
  let q = vec4<i32>(W_nib4(b + 2u + (i & 15u), i >= 16u)) - vec4<i32>(8);
  return vec4<f32>(q) * W_f16(b);
}`,
  // d, m, qs[16]: w = nib·d + m
  q4_1: /* wgsl */ `
fn dq4(row: u32, k: u32) -> vec4<f32> {
  let b = row + (k >> 5u) * 20u;
  let i = k & 31u;
  return vec4<f32>(W_nib4(b + 4u + (i & 15u), i >= 16u)) * W_f16(b) + W_f16(b + 2u);
}`,
  // d, qh (u32), qs[16]: w = ((nib | bit_i(qh) << 4) − 16)·d
  q5_0: /* wgsl */ `
fn dq4(row: u32, k: u32) -> vec4<f32> {
  let b = row + (k >> 5u) * 22u;
  let i = k & 31u;
  let h = ((vec4<u32>(W_u32(b + 2u)) >> (vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u)) << vec4<u32>(4u);
  let q = vec4<i32>(W_nib4(b + 6u + (i & 15u), i >= 16u) | h) - vec4<i32>(16);
  return vec4<f32>(q) * W_f16(b);
}`,
  // d, m, qh (u32), qs[16]: w = (nib | bit_i(qh) << 4)·d + m
  q5_1: /* wgsl */ `
fn dq4(row: u32, k: u32) -> vec4<f32> {
  let b = row + (k >> 5u) * 24u;
  let i = k & 31u;
  let h = ((vec4<u32>(W_u32(b + 4u)) >> (vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u)) << vec4<u32>(4u);
  return vec4<f32>(W_nib4(b + 8u + (i & 15u), i >= 16u) | h) * W_f16(b) + W_f16(b + 2u);
}`,
  // d, dmin, scales[12], qs[128]: sub-block j (32 weights) = (d·sc)·nib − dmin·mn; qs bytes
  // 32·(j/2).. hold sub-blocks j (low nibbles, j even) and j+1 (high nibbles)
  q4_k: /* wgsl */ `${SCALE_MIN_K4}
fn dq4(row: u32, k: u32) -> vec4<f32> {
  let b = row + (k >> 8u) * 144u;
  let e = k & 255u;
  let j = e >> 5u;
  let sm = scale_min_k4(b + 4u, j);
  let d1 = W_f16(b) * sm.x;
  let m1 = W_f16(b + 2u) * sm.y;
  return d1 * vec4<f32>(W_nib4(b + 16u + (j >> 1u) * 32u + (e & 31u), (j & 1u) == 1u)) - m1;
}`,
  // d, dmin, scales[12], qh[32], qs[128]: as q4_k plus bit j of qh[l] as the 5th bit
  q5_k: /* wgsl */ `${SCALE_MIN_K4}
fn dq4(row: u32, k: u32) -> vec4<f32> {
  let b = row + (k >> 8u) * 176u;
  let e = k & 255u;
  let j = e >> 5u;
  let l = e & 31u;
  let sm = scale_min_k4(b + 4u, j);
  let d1 = W_f16(b) * sm.x;
  let m1 = W_f16(b + 2u) * sm.y;
  let h = ((bytes4(W_u32(b + 16u + l)) >> vec4<u32>(j)) & vec4<u32>(1u)) << vec4<u32>(4u);
  return d1 * vec4<f32>(W_nib4(b + 48u + (j >> 1u) * 32u + l, (j & 1u) == 1u) | h) - m1;
}`,
  // ql[128], qh[64], int8 sc[16], d: weight e = 128·h + 32·q + l (h half, q quarter) is
  // (d·sc[8h + l/16 + 2q])·(q6 − 32), q6 = nibble of ql[64h + 32·(q&1) + l] (high if q ≥ 2)
  // | bits 2q..2q+1 of qh[32h + l] << 4 (dequantize_row_q6_K)
  q6_k: /* wgsl */ `
fn dq4(row: u32, k: u32) -> vec4<f32> {
  let b = row + (k >> 8u) * 210u;
  let e = k & 255u;
  let h = e >> 7u;
  let q = (e >> 5u) & 3u;
  let l = e & 31u;
  let lo = W_nib4(b + 64u * h + 32u * (q & 1u) + l, q >= 2u);
  let hi = (bytes4(W_u32(b + 128u + 32u * h + l)) >> vec4<u32>(2u * q)) & vec4<u32>(3u);
  let v = vec4<i32>(lo | (hi << vec4<u32>(4u))) - vec4<i32>(32);
  let sc = i32(W_u8(b + 192u + 8u * h + (l >> 4u) + 2u * q) << 24u) >> 24u;
  let ds = W_f16(b + 208u) * f32(sc);
  return ds * vec4<f32>(v);
}`,
};

/**
 * The storage binding NAME of a quantized weight, its byte helpers and its
 * `NAME_dq4(row, k)`. Every identifier carries the name, so a kernel can read
 * several weights, each in its own format (a q/k/v GEMV over Q4_K and Q6_K).
 */
export function quantDecl(type: QuantType, binding: number, name = "W"): string {
  const text = (prelude(binding) + DQ4[type] + "\n").replace(/\b(dq4|bytes4|scale_min_k4)\b/g, "W_$1");
  return name === "W" ? text : text.replace(/\bW(?=[[_:])/g, name);
}
