/**
 * Row math for token selection: argmax, softmax, log-softmax, multinomial
 * draws and top-k selection over one row of scores. Rows are float32 views
 * (`scores.subarray(r * V, (r + 1) * V)`); nothing here allocates per element.
 */
import { InputError } from "../errors.js";
import type { SeededRng } from "./rng.js";

/** Index of the largest value; the first one on ties (as torch.argmax). NaN is never chosen over a number. */
export function argmax(row: Float32Array): number {
  let best = 0;
  let bestVal = -Infinity;
  let seen = false;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (!seen || v > bestVal) {
      if (v !== v) continue; // NaN
      best = i;
      bestVal = v;
      seen = true;
    }
  }
  return best;
}

/** softmax(row) in float64 (exact enough to be a reference for torch's float32). Entries at -inf get 0. */
export function softmax(row: Float32Array, out: Float64Array = new Float64Array(row.length)): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  if (max === -Infinity || max !== max) {
    throw new InputError("generate: every token has probability 0 (all scores are -inf or NaN) — check the logits processors");
  }
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const e = Math.exp(row[i]! - max);
    out[i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < row.length; i++) out[i]! *= inv;
  return out;
}

/**
 * log_softmax(row) written into `out` as float32, computed as torch does:
 * x - max - log(sum(exp(x - max))), each step rounded to float32.
 */
export function logSoftmaxInto(row: Float32Array, out: Float32Array): void {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const logSum = Math.fround(Math.log(sum));
  for (let i = 0; i < row.length; i++) out[i] = Math.fround(row[i]! - max) - logSum;
}

/**
 * One draw from the categorical distribution `probs` (non-negative, need not
 * sum to 1) by inverse CDF with one uniform from `rng`. Zero-probability
 * entries are never drawn.
 */
export function sampleCategorical(probs: ArrayLike<number>, rng: SeededRng): number {
  let total = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (p > 0) {
      total += p;
      last = i;
    }
  }
  if (last < 0 || !Number.isFinite(total)) {
    throw new InputError("generate: cannot sample, the distribution has no positive finite probability");
  }
  const u = rng.nextFloat() * total;
  let cum = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (p <= 0) continue;
    cum += p;
    if (cum > u) return i;
  }
  return last; // u rounded to within the last ulp of total
}

/**
 * `k` draws without replacement, each proportional to the remaining mass
 * (the distribution torch.multinomial(probs, k, replacement=False) samples).
 * `probs` is modified (drawn entries are zeroed).
 */
export function sampleWithoutReplacement(probs: Float64Array, k: number, rng: SeededRng): number[] {
  const picks: number[] = [];
  for (let j = 0; j < k; j++) {
    const i = sampleCategorical(probs, rng);
    picks.push(i);
    probs[i] = 0;
  }
  return picks;
}

/**
 * Indices of the k largest values, largest first; ties keep the lower index
 * first (torch.topk's order on CPU for the sizes we use). O(n log k).
 */
export function topKIndices(values: ArrayLike<number>, k: number): number[] {
  k = Math.min(k, values.length);
  // A small sorted buffer (descending) is faster than a heap for k ≤ a few dozen.
  const idx: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v !== v) continue;
    if (idx.length === k && !(v > values[idx[k - 1]!]!)) continue;
    let pos = idx.length === k ? k - 1 : idx.length;
    while (pos > 0 && v > values[idx[pos - 1]!]!) pos--;
    idx.splice(pos, 0, i);
    if (idx.length > k) idx.pop();
  }
  return idx;
}

/** The k-th largest value (1-based k) of a row, for top-k filtering. */
export function kthLargest(row: Float32Array, k: number, scratch?: Float32Array): number {
  const copy = scratch ?? new Float32Array(row.length);
  copy.set(row);
  copy.sort(); // ascending; NaN sorts last in typed arrays
  let n = copy.length;
  while (n > 0 && copy[n - 1] !== copy[n - 1]) n--; // drop NaNs
  return copy[Math.max(0, n - k)]!;
}
