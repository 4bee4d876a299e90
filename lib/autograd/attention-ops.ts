/**
 * Differentiable attention pieces, with the layouts of the Backend interface
 * (lib/backend/backend.ts): splitHeads (+ rotary embedding), mergeHeads,
 * kvAppend and scaled dot-product attention with causal + padding masks and
 * GQA. Forwards are the CPU backend's kernels (lib/tensor/ops.ts); this file
 * adds their backwards. Letters: B batch, T queries, S keys, n query heads,
 * k kv heads, D head dim.
 */
import { LlamaError } from "../errors.js";
import { attendWithInto, mergeHeadsInto, splitHeadsInto } from "../tensor/ops.js";
import { Var, result, expectShape } from "./var.js";

export { attention, type AttentionMaskSpec } from "./attention-sdpa.js";

/** Rotary tables for splitHeads: cos/sin [B, T, D/2] (HF's rotate_half pairs (i, i + D/2)). */
export interface RopeTables {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
}

/** splitHeads on a backend's kernel, and its RoPE backward. */
export interface RopeKernel {
  /** x [B, T, heads·D] → [B, heads, T, D], rotated with cos, sin [B, T, D/2] when given: splitHeadsInto's numbers. */
  forward(x: Float32Array, B: number, T: number, heads: number, D: number, rope?: RopeTables): Float32Array;
  /**
   * dx [B, T, heads·D] for the output gradient g [B, heads, T, D]: the inverse
   * rotation (cos, sin [B, T, D/2]), transposed back. May return g itself,
   * rewritten, when `owned` (nothing else holds g).
   */
  backward(g: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, heads: number, D: number, owned: boolean): Float32Array;
}

/** splitHeads and its RoPE backward in JavaScript (a fresh dx: the permutation cannot run in place). */
export const jsRope: RopeKernel = {
  forward: (x, B, T, heads, D, rope) => splitHeadsInto(x, B, T, heads, D, rope?.cos, rope?.sin, new Float32Array(x.length)),
  backward(g, cos, sin, B, T, heads, D) {
    const half = D / 2, HD = heads * D;
    const dx = new Float32Array(g.length);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const dst = (b * T + t) * HD, tab = (b * T + t) * half;
        for (let h = 0; h < heads; h++) {
          const d0 = dst + h * D, s0 = ((b * heads + h) * T + t) * D;
          for (let i = 0; i < half; i++) {
            const g1 = g[s0 + i]!, g2 = g[s0 + i + half]!, c = cos[tab + i]!, s = sin[tab + i]!;
            dx[d0 + i] = g1 * c + g2 * s;
            dx[d0 + i + half] = g2 * c - g1 * s;
          }
        }
      }
    }
    return dx;
  },
};

/**
 * x [B, T, heads·D] → [B, heads, T, D], rotating each (i, i+D/2) pair by the
 * position's angle when `rope` is given, as HF's `q·cos + rotate_half(q)·sin`
 * in float32 (each product rounded, then the sum). The backward is the
 * transpose rotation (angle −θ) followed by the inverse transpose, on `kernel`.
 */
export function splitHeads(x: Var, heads: number, rope?: RopeTables, kernel: RopeKernel = jsRope): Var {
  expectShape("splitHeads", "x", x.shape, [null, null, null]);
  const [B, T, HD] = x.shape as [number, number, number];
  const D = HD / heads;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new LlamaError(`splitHeads: width ${HD} does not split into ${heads} heads of even size`);
  const half = D / 2;
  if (rope && (rope.cos.length !== B * T * half || rope.sin.length !== B * T * half)) {
    throw new LlamaError(`splitHeads: rope tables need ${B}·${T}·${half} entries, got cos ${rope.cos.length}, sin ${rope.sin.length}`);
  }
  const cos = rope ? Float32Array.from(rope.cos) : undefined; // copied: the caller may reuse its arrays
  const sin = rope ? Float32Array.from(rope.sin) : undefined;
  const out = kernel.forward(x.value, B, T, heads, D, cos && sin && { cos, sin });
  return result(out, [B, heads, T, D], [x], () => ({
    name: "splitHeads",
    inputs: [x],
    backward: (g, owned) => {
      if (!cos || !sin) return [mergeHeadsInto(g, B, heads, T, D, new Float32Array(x.size))]; // the inverse permutation
      return [kernel.backward(g, cos, sin, B, T, heads, D, owned)];
    },
  }));
}

/** x [B, heads, T, D] → [B, T, heads·D]; the backward is splitHeads without rotation. */
export function mergeHeads(x: Var): Var {
  expectShape("mergeHeads", "x", x.shape, [null, null, null, null]);
  const [B, n, T, D] = x.shape as [number, number, number, number];
  const out = mergeHeadsInto(x.value, B, n, T, D, new Float32Array(x.size));
  return result(out, [B, T, n * D], [x], () => ({
    name: "mergeHeads",
    inputs: [x],
    backward: (g) => [splitHeadsInto(g, B, T, n, D, undefined, undefined, new Float32Array(x.size))],
  }));
}

/** Concatenates along the sequence dim: cache [B, k, P, D] (or none), x [B, k, T, D] → [B, k, P+T, D]. */
export function kvAppend(cache: Var | undefined, x: Var): Var {
  if (!cache) return x;
  expectShape("kvAppend", "x", x.shape, [cache.shape[0]!, cache.shape[1]!, null, cache.shape[3]!]);
  const [B, k, P, D] = cache.shape as [number, number, number, number];
  const T = x.shape[2]!;
  const rows = B * k;
  const out = new Float32Array(rows * (P + T) * D);
  for (let r = 0; r < rows; r++) {
    out.set(cache.value.subarray(r * P * D, (r + 1) * P * D), r * (P + T) * D);
    out.set(x.value.subarray(r * T * D, (r + 1) * T * D), r * (P + T) * D + P * D);
  }
  return result(out, [B, k, P + T, D], [cache, x], () => ({
    name: "kvAppend",
    inputs: [cache, x],
    backward: (g) => {
      const dc = new Float32Array(cache.size), dx = new Float32Array(x.size);
      for (let r = 0; r < rows; r++) {
        dc.set(g.subarray(r * (P + T) * D, r * (P + T) * D + P * D), r * P * D);
        dx.set(g.subarray(r * (P + T) * D + P * D, (r + 1) * (P + T) * D), r * T * D);
      }
      return [cache.requiresGrad ? dc : null, x.requiresGrad ? dx : null];
    },
  }));
}

/**
 * The second half of attention with given weights (a hook that replaces the
 * pattern): weights [B, n, T, S], v [B, k, S, D] → [B, T, n·D] = weights·V per
 * head (GQA as in `attention`). Backward: dW = dO·Vᵀ, dV = Wᵀ·dO.
 */
export function attendWith(weights: Var, v: Var): Var {
  expectShape("attendWith", "weights", weights.shape, [null, null, null, null]);
  const [B, n, T, S] = weights.shape as [number, number, number, number];
  expectShape("attendWith", "v", v.shape, [B, null, S, null]);
  const kh = v.shape[1]!, D = v.shape[3]!;
  if (n % kh !== 0) throw new LlamaError(`attendWith: ${n} query heads do not group over ${kh} kv heads`);
  const rep = n / kh, w = weights.value, vv = v.value;
  const out = attendWithInto(w, vv, { B, n, k: kh, T, S, D, kvHeadStride: S * D }, new Float32Array(B * T * n * D));
  return result(out, [B, T, n * D], [weights, v], () => ({
    name: "attendWith",
    inputs: [weights, v],
    backward: (g) => {
      const dw = weights.requiresGrad ? new Float32Array(weights.size) : null;
      const dv = v.requiresGrad ? new Float32Array(v.size) : null;
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < n; h++) {
          const vBase = (b * kh + Math.floor(h / rep)) * S * D;
          for (let i = 0; i < T; i++) {
            const wo = ((b * n + h) * T + i) * S, go = (b * T + i) * n * D + h * D;
            for (let j = 0; j < S; j++) {
              const vo = vBase + j * D;
              if (dw) {
                let s = 0;
                for (let d = 0; d < D; d++) s += g[go + d]! * vv[vo + d]!;
                dw[wo + j] = s;
              }
              const p = w[wo + j]!;
              if (dv && p !== 0) for (let d = 0; d < D; d++) dv[vo + d] = dv[vo + d]! + p * g[go + d]!;
            }
          }
        }
      }
      return [dw, dv];
    },
  }));
}
