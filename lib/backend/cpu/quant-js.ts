/**
 * The portable (JavaScript) products for quantized weights: four rows at a
 * time are dequantized with ggml's formulas (lib/io/gguf-dequant.ts) into a
 * small scratch block, then multiplied exactly as lib/tensor/matmul.ts does
 * for float32 weights, so the result equals that kernel's on the dequantized
 * matrix. Used when the wasm kernels are off, and for the few rows (N % 4)
 * the wasm kernels leave over. The matrix is never dequantized as a whole.
 */
import { matmulTransposedInto } from "../../tensor/matmul.js";
import type { DType } from "../../tensor/dtype.js";
import { dequantizeRows, type QuantType } from "../../tensor/quantized.js";

const ROWS = 4;
let scratch = new Float32Array(0);
let rowsOut = new Float32Array(0);


/** y[m, n] = x[m] · dequant(W[n]) (+ bias[n]) for rows n in [n0, n1) of W [N, K]. */
export function matmulQuantInto(
  x: Float32Array, M: number, K: number, w: Uint8Array, type: QuantType, N: number,
  bias: Float32Array | undefined, y: Float32Array, n0 = 0, n1 = N,
): Float32Array {
  if (scratch.length < ROWS * K) scratch = new Float32Array(ROWS * K);
  if (rowsOut.length < M * ROWS) rowsOut = new Float32Array(M * ROWS);
  for (let nb = n0; nb < n1; nb += ROWS) {
    const rows = Math.min(ROWS, n1 - nb);
    dequantizeRows(type, w, K, nb, nb + rows, scratch);
    // The float32 kernel on these rows (as a [rows, K] matrix), then scattered into y's columns.
    matmulTransposedInto(x, M, K, scratch, "f32", rows, undefined, rowsOut);
    for (let m = 0; m < M; m++) {
      for (let r = 0; r < rows; r++) {
        const v = rowsOut[m * rows + r]!;
        y[m * N + nb + r] = bias ? v + bias[nb + r]! : v;
      }
    }
  }
  return y;
}

/** One linear job (linear-engine.ts's LinearJob) on the JavaScript kernels, rows [n0, n1). */
export function runJobJs(
  x: Float32Array, M: number, K: number,
  j: { w: Float32Array | Uint16Array | Uint8Array; dtype: DType; quant?: QuantType; N: number; bias?: Float32Array; y: Float32Array },
  n0 = 0, n1 = j.N,
): void {
  if (j.quant) matmulQuantInto(x, M, K, j.w as Uint8Array, j.quant, j.N, j.bias, j.y, n0, n1);
  else matmulTransposedInto(x, M, K, j.w as Float32Array | Uint16Array, j.dtype, j.N, j.bias, j.y, n0, n1);
}
