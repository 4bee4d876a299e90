/**
 * Small host-side float32 helpers for the analyses (softmax over a vocab row,
 * top-k, slicing a head out of a [B, heads, T, X] tensor). The heavy math
 * (norms, matmuls over the vocab) goes through the model's backend so that it
 * is bit-identical to the forward pass; these are the cheap reductions.
 */
import { InputError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { mulberry32 } from "../mulberry32.js";

/** log-softmax of one row (numerically stable: subtract the max, sum in float64). */
export function logSoftmaxRow(row: ArrayLike<number>, out: Float64Array = new Float64Array(row.length)): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lse;
  return out;
}

/** Entropy in nats of the softmax of one row of logits. */
export function entropyOfLogits(row: ArrayLike<number>): number {
  const lp = logSoftmaxRow(row);
  let h = 0;
  for (let i = 0; i < lp.length; i++) {
    const p = Math.exp(lp[i]!);
    if (p > 0) h -= p * lp[i]!;
  }
  return h;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topKIndices(row: ArrayLike<number>, k: number): number[] {
  const n = row.length;
  const kk = Math.max(0, Math.min(k, n));
  // A small sorted buffer: O(n·k) worst case, fine for k ≪ n (k ≤ ~50 in practice).
  const idx: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = row[i]!;
    if (idx.length === kk && !(v > row[idx[kk - 1]!]!)) continue;
    let pos = idx.length;
    while (pos > 0 && v > row[idx[pos - 1]!]!) pos--;
    idx.splice(pos, 0, i);
    if (idx.length > kk) idx.pop();
  }
  return idx;
}

/** 0-based rank of `index` in `row` (0 = the largest; ties counted in the row's favour of lower indices). */
export function rankOf(row: ArrayLike<number>, index: number): number {
  const v = row[index]!;
  let rank = 0;
  for (let i = 0; i < row.length; i++) {
    const w = row[i]!;
    if (w > v || (w === v && i < index)) rank++;
  }
  return rank;
}

/**
 * One [T, X] slab of a [B, heads, T, X] tensor (a head's pattern or z), as a
 * view on the tensor's float32 data (no copy for f32 tensors).
 */
export function headSlab(t: Tensor, batch: number, head: number): Float32Array {
  if (t.rank !== 4) throw new InputError(`expected a [B, heads, T, X] tensor, got [${t.shape.join(", ")}]`);
  const [B, H, T, X] = t.shape as [number, number, number, number];
  if (batch < 0 || batch >= B) throw new InputError(`batch index ${batch} out of range 0..${B - 1}`);
  if (head < 0 || head >= H) throw new InputError(`head index ${head} out of range 0..${H - 1}`);
  const size = T * X;
  const off = (batch * H + head) * size;
  return t.toFloat32().subarray(off, off + size);
}

/** Row `pos` of batch `b` of a [B, T, X] tensor, as a view. */
export function positionRow(t: Tensor, batch: number, pos: number): Float32Array {
  if (t.rank !== 3) throw new InputError(`expected a [B, T, X] tensor, got [${t.shape.join(", ")}]`);
  const [B, T, X] = t.shape as [number, number, number];
  if (batch < 0 || batch >= B) throw new InputError(`batch index ${batch} out of range 0..${B - 1}`);
  if (pos < 0 || pos >= T) throw new InputError(`position ${pos} out of range 0..${T - 1}`);
  const off = (batch * T + pos) * X;
  return t.toFloat32().subarray(off, off + X);
}

/** A seeded PRNG (mulberry32), so detector probes are reproducible. */
export function seededRandom(seed: number): () => number {
  return mulberry32(seed);
}

/** A copy of a float tensor as f32 (hooks that edit values must not write into the model's buffers). */
export function cloneTensor(t: Tensor): Tensor {
  return new Tensor(Float32Array.from(t.toFloat32()), t.shape, "f32");
}
