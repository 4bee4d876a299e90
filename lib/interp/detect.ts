/**
 * Head detection on a model: run a probe sequence, capture every layer's
 * attention pattern, score each head as a previous-token, duplicate-token
 * and induction head (lib/interp/heads.ts), and rank them.
 */
import type { Tensor } from "../tensor/tensor.js";
import { runWithCache, type HookableModel } from "./run.js";
import { rankHeads, summarizeHeads, type HeadSummaries, type RankedHead } from "./heads.js";

export interface HeadDetection {
  /** The probe's token ids. */
  ids: number[];
  summaries: HeadSummaries;
  /** Heads ranked by each detector, best first. */
  top: { previousToken: RankedHead[]; duplicateToken: RankedHead[]; induction: RankedHead[] };
  /** Every layer's pattern [1, heads, T, T] (for figures). */
  patterns: Tensor[];
  /** The forward pass's logits [1, T, V] (e.g. to measure in-context loss on the repeat). */
  logits: Tensor;
}

/** Runs `ids` through the model and scores every head. */
export async function detectHeads(model: HookableModel, ids: readonly number[], k = 5): Promise<HeadDetection> {
  const { cache, logits } = await runWithCache(model, [ids], { names: "layers.*.self_attn.pattern" });
  const patterns = cache.allLayers("self_attn.pattern");
  const summaries = summarizeHeads(patterns, ids);
  return {
    ids: [...ids],
    summaries,
    top: {
      previousToken: rankHeads(summaries.previousToken, k),
      duplicateToken: rankHeads(summaries.duplicateToken, k),
      induction: rankHeads(summaries.induction, k),
    },
    patterns,
    logits,
  };
}
