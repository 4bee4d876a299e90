/**
 * Differentiable scaled dot-product attention with causal + padding masks and
 * GQA. The forward is a backend's attention kernel (the CPU backend's: wasm
 * SIMD when available, else attentionInto in lib/tensor/ops.ts), which also
 * returns the weights P; the backward runs per (batch row, kv head) as small
 * dense matrix products (a·bᵀ, a·b, aᵀ·b), so the O(T²·D) work runs at matmul speed:
 *
 *   forward   S = Q·Kᵀ·scale (+ mask), P = softmax(S), O = P·V
 *   backward  dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)),
 *             dQ = scale·dS·K, dK += scale·dSᵀ·Q, dV += Pᵀ·dO
 *
 * Letters: B batch, n query heads, k kv heads (query head h reads kv head
 * floor(h / (n/k))), T queries, S keys, D head dim.
 */
import { LlamaError } from "../errors.js";
import { Var, result, expectShape } from "./var.js";
import { jsLinearKernel, type LinearKernel, type matmulABt } from "./matmul.js";
import { attentionInto, type AttentionShapes } from "../tensor/ops.js";

/** out[M,N] (+)= a[M,K]·b[N,K]ᵀ from element offsets: `matmulABt`'s contract (a backend may run it on faster kernels). */
export type MatmulABt = typeof matmulABt;

/**
 * The backward's products: a·bᵀ, a·b and aᵀ·b (a backend's kernels, else JavaScript), or the
 * whole backward on a backend's kernels where it has them (false: the products run here).
 */
export type AttentionProducts = Pick<LinearKernel, "gemm" | "gemmNN" | "gemmTN"> & {
  attentionBackward?(
    P: Float32Array, dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, rowScale: Float32Array,
    s: AttentionShapes, dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null,
  ): boolean;
};

/**
 * A backend's attention forward, attentionInto's contract (lib/tensor/ops.ts) on dense
 * q [B, n, T, D] and k, v [B, k, S, D]: returns out [B, T, n·D] and the weights P [B, n, T, S].
 */
export type AttentionKernel = (
  q: Float32Array, k: Float32Array, v: Float32Array, s: AttentionShapes, scale: number,
  queryOffset: number, keyMask: Uint8Array | undefined,
) => { out: Float32Array; weights: Float32Array };

let scores = new Float64Array(0);

/** The CPU backend's JavaScript attention (attentionInto). */
export const jsAttention: AttentionKernel = (q, k, v, s, scale, queryOffset, keyMask) => {
  if (scores.length < s.S) scores = new Float64Array(s.S);
  const out = new Float32Array(s.B * s.T * s.n * s.D), weights = new Float32Array(s.B * s.n * s.T * s.S);
  attentionInto(q, k, v, s, scale, queryOffset, keyMask, out, weights, scores);
  return { out, weights };
};

export interface AttentionMaskSpec {
  /** Position of query 0 in the key sequence (P); query i sees keys j <= queryOffset + i. */
  readonly queryOffset: number;
  /** [B, S], 1 = real token, 0 = padding. */
  readonly keyMask?: Uint8Array;
}

/**
 * softmax(q·kᵀ·scale + mask)·v. q [B, n, T, D], k/v [B, k, S, D] → out
 * [B, T, n·D] and the weights P [B, n, T, S] (a constant output). A row that
 * may attend to no key gets uniform weights over all S keys, as HF's eager
 * attention (its additive mask is the same finite minimum across that row);
 * such a row's output does not depend on q or k, so it sends them no gradient.
 * `kernel` computes the forward (scale rounded to float32, as PyTorch's scalar
 * multiply), `mm` the backward's products.
 */
export function attention(
  q: Var, k: Var, v: Var, mask: AttentionMaskSpec, scale: number,
  kernel: AttentionKernel = jsAttention, mm: AttentionProducts = jsLinearKernel,
): { out: Var; weights: Var } {
  expectShape("attention", "q", q.shape, [null, null, null, null]);
  const [B, n, T, D] = q.shape as [number, number, number, number];
  expectShape("attention", "k", k.shape, [B, null, null, D]);
  const kh = k.shape[1]!, S = k.shape[2]!;
  expectShape("attention", "v", v.shape, [B, kh, S, D]);
  if (n % kh !== 0) throw new LlamaError(`attention: ${n} query heads do not group over ${kh} kv heads`);
  const keyMask = mask.keyMask ? Uint8Array.from(mask.keyMask) : undefined;
  if (keyMask && keyMask.length !== B * S) throw new LlamaError(`attention: keyMask has ${keyMask.length} entries, expected B·S = ${B * S}`);
  const rep = n / kh, off = mask.queryOffset;
  const sc = Math.fround(scale);
  const qv = q.value, kv = k.value, vv = v.value;

  const shapes: AttentionShapes = { B, n, k: kh, T, S, D, kvHeadStride: S * D };
  const { out, weights: P } = kernel(qv, kv, vv, shapes, sc, off, keyMask); // P [B, n, T, S]

  // Row i of a batch row sees keys j <= last(i) = min(S − 1, off + i) that the key mask keeps; P is
  // exactly 0 beyond last(i), so the backward loops stop there (about half the work). A row that sees
  // no key at all ("blind") has uniform weights that depend on neither q nor k: its softmax backward
  // is scaled by 0 instead of the forward's scale.
  const rowScale = new Float32Array(B * T).fill(sc);
  if (keyMask) {
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        const last = Math.min(S - 1, off + i);
        let seen = false;
        for (let j = 0; j <= last && !seen; j++) seen = keyMask[b * S + j] !== 0;
        if (!seen) rowScale[b * T + i] = 0;
      }
    }
  }
  // The query heads sharing a kv head (GQA) are contiguous in q and P: each backward product
  // runs once per (batch row, kv head) on R = rep·T rows.
  const R = rep * T;
  const weights = new Var(P, [B, n, T, S]);
  const o = result(out, [B, T, n * D], [q, k, v], () => ({
    name: "attention",
    inputs: [q, k, v],
    backward: (gOut) => {
      const dq = q.requiresGrad ? new Float32Array(q.size) : null;
      const dk = k.requiresGrad ? new Float32Array(k.size) : null;
      const dv = v.requiresGrad ? new Float32Array(v.size) : null;
      if (mm.attentionBackward?.(P, gOut, qv, kv, vv, rowScale, shapes, dq, dk, dv)) return [dq, dk, dv];
      // Per (batch row, kv head) scratch, reused: dO [R, D] and dS [R, S]. Every product reads its
      // operands as they lie (aᵀ·b and a·b kernels), so nothing is transposed.
      const dO = new Float32Array(R * D), dS = new Float32Array(R * S);
      for (let b = 0; b < B; b++) {
        for (let g = 0; g < kh; g++) {
          const kOff = (b * kh + g) * S * D;
          const qOff = (b * n + g * rep) * T * D, pOff = (b * n + g * rep) * T * S;
          const Pg = P.subarray(pOff, pOff + R * S);
          for (let r = 0; r < R; r++) {
            const h = g * rep + Math.floor(r / T), i = r % T, src = (b * T + i) * n * D + h * D;
            dO.set(gOut.subarray(src, src + D), r * D);
          }
          if (dv) mm.gemmTN(Pg, dO, dv.subarray(kOff, kOff + S * D), R, S, D); // dV_g += Pᵀ·dO
          if (!dq && !dk) continue;
          mm.gemm(dO, vv, dS, R, S, D, false, 0, kOff, 0); // dP = dO·Vᵀ  [R, S]
          for (let r = 0; r < R; r++) {
            const i = r % T, row = r * S, rs = rowScale[b * T + i]!;
            const last = Math.min(S - 1, off + i);
            let dot = 0;
            for (let j = 0; j <= last; j++) dot += Pg[row + j]! * dS[row + j]!;
            for (let j = 0; j <= last; j++) dS[row + j] = Pg[row + j]! * (dS[row + j]! - dot) * rs;
            dS.fill(0, row + last + 1, row + S);
          }
          if (dq) mm.gemmNN(dS, kv.subarray(kOff, kOff + S * D), dq.subarray(qOff, qOff + R * D), R, S, D, 1); // dQ = dS·K, the group's heads contiguous
          if (dk) mm.gemmTN(dS, qv.subarray(qOff, qOff + R * D), dk.subarray(kOff, kOff + S * D), R, S, D); // dK_g += dSᵀ·Q
        }
      }
      return [dq, dk, dv];
    },
  }));
  return { out: o, weights };
}
