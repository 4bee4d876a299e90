/**
 * Attention on the wasm kernels, one (batch row, kv head) group at a time:
 * the query heads sharing that kv head (GQA) form R = group·T rows, so
 *   scores [R, S] = Q_rows [R, D] @ K^T   (gemm_f32, K rows read in place from the cache)
 *   masking + softmax in JavaScript (float32 results, as HF's eager softmax)
 *   out [R, D]    = P [R, S] @ V          (gemm_nn onto zeros, V rows read in place)
 * The cache tensors must live in wasm memory (kvAppend allocates them there),
 * head_dim must be a multiple of 16 and the memories must have room for the
 * scores; otherwise the caller falls back to the JavaScript kernel. Keys and
 * values may live in two different memories (the engine spreads its tensors
 * over several): the scores are then computed in the keys' memory and the
 * weights copied into the values' memory for the second product.
 */
import type { AttentionShapes } from "../../tensor/ops.js";
import type { KernelExports } from "./wasm-kernels.js";

export interface WasmAttentionContext {
  kernels: KernelExports;
  buffer(): ArrayBufferLike;
  /** A workspace of at least `bytes`, or undefined when the memory cannot grow that far. */
  scratch(bytes: number): number | undefined;
  ptrOf(view: Float32Array): number | undefined;
}

/** Attention with the keys in `ctx`'s memory and the values in `vCtx`'s (often the same). */
export function wasmAttention(
  ctx: WasmAttentionContext, vCtx: WasmAttentionContext,
  q: Float32Array, kd: Float32Array, vd: Float32Array, s: AttentionShapes, scale: number,
  queryOffset: number, keyMask: Uint8Array | undefined, out: Float32Array, weights: Float32Array | undefined,
): boolean {
  const { B, n, k, T, S, D, kvHeadStride } = s;
  const kPtr = ctx.ptrOf(kd);
  const vPtr = vCtx.ptrOf(vd);
  if (kPtr === undefined || vPtr === undefined || D % 16 !== 0) return false;
  const group = n / k;
  const R = group * T;
  const S4 = S - (S % 4);
  const split = vCtx !== ctx;
  const base = ctx.scratch(4 * (R * D + R * S + (split ? 0 : R * D)));
  const vBase = split ? vCtx.scratch(4 * (R * S + R * D)) : base;
  if (base === undefined || vBase === undefined) return false;
  // q and the scores in the keys' memory; the weights (the scores, or their copy) and out in the values'
  const qW = base, sW = base + 4 * R * D, pW = split ? vBase : sW, oW = pW + 4 * R * S;
  const buf = ctx.buffer();
  const qView = new Float32Array(buf, qW, R * D);
  const sView = new Float32Array(buf, sW, R * S);
  const pView = split ? new Float32Array(vCtx.buffer(), pW, R * S) : sView;
  const oView = new Float32Array(vCtx.buffer(), oW, R * D);
  for (let b = 0; b < B; b++) {
    for (let kh = 0; kh < k; kh++) {
      const headBase = (b * k + kh) * kvHeadStride; // element offset of this kv head in the cache
      qView.set(q.subarray((b * n + kh * group) * T * D, (b * n + kh * group) * T * D + R * D));
      ctx.kernels.gemm_f32(qW, R, kPtr + 4 * headBase, D, sW, S, S4);
      for (let r = 0; r < R; r++) {
        for (let j = S4; j < S; j++) { // the last S % 4 keys
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qView[r * D + d]! * kd[headBase + j * D + d]!;
          sView[r * S + j] = dot;
        }
      }
      for (let r = 0; r < R; r++) {
        const i = r % T;
        const row = r * S;
        const last = Math.min(S - 1, queryOffset + i);
        const maskRow = keyMask ? b * S : -1;
        // Keys after `last` are causally masked: their weights are exactly 0, so the
        // loops stop there (half the work in a prefill, same numbers).
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          if (maskRow >= 0 && keyMask![maskRow + j] === 0) {
            sView[row + j] = -Infinity;
            continue;
          }
          const sc = Math.fround(sView[row + j]! * scale);
          sView[row + j] = sc;
          if (sc > max) max = sc;
        }
        if (max === -Infinity) {
          sView.fill(1 / S, row, row + S); // no key allowed: uniform, as HF's eager attention
        } else {
          let sum = 0;
          for (let j = 0; j <= last; j++) {
            const e = sView[row + j] === -Infinity ? 0 : Math.exp(sView[row + j]! - max);
            sView[row + j] = e;
            sum += e;
          }
          for (let j = 0; j <= last; j++) sView[row + j] = sView[row + j]! / sum;
          sView.fill(0, row + last + 1, row + S);
        }
      }
      // The group's query heads are consecutive in P [B, n, T, S]: its R rows are one block there.
      if (weights) weights.set(sView, (b * n + kh * group) * T * S);
      if (split) pView.set(sView);
      oView.fill(0);
      vCtx.kernels.gemm_nn(pW, R, S, vPtr + 4 * headBase, D, 1, oW);
      for (let r = 0; r < R; r++) {
        const i = r % T;
        const h = kh * group + Math.floor(r / T);
        out.set(oView.subarray(r * D, (r + 1) * D), (b * T + i) * n * D + h * D);
      }
    }
  }
  return true;
}
