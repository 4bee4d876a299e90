/**
 * Matmul against a weight matrix, as torch.nn.functional.linear:
 * y [M, N] = x [M, K] @ W^T, W [N, K] stored as f32, f16 or bf16 words.
 *
 * The portable JavaScript kernel: 16-bit weights are widened four rows at a
 * time into a small scratch block (never the whole matrix), and each block is
 * used for every x row before moving on, so weights stream through once per
 * call. The WebAssembly SIMD kernel (lib/backend/cpu/wasm-kernels.ts) does the
 * same in registers and is used when available.
 */
import type { DType } from "./dtype.js";
import { f16ToF32Table } from "./dtype.js";

const ROWS = 4;
let scratch = new Float32Array(0);

function widenRows(w: Uint16Array, dtype: DType, start: number, count: number, dst: Float32Array): void {
  if (dtype === "f16") {
    const t = f16ToF32Table();
    for (let i = 0; i < count; i++) dst[i] = t[w[start + i]!]!;
  } else {
    const u32 = new Uint32Array(dst.buffer, dst.byteOffset, count);
    for (let i = 0; i < count; i++) u32[i] = w[start + i]! << 16;
  }
}

/**
 * y[m*N + n] = sum_k x[m*K + k] * W[n*K + k] (+ bias[n]), for rows n in [n0, n1)
 * (so callers can split N between threads).
 */
export function matmulTransposedInto(
  x: Float32Array, M: number, K: number,
  w: Float32Array | Uint16Array, dtype: DType, N: number,
  bias: Float32Array | undefined, y: Float32Array, n0 = 0, n1 = N,
): Float32Array {
  let wf: Float32Array;
  let wBase: number;
  for (let nb = n0; nb < n1; nb += ROWS) {
    const rows = Math.min(ROWS, n1 - nb);
    if (dtype === "f32") {
      wf = w as Float32Array;
      wBase = nb * K;
    } else {
      if (scratch.length < ROWS * K) scratch = new Float32Array(ROWS * K);
      widenRows(w as Uint16Array, dtype, nb * K, rows * K, scratch);
      wf = scratch;
      wBase = 0;
    }
    if (rows === ROWS) {
      const r0 = wBase, r1 = wBase + K, r2 = wBase + 2 * K, r3 = wBase + 3 * K;
      for (let m = 0; m < M; m++) {
        const xo = m * K;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (let k = 0; k < K; k++) {
          const xv = x[xo + k]!;
          a0 += xv * wf[r0 + k]!;
          a1 += xv * wf[r1 + k]!;
          a2 += xv * wf[r2 + k]!;
          a3 += xv * wf[r3 + k]!;
        }
        const yo = m * N + nb;
        if (bias) {
          y[yo] = a0 + bias[nb]!; y[yo + 1] = a1 + bias[nb + 1]!; y[yo + 2] = a2 + bias[nb + 2]!; y[yo + 3] = a3 + bias[nb + 3]!;
        } else {
          y[yo] = a0; y[yo + 1] = a1; y[yo + 2] = a2; y[yo + 3] = a3;
        }
      }
    } else {
      for (let r = 0; r < rows; r++) {
        const ro = wBase + r * K;
        for (let m = 0; m < M; m++) {
          const xo = m * K;
          let a = 0;
          for (let k = 0; k < K; k++) a += x[xo + k]! * wf[ro + k]!;
          y[m * N + nb + r] = bias ? a + bias[nb + r]! : a;
        }
      }
    }
  }
  return y;
}
