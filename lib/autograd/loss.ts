/**
 * Cross-entropy losses, as torch's `F.cross_entropy(..., ignore_index=-100)`
 * with mean reduction over the rows that are not ignored, and HF's causal-LM
 * loss built on it (labels shifted left by one).
 */
import { LlamaError, InputError } from "../errors.js";
import { Var, result } from "./var.js";

export const IGNORE_INDEX = -100;

/**
 * Mean cross-entropy of logits [..., V] (rows = all leading dims) against one
 * target per row; rows whose target is -100 are ignored. When every row is
 * ignored the loss is NaN, as torch's. Backward: (softmax − onehot) / count.
 */
export function crossEntropy(logits: Var, targets: ArrayLike<number>): Var {
  const V = logits.shape[logits.shape.length - 1]!;
  const rows = logits.size / V;
  if (targets.length !== rows) throw new LlamaError(`crossEntropy: ${targets.length} targets for ${rows} rows of logits`);
  const tg = Int32Array.from(targets);
  const x = logits.value;
  const lse = new Float64Array(rows); // log-sum-exp per row, saved for backward
  let total = 0, count = 0;
  for (let r = 0; r < rows; r++) {
    const t = tg[r]!;
    if (t === IGNORE_INDEX) continue;
    if (!(t >= 0 && t < V)) throw new InputError(`crossEntropy: target ${t} at row ${r} is outside 0..${V - 1} (and is not the ignore index -100)`);
    const o = r * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (x[o + v]! > max) max = x[o + v]!;
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(x[o + v]! - max);
    lse[r] = max + Math.log(sum);
    total += lse[r]! - x[o + t]!;
    count++;
  }
  const loss = new Float32Array([count ? total / count : NaN]);
  return result(loss, [], [logits], () => ({
    name: "crossEntropy",
    inputs: [logits],
    backward: (g) => {
      const dx = new Float32Array(logits.size);
      if (count === 0) return [dx];
      const f = g[0]! / count;
      for (let r = 0; r < rows; r++) {
        const t = tg[r]!;
        if (t === IGNORE_INDEX) continue;
        const o = r * V, l = lse[r]!;
        for (let v = 0; v < V; v++) dx[o + v] = Math.exp(x[o + v]! - l) * f;
        dx[o + t] = dx[o + t]! - f;
      }
      return [dx];
    },
  }));
}

/**
 * Softmax statistics of listed rows of x [*, V] (row rows[u] at rows[u]·V), in float64: stats [R, 5]
 * holds per row its max, argmax (the first), Σ x, z = Σ exp(x − max) and Σ exp(x − max)·(x − max);
 * with `probs` (shaped like x) the listed rows also get the softmax, each exp rounded to float32 when
 * stored, then divided by z. A backend may run it on faster kernels with the same numbers
 * (the CPU tape's wasm: lib/backend/cpu/wasm-softmax-rows.ts).
 */
export type SoftmaxRowsKernel = (x: Float32Array, V: number, rows: Int32Array, probs: Float32Array | undefined) => Float64Array;

/** SoftmaxRowsKernel in JavaScript. */
export const jsSoftmaxRows: SoftmaxRowsKernel = (x, V, rows, probs) => {
  const stats = new Float64Array(rows.length * 5);
  rows.forEach((r, u) => {
    const o = r * V;
    let max = -Infinity, arg = 0, sumLogits = 0;
    for (let v = 0; v < V; v++) {
      const xv = x[o + v]!;
      sumLogits += xv;
      if (xv > max) { max = xv; arg = v; }
    }
    let z = 0, weightedSum = 0;
    for (let v = 0; v < V; v++) {
      const d = x[o + v]! - max;
      const e = Math.exp(d);
      if (probs) probs[o + v] = e;
      z += e;
      weightedSum += e * d;
    }
    if (probs) for (let v = 0; v < V; v++) probs[o + v] = probs[o + v]! / z;
    stats.set([max, arg, sumLogits, z, weightedSum], 5 * u);
  });
  return stats;
};

/**
 * The targets of HF's causal-LM loss for logits [B, T, V]: row (b, t) predicts
 * labels[b][t + 1]; the last position of each row predicts nothing (-100).
 */
export function shiftedTargets(labels: readonly (readonly number[])[], seqLen: number): Int32Array {
  const out = new Int32Array(labels.length * seqLen).fill(IGNORE_INDEX);
  labels.forEach((row, b) => {
    if (row.length !== seqLen) throw new InputError(`labels row ${b} has ${row.length} entries, expected the sequence length ${seqLen}`);
    for (let t = 0; t + 1 < seqLen; t++) out[b * seqLen + t] = row[t + 1]!;
  });
  return out;
}

/** HF's ForCausalLMLoss: mean cross-entropy of logits [B, T, V] against labels shifted left by one. */
export function causalLMLoss(logits: Var, labels: readonly (readonly number[])[]): Var {
  const [B, T] = logits.shape as [number, number, number];
  if (labels.length !== B) throw new InputError(`labels have ${labels.length} rows, logits ${B}`);
  return crossEntropy(logits, shiftedTargets(labels, T));
}
