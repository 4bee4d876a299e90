/**
 * Plain TypeScript references (float64 accumulation, the textbook formulas)
 * for the WebGPU kernel tests, plus a seeded RNG and the error metric.
 */

import { mulberry32 } from "../lib/mulberry32.js";

/** mulberry32: a small seeded PRNG, so failures reproduce. */
export const rng = mulberry32;

/** n values uniform in [-scale, scale). */
export function randn(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

/** ‖a − b‖ / ‖b‖ (the parity metric of the brief). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErr: lengths ${a.length} and ${b.length} differ`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** y[M,N] = x[M,K] · W[N,K]ᵀ + b. */
export function refLinear(x: Float32Array, W: Float32Array, b: Float32Array | undefined, M: number, K: number, N: number): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * W[n * K + k]!;
      y[m * N + n] = s + (b ? b[n]! : 0);
    }
  }
  return y;
}

export function refRmsNorm(x: Float32Array, w: Float32Array, eps: number, H: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let r = 0; r < x.length / H; r++) {
    let s = 0;
    for (let h = 0; h < H; h++) s += x[r * H + h]! ** 2;
    const inv = 1 / Math.sqrt(s / H + eps);
    for (let h = 0; h < H; h++) y[r * H + h] = w[h]! * x[r * H + h]! * inv;
  }
  return y;
}

/** x [B, T, heads*D] → [B, heads, T, D], with HF's rotate_half RoPE when cos/sin [B, T, D/2] are given. */
export function refSplitHeads(x: Float32Array, B: number, T: number, heads: number, D: number,
  cos?: Float32Array, sin?: Float32Array): Float32Array {
  const y = new Float32Array(x.length);
  const half = D / 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        const src = ((b * T + t) * heads + h) * D;
        const dst = ((b * heads + h) * T + t) * D;
        for (let d = 0; d < D; d++) {
          let v = x[src + d]!;
          if (cos && sin) {
            const f = (b * T + t) * half + (d % half);
            const rot = d < half ? -x[src + d + half]! : x[src + d - half]!;
            v = v * cos[f]! + rot * sin[f]!;
          }
          y[dst + d] = v;
        }
      }
    }
  }
  return y;
}

export interface RefAttentionArgs {
  q: Float32Array; // [B, n, T, D]
  k: Float32Array; // [B, kh, S, D]
  v: Float32Array; // [B, kh, S, D]
  B: number; n: number; kh: number; T: number; S: number; D: number;
  scale: number;
  queryOffset: number;
  keyMask?: Uint8Array; // [B, S]
}

/**
 * HF eager attention: scores + additive mask (min float where masked), softmax,
 * weights · V. Rows with no visible key are uniform over all S keys (HF's
 * all-min row). Returns out [B, T, n*D] and weights [B, n, T, S].
 */
export function refAttention(a: RefAttentionArgs): { out: Float32Array; weights: Float32Array } {
  const { B, n, kh, T, S, D } = a;
  const out = new Float32Array(B * T * n * D);
  const weights = new Float32Array(B * n * T * S);
  const group = n / kh;
  const s = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < n; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        let mx = -Infinity;
        for (let j = 0; j < S; j++) {
          const visible = j <= a.queryOffset + i && (!a.keyMask || a.keyMask[b * S + j] !== 0);
          if (!visible) { s[j] = NaN; continue; }
          let dot = 0;
          for (let d = 0; d < D; d++) dot += a.q[((b * n + h) * T + i) * D + d]! * a.k[((b * kh + kvh) * S + j) * D + d]!;
          s[j] = dot * a.scale;
          mx = Math.max(mx, s[j]!);
        }
        let sum = 0;
        for (let j = 0; j < S; j++) sum += Number.isNaN(s[j]) ? 0 : Math.exp(s[j]! - mx);
        const w = weights.subarray(((b * n + h) * T + i) * S, ((b * n + h) * T + i + 1) * S);
        for (let j = 0; j < S; j++) w[j] = mx === -Infinity ? 1 / S : Number.isNaN(s[j]) ? 0 : Math.exp(s[j]! - mx) / sum;
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < S; j++) acc += w[j]! * a.v[((b * kh + kvh) * S + j) * D + d]!;
          out[((b * T + i) * n + h) * D + d] = acc;
        }
      }
    }
  }
  return { out, weights };
}

/** Sorted (value desc, index asc) top-k of one row. */
export function refTopK(row: Float32Array, k: number): { values: number[]; indices: number[] } {
  const idx = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
  return { values: idx.map((i) => row[i]!), indices: idx };
}

/** HF warpers in order (temperature → top-k → top-p → min-p), then the inverse-CDF draw with u. */
export function refSample(row: Float32Array, o: { temperature: number; topK: number; topP: number; minP: number; u: number }): number {
  const { values, indices } = refTopK(row, o.topK);
  const z = values.map((v) => v / o.temperature);
  const p = z.map((v) => Math.exp(v - z[0]!));
  const total = p.reduce((a, b) => a + b, 0);
  let keep = p.length;
  if (o.topP < 1) {
    let tail = 0;
    while (keep > 1 && tail + p[keep - 1]! / total <= 1 - o.topP) tail += p[--keep]! / total;
  }
  if (o.minP > 0) {
    let j = 1;
    while (j < keep && p[j]! >= o.minP) j++;
    keep = j;
  }
  const kept = p.slice(0, keep).reduce((a, b) => a + b, 0);
  let acc = 0;
  for (let j = 0; j < keep; j++) {
    acc += p[j]!;
    if (acc > o.u * kept) return indices[j]!;
  }
  return indices[keep - 1]!;
}
