/**
 * The host-side half of the logit lens: given the vocabulary logits that each
 * layer's residual stream would produce ([B, T, V] per layer, computed by
 * `logitLens` through the model's own final norm and lm_head), keep the top-k
 * tokens and the probability/rank of a chosen token per layer and position.
 * Split out so it can be tested on synthetic logits.
 */
import { InputError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { logSoftmaxRow, positionRow, rankOf, topKIndices } from "./math.js";

/** Which token's probability to follow: one id everywhere, one id per shown position, or the actual next input token. */
export type LensTarget = number | readonly number[] | "next";

export interface LensOptions {
  /** Row labels (default "layer i"). */
  labels?: readonly string[];
  /** Top-k kept per cell (default 5). */
  k?: number;
  target?: LensTarget;
  /** Positions to keep (default all, or `logitPositions`). */
  positions?: readonly number[];
  /**
   * When the logits were computed for some positions only: the absolute
   * position of each row of their T axis (so [B, K, V] with K = this length).
   */
  logitPositions?: readonly number[];
  batch?: number;
}

export interface LogitLensResult {
  /** One label per row: e.g. "embed", "layer 0 (resid_post)", … */
  layerLabels: string[];
  /** The absolute positions shown (columns). */
  positions: number[];
  /** Every input id of the row (index with `positions`). */
  inputIds: number[];
  k: number;
  /** [layer][column][k] top token ids and their probabilities. */
  topIds: number[][][];
  topProbs: number[][][];
  /** Followed token per column (-1 where undefined, e.g. "next" at the last position). */
  targetIds?: number[];
  /** [layer][column] probability and 0-based rank of the followed token (NaN where undefined). */
  targetProbs?: number[][];
  targetRanks?: number[][];
}

/** Summarizes per-layer vocabulary logits [B, T, V] into a LogitLensResult. */
export function summarizeLens(layerLogits: readonly Tensor[], inputIds: readonly number[], options: LensOptions = {}): LogitLensResult {
  if (!layerLogits.length) throw new InputError("logit lens: no layers given");
  const first = layerLogits[0]!;
  if (first.rank !== 3) throw new InputError(`logit lens: logits must be [B, T, V], got [${first.shape.join(", ")}]`);
  const rows = first.shape[1]!;
  const V = first.shape[2]!;
  const T = inputIds.length;
  const logitPositions = options.logitPositions ? [...options.logitPositions] : undefined;
  if (logitPositions) {
    if (logitPositions.length !== rows) throw new InputError(`logit lens: ${logitPositions.length} logit positions for logits over ${rows} rows`);
  } else if (rows !== T) {
    throw new InputError(`logit lens: ${T} input ids for logits over ${rows} positions`);
  }
  const rowOf = new Map<number, number>((logitPositions ?? Array.from({ length: T }, (_, t) => t)).map((p, i) => [p, i]));
  layerLogits.forEach((l, i) => {
    if (l.shape.join() !== first.shape.join()) throw new InputError(`logit lens: layer ${i} logits [${l.shape.join(", ")}] differ from layer 0's [${first.shape.join(", ")}]`);
  });
  const batch = options.batch ?? 0;
  const k = Math.min(options.k ?? 5, V);
  const positions = options.positions ? [...options.positions] : logitPositions ?? Array.from({ length: T }, (_, t) => t);
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0 || p >= T) throw new InputError(`logit lens: position ${p} out of range 0..${T - 1}`);
    if (!rowOf.has(p)) throw new InputError(`logit lens: position ${p} was not computed (have ${[...rowOf.keys()].join(", ")})`);
  }
  const labels = options.labels ? [...options.labels] : layerLogits.map((_, i) => `layer ${i}`);
  if (labels.length !== layerLogits.length) throw new InputError(`logit lens: ${labels.length} labels for ${layerLogits.length} layers`);

  let targetIds: number[] | undefined;
  const target = options.target;
  if (target === "next") targetIds = positions.map((p) => (p + 1 < T ? inputIds[p + 1]! : -1));
  else if (typeof target === "number") targetIds = positions.map(() => target);
  else if (target) {
    if (target.length !== positions.length) throw new InputError(`logit lens: ${target.length} target ids for ${positions.length} positions`);
    targetIds = [...target];
  }
  targetIds?.forEach((id) => {
    if (id !== -1 && (!Number.isInteger(id) || id < 0 || id >= V)) throw new InputError(`logit lens: target token id ${id} is outside the vocabulary 0..${V - 1}`);
  });

  const res: LogitLensResult = { layerLabels: labels, positions, inputIds: [...inputIds], k, topIds: [], topProbs: [] };
  if (targetIds) Object.assign(res, { targetIds, targetProbs: [], targetRanks: [] });
  const lp = new Float64Array(V);
  for (const logits of layerLogits) {
    const ids: number[][] = [];
    const probs: number[][] = [];
    const tProbs: number[] = [];
    const tRanks: number[] = [];
    positions.forEach((p, col) => {
      const row = positionRow(logits, batch, rowOf.get(p)!);
      logSoftmaxRow(row, lp);
      const top = topKIndices(row, k);
      ids.push(top);
      probs.push(top.map((i) => Math.exp(lp[i]!)));
      if (targetIds) {
        const id = targetIds[col]!;
        tProbs.push(id < 0 ? NaN : Math.exp(lp[id]!));
        tRanks.push(id < 0 ? NaN : rankOf(row, id));
      }
    });
    res.topIds.push(ids);
    res.topProbs.push(probs);
    if (targetIds) {
      res.targetProbs!.push(tProbs);
      res.targetRanks!.push(tRanks);
    }
  }
  return res;
}
