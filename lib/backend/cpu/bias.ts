/**
 * The bias add both linear engines share (its own file so that wasm-engine.ts
 * need not import linear-engine.ts, which imports it: no import cycle).
 */

/** Adds bias [N] to every row of y [M, N]. */
export function addBias(y: Float32Array, bias: Float32Array | undefined, M: number, N: number): void {
  if (!bias) return;
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) { const i = m * N + n; y[i] = y[i]! + bias[n]!; }
}
