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
import { matmulABt, transpose } from "./matmul.js";

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

  // visible[b·T + i] = number of keys row i may see (0 = blind row); allowed(b, i, j) below.
  const allowed = (b: number, i: number, j: number) => j <= off + i && (!keyMask || keyMask[b * S + j] !== 0);
  const P = new Float32Array(B * n * T * S); // [B, n, T, S]
  const blind = new Uint8Array(B * T);
  const out = new Float32Array(B * T * n * D);
  const oh = new Float32Array(T * D);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < kh; g++) {
      const kOff = (b * kh + g) * S * D;
      const vt = transpose(vv.subarray(kOff, kOff + S * D), S, D); // [D, S]
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        const qOff = (b * n + h) * T * D, pOff = (b * n + h) * T * S;
        mm(qv, kv, P, T, S, D, false, qOff, kOff, pOff); // raw q·k into P's slot
        for (let i = 0; i < T; i++) {
          const r = pOff + i * S;
          let max = -Infinity;
          for (let j = 0; j < S; j++) {
            if (!allowed(b, i, j)) continue;
            const s = Math.fround(P[r + j]! * sc);
            P[r + j] = s;
            if (s > max) max = s;
          }
          if (max === -Infinity) {
            P.fill(1 / S, r, r + S);
            blind[b * T + i] = 1;
            continue;
          }
          let sum = 0;
          for (let j = 0; j < S; j++) {
            const e = allowed(b, i, j) ? Math.exp(P[r + j]! - max) : 0;
            P[r + j] = e;
            sum += e;
          }
          for (let j = 0; j < S; j++) P[r + j] = P[r + j]! / sum;
        }
        mm(P, vt, oh, T, D, S, false, pOff, 0, 0); // O_h = P·V  [T, D]
        for (let i = 0; i < T; i++) out.set(oh.subarray(i * D, (i + 1) * D), (b * T + i) * n * D + h * D);
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
      const dO = new Float32Array(T * D), dS = new Float32Array(T * S);
      for (let b = 0; b < B; b++) {
        for (let g = 0; g < kh; g++) {
          const kOff = (b * kh + g) * S * D;
          const kt = transpose(kv.subarray(kOff, kOff + S * D), S, D); // [D, S]
          for (let h = g * rep; h < (g + 1) * rep; h++) {
            const qOff = (b * n + h) * T * D, pOff = (b * n + h) * T * S;
            for (let i = 0; i < T; i++) dO.set(gOut.subarray((b * T + i) * n * D + h * D, (b * T + i) * n * D + (h + 1) * D), i * D);
            if (dv) {
              // dV_g += Pᵀ·dO : [S, T] · ([D, T])ᵀ
              const pt = transpose(P.subarray(pOff, pOff + T * S), T, S);
              mm(pt, transpose(dO, T, D), dv, S, D, T, true, 0, 0, kOff);
            }
            if (!dq && !dk) continue;
            mm(dO, vv, dS, T, S, D, false, 0, kOff, 0); // dP = dO·Vᵀ  [T, S]
            for (let i = 0; i < T; i++) {
              const r = i * S, pr = pOff + i * S;
              if (blind[b * T + i]) { dS.fill(0, r, r + S); continue; }
              let dot = 0;
              for (let j = 0; j < S; j++) dot += P[pr + j]! * dS[r + j]!;
              for (let j = 0; j < S; j++) dS[r + j] = P[pr + j]! * (dS[r + j]! - dot) * sc;
            }
            if (dq) mm(dS, kt, dq, T, D, S, false, 0, 0, qOff); // dQ = dS·K
            if (dk) {
              // dK_g += dSᵀ·Q : [S, T] · ([D, T])ᵀ
              const qt = transpose(qv.subarray(qOff, qOff + T * D), T, D);
              mm(transpose(dS, T, S), qt, dk, S, D, T, true, 0, 0, kOff);
            }
          }
        }
      }
      return [dq, dk, dv];
    },
  }));
  return { out: o, weights };
}
