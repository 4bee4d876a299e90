/**
 * Per-token log-probabilities, entropies and top-k next tokens from a
 * forward pass's logits [B, T, V]. Position t's logits predict token t+1, so
 * token t's log-prob is read from row t-1 (and token 0 has none).
 */
import { InputError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { logSoftmaxRow, positionRow, rankOf, topKIndices } from "./math.js";

export interface TokenLogProbs {
  /** The input ids of the row, [T]. */
  ids: number[];
  /** log p(ids[t] | ids[<t]) in nats; NaN at t = 0 (nothing predicts the first token). */
  logProbs: number[];
  /** Entropy (nats) of the distribution that predicted ids[t]; NaN at t = 0. */
  entropy: number[];
  /** 0-based rank of ids[t] in that distribution; NaN at t = 0. */
  rank: number[];
  /** Entropy (nats) of the next-token distribution at t (predicting t+1), [T]. */
  nextEntropy: number[];
}

/** Validates [B, T, V] logits against one row of ids. */
function checkLogits(logits: Tensor, ids: readonly number[], batch: number): [number, number] {
  if (logits.rank !== 3) throw new InputError(`logits must be [B, T, V], got [${logits.shape.join(", ")}]`);
  const [B, T, V] = logits.shape as [number, number, number];
  if (batch < 0 || batch >= B) throw new InputError(`batch index ${batch} out of range 0..${B - 1}`);
  if (ids.length !== T) throw new InputError(`${ids.length} token ids for logits over ${T} positions (pass logitsToKeep: 0 to get every position)`);
  ids.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new InputError(`token id ${id} at position ${t} is outside the vocabulary 0..${V - 1}`);
  });
  return [T, V];
}

/** Log-prob, entropy and rank of every token of one batch row. */
export function tokenLogProbs(logits: Tensor, ids: readonly number[], batch = 0): TokenLogProbs {
  const [T] = checkLogits(logits, ids, batch);
  const res: TokenLogProbs = { ids: [...ids], logProbs: [NaN], entropy: [NaN], rank: [NaN], nextEntropy: [] };
  for (let t = 0; t < T; t++) {
    const row = positionRow(logits, batch, t);
    const lp = logSoftmaxRow(row);
    let h = 0;
    for (let i = 0; i < lp.length; i++) {
      const p = Math.exp(lp[i]!);
      if (p > 0) h -= p * lp[i]!;
    }
    res.nextEntropy.push(h);
    if (t + 1 < T) {
      res.logProbs.push(lp[ids[t + 1]!]!);
      res.entropy.push(h);
      res.rank.push(rankOf(row, ids[t + 1]!));
    }
  }
  return res;
}

export interface TopKTokens {
  ids: number[];
  probs: number[];
  logProbs: number[];
}

/** The k most likely next tokens at a position (default: the last) of one batch row. */
export function topKNextTokens(logits: Tensor, options: { k?: number; position?: number; batch?: number } = {}): TopKTokens {
  if (logits.rank !== 3) throw new InputError(`logits must be [B, T, V], got [${logits.shape.join(", ")}]`);
  const T = logits.shape[1]!;
  const pos = options.position === undefined ? T - 1 : options.position < 0 ? T + options.position : options.position;
  const row = positionRow(logits, options.batch ?? 0, pos);
  const lp = logSoftmaxRow(row);
  const ids = topKIndices(row, options.k ?? 10);
  return { ids, logProbs: ids.map((i) => lp[i]!), probs: ids.map((i) => Math.exp(lp[i]!)) };
}

/** Mean negative log-likelihood (nats/token) over the defined positions, optionally only where mask = 1. */
export function meanNll(lp: TokenLogProbs, mask?: readonly number[]): number {
  let s = 0;
  let n = 0;
  lp.logProbs.forEach((v, t) => {
    if (Number.isNaN(v) || (mask && mask[t] === 0)) return;
    s -= v;
    n++;
  });
  return n ? s / n : NaN;
}
