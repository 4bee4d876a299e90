/**
 * The logit lens: read each layer's residual stream as if it were the last,
 * by applying the model's own final RMSNorm and lm_head to it. The math runs
 * on the model's backend with the model's weights, so the lens at the last
 * layer reproduces the model's logits exactly (same ops, same order).
 */
import { InputError } from "../errors.js";
import type { DeviceTensor } from "../backend/backend.js";
import type { LlamaForCausalLM } from "../model/causal-lm.js";
import type { Tensor } from "../tensor/tensor.js";
import { ActivationCache } from "./cache.js";
import { summarizeLens, type LensOptions, type LogitLensResult } from "./lens-summary.js";
import { cloneTensor } from "./math.js";
import { runWithCache, toForwardArgs, type RunInput } from "./run.js";

/** The parts of a causal LM the lens needs. */
export type LensModel = Pick<LlamaForCausalLM, "config" | "forward" | "backend" | "model" | "lm_head">;

/**
 * Vocabulary logits [B, K, V] of a residual-stream tensor [B, T, hidden]
 * through the final norm and lm_head, for the given positions (default all).
 */
export async function residualToLogits(model: LensModel, resid: Tensor, positions?: readonly number[]): Promise<Tensor> {
  const be = model.backend;
  if (resid.rank !== 3 || resid.shape[2] !== model.config.hidden_size) {
    throw new InputError(`residualToLogits: expected [B, T, ${model.config.hidden_size}], got [${resid.shape.join(", ")}]`);
  }
  const [B, T] = resid.shape as [number, number, number];
  // upload() may take over the array's storage: hand it a copy, never the cache's tensor.
  let x: DeviceTensor = be.upload(cloneTensor(resid));
  if (positions && !(positions.length === T && positions.every((p, i) => p === i))) {
    for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= T) throw new InputError(`residualToLogits: position ${p} out of range 0..${T - 1}`);
    const index = new Int32Array(B * positions.length);
    for (let b = 0; b < B; b++) positions.forEach((p, j) => (index[b * positions.length + j] = p));
    const sel = be.selectPositions(x, index, positions.length);
    be.release(x);
    x = sel;
  }
  const normed = model.model.norm.forward(be, x);
  be.release(x);
  const logits = model.lm_head.forward(be, normed);
  be.release(normed);
  const host = await be.read(logits);
  be.release(logits);
  return host;
}

export interface LogitLensOptions extends Omit<LensOptions, "labels" | "logitPositions"> {
  /** Include the embeddings as the first row (default true). */
  includeEmbed?: boolean;
  /** The token ids of the cached row; required when `source` is a cache. */
  inputIds?: readonly number[];
}

/**
 * Logit lens over the embeddings and every layer's resid_post. `source` is a
 * cache from runWithCache (it needs "embed" and "layers.*.resid_post") or an
 * input to run. Only the chosen positions go through lm_head, one layer at a
 * time, so a large vocabulary does not need L × T × V floats at once.
 */
export async function logitLens(model: LensModel, source: ActivationCache | RunInput, options: LogitLensOptions = {}): Promise<LogitLensResult> {
  let cache: ActivationCache;
  let inputIds: number[];
  const batch = options.batch ?? 0;
  if (source instanceof ActivationCache) {
    cache = source;
    const ids = options.inputIds;
    if (!ids) throw new InputError("logitLens on a cache needs `inputIds` (the tokens of the cached row)");
    inputIds = [...ids];
  } else {
    const args = toForwardArgs(source);
    if (!args.inputIds) throw new InputError("logitLens needs token ids (not inputsEmbeds) to label positions");
    inputIds = args.inputIds[batch] ?? [];
    ({ cache } = await runWithCache(model, args, { names: (n) => n === "embed" || n.endsWith(".resid_post") }));
  }
  const { labels, tensors } = cache.accumulatedResid();
  const T = tensors[0]!.shape[1]!;
  if (inputIds.length !== T) throw new InputError(`logitLens: ${inputIds.length} input ids for ${T} cached positions`);
  const positions = options.positions ? [...options.positions] : Array.from({ length: T }, (_, t) => t);
  const start = options.includeEmbed === false ? 1 : 0;
  const rows: LogitLensResult[] = [];
  for (let i = start; i < tensors.length; i++) {
    const logits = await residualToLogits(model, tensors[i]!, positions);
    // Summarize right away and drop the [B, K, V] logits before the next layer.
    rows.push(summarizeLens([logits], inputIds, { ...options, labels: [labels[i]!], positions, logitPositions: positions }));
  }
  return mergeLensRows(rows);
}

/** Stacks single-layer lens results (same positions) into one. */
function mergeLensRows(rows: LogitLensResult[]): LogitLensResult {
  const first = rows[0]!;
  const res: LogitLensResult = {
    layerLabels: rows.map((r) => r.layerLabels[0]!),
    positions: first.positions,
    inputIds: first.inputIds,
    k: first.k,
    topIds: rows.map((r) => r.topIds[0]!),
    topProbs: rows.map((r) => r.topProbs[0]!),
  };
  if (first.targetIds) {
    res.targetIds = first.targetIds;
    res.targetProbs = rows.map((r) => r.targetProbs![0]!);
    res.targetRanks = rows.map((r) => r.targetRanks![0]!);
  }
  return res;
}
