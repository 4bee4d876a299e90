/**
 * CPU kernels over contiguous row-major Float32Arrays (the CPU backend's
 * elementwise, normalization, rope and attention math). Matmul lives in
 * matmul.ts. Every kernel writes into a caller-provided output and allocates
 * nothing per element. Accumulation is in float64 (JS numbers), results are
 * stored as float32, which keeps us within ~1e-7 relative of torch's float32.
 */
import { LlamaError } from "../errors.js";
import { bf16ToF32, f16ToF32, type DType } from "./dtype.js";
import { dequantizeRows, type QuantType } from "./quantized.js";

/**
 * Embedding lookup: table [V, H] as f32/f16/bf16 words, or ggml blocks when `quant` is set,
 * ids [N] → out [N, H] in float32. Rows are widened one at a time, never the whole table.
 */
export function embeddingInto(
  table: Float32Array | Uint16Array | Uint8Array, dtype: DType, quant: QuantType | undefined,
  V: number, H: number, ids: ArrayLike<number>, out: Float32Array,
): Float32Array {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(id >= 0 && id < V)) throw new LlamaError(`embedding: token id ${id} at position ${i} is outside the vocabulary 0..${V - 1}`);
    const dst = out.subarray(i * H, (i + 1) * H);
    if (quant) {
      dequantizeRows(quant, table as Uint8Array, H, id, id + 1, dst);
      continue;
    }
    const row = table.subarray(id * H, (id + 1) * H);
    const into = dst as Float32Array<ArrayBuffer>; // (the widening helpers' signature; any buffer works)
    if (dtype === "f32") dst.set(row as Float32Array);
    else if (dtype === "f16") f16ToF32(row as Uint16Array, into);
    else bf16ToF32(row as Uint16Array, into);
  }
  return out;
}

/** out[i] = a[i] + b[i] */
export function addInto(a: Float32Array, b: Float32Array, out: Float32Array): Float32Array {
  const n = out.length;
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
  return out;
}

/**
 * out[i] = x[i] * s, with s rounded to float32 first: PyTorch multiplies a float32
 * tensor by a Python number as a float32 scalar (e.g. PEFT's LoRA `scaling`).
 */
export function scaleInto(x: Float32Array, s: number, out: Float32Array): Float32Array {
  const n = out.length;
  const f = Math.fround(s);
  for (let i = 0; i < n; i++) out[i] = x[i]! * f;
  return out;
}

/** SwiGLU: out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + e^-x) rounded to float32 first (as torch). */
export function siluMulInto(gate: Float32Array, up: Float32Array, out: Float32Array): Float32Array {
  const n = out.length;
  for (let i = 0; i < n; i++) out[i] = siluF32(gate[i]!) * up[i]!;
  return out;
}

/** silu(x) = x / (1 + e^-x), rounded to float32 (as torch's float32 silu). */
export function siluF32(x: number): number {
  return Math.fround(x / (1 + Math.exp(-x)));
}

/**
 * RMSNorm over rows of length H: x [N, H], weight [H] (already float32) → out [N, H].
 * HF: x * rsqrt(mean(x²) + eps), rounded to float32, then times weight.
 * `rstd` [N], when given, receives each row's rsqrt(mean(x²) + eps) (what the backward needs).
 */
export function rmsNormInto(
  x: Float32Array, weight: Float32Array, eps: number, H: number, out: Float32Array, rstd?: Float32Array,
): Float32Array {
  const N = x.length / H;
  for (let r = 0; r < N; r++) {
    const o = r * H;
    let ss = 0;
    for (let i = 0; i < H; i++) {
      const v = x[o + i]!;
      ss += v * v;
    }
    const variance = Math.fround(ss / H);
    const inv = Math.fround(1 / Math.sqrt(Math.fround(variance + eps)));
    if (rstd) rstd[r] = inv;
    for (let i = 0; i < H; i++) out[o + i] = weight[i]! * Math.fround(x[o + i]! * inv);
  }
  return out;
}

/**
 * Splits heads and applies RoPE (rotate_half convention):
 * x [B, T, heads*D] → out [B, heads, T, D]; cos/sin [B, T, D/2] or undefined (no rotation).
 */
export function splitHeadsInto(
  x: Float32Array, B: number, T: number, heads: number, D: number,
  cos: Float32Array | undefined, sin: Float32Array | undefined, out: Float32Array,
): Float32Array {
  const half = D >> 1;
  const rowStride = heads * D;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const src = (b * T + t) * rowStride;
      const tab = (b * T + t) * half;
      for (let h = 0; h < heads; h++) {
        const s = src + h * D;
        const d = ((b * heads + h) * T + t) * D;
        if (!cos || !sin) {
          for (let i = 0; i < D; i++) out[d + i] = x[s + i]!;
          continue;
        }
        for (let i = 0; i < half; i++) {
          const c = cos[tab + i]!;
          const sn = sin[tab + i]!;
          const x1 = x[s + i]!;
          const x2 = x[s + half + i]!;
          // q*cos + rotate_half(q)*sin, rotate_half(q) = [-x2, x1]
          out[d + i] = Math.fround(x1 * c) - Math.fround(x2 * sn);
          out[d + half + i] = Math.fround(x2 * c) + Math.fround(x1 * sn);
        }
      }
    }
  }
  return out;
}

/** x [B, heads, T, D] → out [B, T, heads*D]. */
export function mergeHeadsInto(x: Float32Array, B: number, heads: number, T: number, D: number, out: Float32Array): Float32Array {
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < T; t++) {
        const s = ((b * heads + h) * T + t) * D;
        const d = (b * T + t) * heads * D + h * D;
        for (let i = 0; i < D; i++) out[d + i] = x[s + i]!;
      }
    }
  }
  return out;
}

export interface AttentionShapes {
  B: number;
  /** query heads */
  n: number;
  /** kv heads */
  k: number;
  /** new tokens */
  T: number;
  /** key length (cached + new) */
  S: number;
  D: number;
  /** row stride of K/V in elements between heads: capacity * D (capacity >= S) */
  kvHeadStride: number;
}

/**
 * Causal + padding-masked attention with GQA:
 * q [B, n, T, D] dense; k, v [B, k, cap, D] (first S rows valid); out [B, T, n*D].
 * Query i attends key j iff j <= queryOffset + i and keyMask[b*S + j] != 0.
 * A row with no allowed key gets uniform weights over all S keys (HF eager).
 * `weights` [B, n, T, S] is filled when given; `scores` is scratch of length >= S.
 */
export function attentionInto(
  q: Float32Array, kd: Float32Array, vd: Float32Array, s: AttentionShapes, scale: number,
  queryOffset: number, keyMask: Uint8Array | undefined, out: Float32Array, weights: Float32Array | undefined,
  scores: Float64Array,
): void {
  const { B, n, k, T, S, D, kvHeadStride } = s;
  const group = n / k;
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    const maskRow = keyMask ? b * S : -1;
    for (let h = 0; h < n; h++) {
      const kvBase = (b * k + Math.floor(h / group)) * kvHeadStride;
      for (let i = 0; i < T; i++) {
        const qo = ((b * n + h) * T + i) * D;
        const last = Math.min(S - 1, queryOffset + i); // causal limit
        let max = -Infinity;
        let any = false;
        for (let j = 0; j < S; j++) {
          const allowed = j <= last && (maskRow < 0 || keyMask![maskRow + j] !== 0);
          if (!allowed) {
            scores[j] = -Infinity;
            continue;
          }
          const ko = kvBase + j * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d]! * kd[ko + d]!;
          const sc = Math.fround(Math.fround(dot) * scale);
          scores[j] = sc;
          if (sc > max) max = sc;
          any = true;
        }
        let sum = 0;
        if (any) {
          for (let j = 0; j < S; j++) {
            const e = scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
            scores[j] = e;
            sum += e;
          }
          for (let j = 0; j < S; j++) scores[j] = Math.fround(scores[j]! / sum);
        } else {
          for (let j = 0; j < S; j++) scores[j] = Math.fround(1 / S);
        }
        if (weights) {
          const wo = ((b * n + h) * T + i) * S;
          for (let j = 0; j < S; j++) weights[wo + j] = scores[j]!;
        }
        acc.fill(0);
        for (let j = 0; j < S; j++) {
          const p = scores[j]!;
          if (p === 0) continue;
          const vo = kvBase + j * D;
          for (let d = 0; d < D; d++) acc[d] = acc[d]! + p * vd[vo + d]!;
        }
        const oo = (b * T + i) * n * D + h * D;
        for (let d = 0; d < D; d++) out[oo + d] = acc[d]!;
      }
    }
  }
}

/**
 * The second half of attention with given weights: w [B, n, T, S], v [B, k, cap, D]
 * (first S rows valid, `kvHeadStride` = cap·D) → out [B, T, n*D] = w·V per head, query
 * head h reading kv head floor(h / (n/k)). Sums in float32, one product at a time.
 */
export function attendWithInto(w: Float32Array, v: Float32Array, s: AttentionShapes, out: Float32Array): Float32Array {
  const { B, n, k, T, S, D, kvHeadStride } = s;
  const group = n / k;
  out.fill(0);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < n; h++) {
      const vBase = (b * k + Math.floor(h / group)) * kvHeadStride;
      for (let i = 0; i < T; i++) {
        const wo = ((b * n + h) * T + i) * S;
        const oo = (b * T + i) * n * D + h * D;
        for (let j = 0; j < S; j++) {
          const p = w[wo + j]!;
          if (p === 0) continue;
          const vo = vBase + j * D;
          for (let d = 0; d < D; d++) out[oo + d] = out[oo + d]! + p * v[vo + d]!;
        }
      }
    }
  }
  return out;
}
