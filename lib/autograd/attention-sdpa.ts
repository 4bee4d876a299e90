/**
 * Differentiable scaled dot-product attention with causal + padding masks and
 * GQA, per (batch, head) as small dense matrix products on the blocked kernel
 * (lib/autograd/matmul.ts), so the O(T²·D) work runs at matmul speed:
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
import { matmulABt } from "./matmul.js";

/** out[M,N] (+)= a[M,K]·b[N,K]ᵀ from element offsets: `matmulABt`'s contract (a backend may run it on faster kernels). */
export type MatmulABt = typeof matmulABt;

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
 */
export function attention(q: Var, k: Var, v: Var, mask: AttentionMaskSpec, scale: number, mm: MatmulABt = matmulABt): { out: Var; weights: Var } {
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

  // Row i of a batch row may see keys j <= last(i) = min(S − 1, off + i) that the key mask keeps;
  // P is exactly 0 beyond last(i), so the loops stop there (about half the work).
  // The query heads sharing a kv head (GQA) are contiguous in q and P: each product
  // runs once per (batch row, kv head) on R = rep·T rows.
  const R = rep * T;
  const P = new Float32Array(B * n * T * S); // [B, n, T, S]
  const blind = new Uint8Array(B * T);
  const out = new Float32Array(B * T * n * D);
  const oh = new Float32Array(R * D);
  const vt = new Float32Array(D * S);
  for (let b = 0; b < B; b++) {
    const maskRow = keyMask ? b * S : -1;
    for (let g = 0; g < kh; g++) {
      const kOff = (b * kh + g) * S * D;
      const qOff = (b * n + g * rep) * T * D, pOff = (b * n + g * rep) * T * S;
      mm(qv, kv, P, R, S, D, false, qOff, kOff, pOff); // raw q·k into P's slots
      for (let r = 0; r < R; r++) {
        const i = r % T, row = pOff + r * S;
        const last = Math.min(S - 1, off + i);
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          if (maskRow >= 0 && keyMask![maskRow + j] === 0) continue;
          const s = Math.fround(P[row + j]! * sc);
          P[row + j] = s;
          if (s > max) max = s;
        }
        if (max === -Infinity) {
          P.fill(1 / S, row, row + S);
          blind[b * T + i] = 1;
          continue;
        }
        let sum = 0;
        for (let j = 0; j <= last; j++) {
          const e = maskRow >= 0 && keyMask![maskRow + j] === 0 ? 0 : Math.exp(P[row + j]! - max);
          P[row + j] = e;
          sum += e;
        }
        for (let j = 0; j <= last; j++) P[row + j] = P[row + j]! / sum;
        P.fill(0, row + last + 1, row + S);
      }
      transposeInto(vv, kOff, S, D, vt); // [D, S]
      mm(P, vt, oh, R, D, S, false, pOff, 0, 0); // O = P·V  [R, D]
      for (let r = 0; r < R; r++) {
        const h = g * rep + Math.floor(r / T), i = r % T, dst = (b * T + i) * n * D + h * D;
        for (let d = 0; d < D; d++) out[dst + d] = oh[r * D + d]!; // (a loop, not set(subarray): no garbage per row)
      }
    }
  }
  const weights = new Var(P, [B, n, T, S]);
  const o = result(out, [B, T, n * D], [q, k, v], () => ({
    name: "attention",
    inputs: [q, k, v],
    backward: (gOut) => {
      const dq = q.requiresGrad ? new Float32Array(q.size) : null;
      const dk = k.requiresGrad ? new Float32Array(k.size) : null;
      const dv = v.requiresGrad ? new Float32Array(v.size) : null;
      // Per (batch row, kv head) scratch, reused: dO [R, D], dS [R, S] and transposes for the ABt kernel.
      const dO = new Float32Array(R * D), dS = new Float32Array(R * S);
      const tRS = new Float32Array(S * R), tRD = new Float32Array(D * R), kt = new Float32Array(D * S);
      for (let b = 0; b < B; b++) {
        for (let g = 0; g < kh; g++) {
          const kOff = (b * kh + g) * S * D;
          const qOff = (b * n + g * rep) * T * D, pOff = (b * n + g * rep) * T * S;
          for (let r = 0; r < R; r++) {
            const h = g * rep + Math.floor(r / T), i = r % T, src = (b * T + i) * n * D + h * D;
            for (let d = 0; d < D; d++) dO[r * D + d] = gOut[src + d]!;
          }
          if (dv) {
            // dV_g += Pᵀ·dO : [S, R] · ([D, R])ᵀ
            transposeInto(P, pOff, R, S, tRS);
            transposeInto(dO, 0, R, D, tRD);
            mm(tRS, tRD, dv, S, D, R, true, 0, 0, kOff);
          }
          if (!dq && !dk) continue;
          mm(dO, vv, dS, R, S, D, false, 0, kOff, 0); // dP = dO·Vᵀ  [R, S]
          for (let r = 0; r < R; r++) {
            const i = r % T, row = r * S, pr = pOff + r * S;
            if (blind[b * T + i]) { dS.fill(0, row, row + S); continue; }
            const last = Math.min(S - 1, off + i);
            let dot = 0;
            for (let j = 0; j <= last; j++) dot += P[pr + j]! * dS[row + j]!;
            for (let j = 0; j <= last; j++) dS[row + j] = P[pr + j]! * (dS[row + j]! - dot) * sc;
            dS.fill(0, row + last + 1, row + S);
          }
          if (dq) {
            transposeInto(kv, kOff, S, D, kt); // [D, S]
            mm(dS, kt, dq, R, D, S, false, 0, 0, qOff); // dQ = dS·K, the group's heads contiguous
          }
          if (dk) {
            // dK_g += dSᵀ·Q : [S, R] · ([D, R])ᵀ
            transposeInto(dS, 0, R, S, tRS);
            transposeInto(qv, qOff, R, D, tRD);
            mm(tRS, tRD, dk, S, D, R, true, 0, 0, kOff);
          }
        }
      }
      return [dq, dk, dv];
    },
  }));
  return { out: o, weights };
}

/** dst[C, R] = src[off .. off + R·C] viewed as [R, C], transposed. */
function transposeInto(src: Float32Array, off: number, R: number, C: number, dst: Float32Array): void {
  for (let r = 0; r < R; r++) {
    const o = off + r * C;
    for (let c = 0; c < C; c++) dst[c * R + r] = src[o + c]!;
  }
}
