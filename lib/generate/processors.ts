/**
 * Logits processors and warpers with HF transformers' semantics (names and
 * order as in `GenerationMixin._get_logits_processor`, transformers 5.17):
 *
 *   repetition_penalty → min_length → min_new_tokens → (sampling only:)
 *   temperature → top_k → top_p → min_p
 *
 * Each one rewrites a [rows, V] float32 block of scores in place. Arithmetic
 * is float32 where torch's is (products and quotients are rounded with
 * Math.fround), so processed scores match HF's to the last bit or two.
 */
import { ConfigError } from "../errors.js";
import { kthLargest, softmax } from "./sampling.js";

export interface LogitsProcessor {
  readonly name: string;
  /**
   * `inputIds`: the current sequence of each row (prompt + generated so far);
   * `scores`: [rows, vocabSize] float32, rewritten in place.
   */
  apply(inputIds: readonly (readonly number[])[], scores: Float32Array, vocabSize: number): void;
}

/** Applies processors in order. */
export function applyProcessors(
  processors: readonly LogitsProcessor[],
  inputIds: readonly (readonly number[])[],
  scores: Float32Array,
  vocabSize: number,
): void {
  for (const p of processors) p.apply(inputIds, scores, vocabSize);
}

/**
 * HF RepetitionPenaltyLogitsProcessor: every token id present in the row's
 * sequence (prompt included, padding included — HF gathers over all of
 * input_ids) gets score*penalty if negative, score/penalty otherwise.
 */
export class RepetitionPenaltyProcessor implements LogitsProcessor {
  readonly name = "repetition_penalty";
  private readonly penalty32: number;
  constructor(readonly penalty: number) {
    if (!(penalty > 0) || !Number.isFinite(penalty)) {
      throw new ConfigError(`repetition_penalty must be a strictly positive number, got ${penalty}`);
    }
    this.penalty32 = Math.fround(penalty);
  }
  apply(inputIds: readonly (readonly number[])[], scores: Float32Array, V: number): void {
    const seen = new Uint8Array(V);
    for (let r = 0; r < inputIds.length; r++) {
      const row = scores.subarray(r * V, (r + 1) * V);
      const ids = inputIds[r]!;
      for (const id of ids) {
        if (id < 0 || id >= V || seen[id]) continue;
        seen[id] = 1;
        const s = row[id]!;
        row[id] = s < 0 ? s * this.penalty32 : s / this.penalty32;
      }
      for (const id of ids) if (id >= 0 && id < V) seen[id] = 0;
    }
  }
}

function eosList(eos: readonly number[], what: string): readonly number[] {
  if (eos.length === 0) throw new ConfigError(`${what} needs an eos_token_id`);
  return eos;
}

/** HF MinLengthLogitsProcessor: EOS scores are -inf while the whole sequence is shorter than minLength. */
export class MinLengthProcessor implements LogitsProcessor {
  readonly name = "min_length";
  constructor(readonly minLength: number, readonly eosTokenIds: readonly number[]) {
    if (!Number.isInteger(minLength) || minLength < 0) throw new ConfigError(`min_length must be a non-negative integer, got ${minLength}`);
    eosList(eosTokenIds, "min_length");
  }
  apply(inputIds: readonly (readonly number[])[], scores: Float32Array, V: number): void {
    const curLen = inputIds[0]?.length ?? 0;
    if (curLen >= this.minLength) return;
    suppress(scores, inputIds.length, V, this.eosTokenIds);
  }
}

/** HF MinNewTokensLengthLogitsProcessor: EOS scores are -inf until minNewTokens tokens follow the prompt. */
export class MinNewTokensProcessor implements LogitsProcessor {
  readonly name = "min_new_tokens";
  constructor(readonly promptLength: number, readonly minNewTokens: number, readonly eosTokenIds: readonly number[]) {
    if (!Number.isInteger(minNewTokens) || minNewTokens < 0) {
      throw new ConfigError(`min_new_tokens must be a non-negative integer, got ${minNewTokens}`);
    }
    eosList(eosTokenIds, "min_new_tokens");
  }
  apply(inputIds: readonly (readonly number[])[], scores: Float32Array, V: number): void {
    const newTokens = (inputIds[0]?.length ?? 0) - this.promptLength;
    if (newTokens >= this.minNewTokens) return;
    suppress(scores, inputIds.length, V, this.eosTokenIds);
  }
}

/** The warpers' min_tokens_to_keep (top-p, min-p): a positive integer, as HF requires. */
function checkMinTokensToKeep(minTokensToKeep: number): void {
  if (!Number.isInteger(minTokensToKeep) || minTokensToKeep < 1) {
    throw new ConfigError(`min_tokens_to_keep must be a positive integer, got ${minTokensToKeep}`);
  }
}

function suppress(scores: Float32Array, rows: number, V: number, ids: readonly number[]): void {
  for (let r = 0; r < rows; r++) for (const id of ids) if (id >= 0 && id < V) scores[r * V + id] = -Infinity;
}

/** HF TemperatureLogitsWarper: scores / temperature. */
export class TemperatureWarper implements LogitsProcessor {
  readonly name = "temperature";
  private readonly t32: number;
  constructor(readonly temperature: number) {
    if (!(temperature > 0) || !Number.isFinite(temperature)) {
      throw new ConfigError(
        `temperature must be a strictly positive number, got ${temperature}` +
          (temperature === 0 ? " (for greedy decoding set doSample false)" : ""),
      );
    }
    this.t32 = Math.fround(temperature);
  }
  apply(_ids: readonly (readonly number[])[], scores: Float32Array): void {
    for (let i = 0; i < scores.length; i++) scores[i] = scores[i]! / this.t32;
  }
}

/**
 * HF TopKLogitsWarper: keeps every token whose score is ≥ the k-th largest
 * (so ties at the boundary all survive); k = max(topK, minTokensToKeep).
 */
export class TopKWarper implements LogitsProcessor {
  readonly name = "top_k";
  readonly k: number;
  constructor(topK: number, readonly minTokensToKeep = 1) {
    if (!Number.isInteger(topK) || topK <= 0) throw new ConfigError(`top_k must be a strictly positive integer, got ${topK}`);
    this.k = Math.max(topK, minTokensToKeep);
  }
  apply(ids: readonly (readonly number[])[], scores: Float32Array, V: number): void {
    const k = Math.min(this.k, V);
    const scratch = new Float32Array(V);
    for (let r = 0; r < ids.length; r++) {
      const row = scores.subarray(r * V, (r + 1) * V);
      const threshold = kthLargest(row, k, scratch);
      for (let i = 0; i < V; i++) if (row[i]! < threshold) row[i] = -Infinity;
    }
  }
}

/**
 * HF TopPLogitsWarper: sort ascending, remove the low tokens whose cumulative
 * probability is ≤ 1 - top_p, always keeping the minTokensToKeep most likely.
 * (torch sums the cumulative probability in double and rounds it to float32;
 * so do we, from a float64 softmax.)
 */
export class TopPWarper implements LogitsProcessor {
  readonly name = "top_p";
  private readonly cut32: number;
  constructor(readonly topP: number, readonly minTokensToKeep = 1) {
    if (!(topP >= 0 && topP <= 1)) throw new ConfigError(`top_p must be in [0, 1], got ${topP}`);
    checkMinTokensToKeep(minTokensToKeep);
    this.cut32 = Math.fround(1 - topP);
  }
  apply(ids: readonly (readonly number[])[], scores: Float32Array, V: number): void {
    const order = new Uint32Array(V);
    const probs = new Float64Array(V);
    for (let r = 0; r < ids.length; r++) {
      const row = scores.subarray(r * V, (r + 1) * V);
      for (let i = 0; i < V; i++) order[i] = i;
      // ascending by score; ties by index (stable order)
      order.sort((a, b) => row[a]! - row[b]! || a - b);
      softmax(row, probs);
      let cum = 0;
      const removable = V - this.minTokensToKeep; // the last minTokensToKeep (most likely) always stay
      for (let j = 0; j < removable; j++) {
        const i = order[j]!;
        cum += probs[i]!;
        if (Math.fround(cum) <= this.cut32) row[i] = -Infinity;
        else break; // cumulative sums only grow
      }
    }
  }
}

/**
 * HF MinPLogitsWarper: removes tokens whose probability is below
 * min_p × (probability of the most likely token), keeping the top
 * minTokensToKeep.
 */
export class MinPWarper implements LogitsProcessor {
  readonly name = "min_p";
  private readonly minP32: number;
  constructor(readonly minP: number, readonly minTokensToKeep = 1) {
    if (!(minP >= 0 && minP <= 1)) throw new ConfigError(`min_p must be in [0, 1], got ${minP}`);
    checkMinTokensToKeep(minTokensToKeep);
    this.minP32 = Math.fround(minP);
  }
  apply(ids: readonly (readonly number[])[], scores: Float32Array, V: number): void {
    const probs = new Float64Array(V);
    const keep = Math.min(this.minTokensToKeep, V);
    for (let r = 0; r < ids.length; r++) {
      const row = scores.subarray(r * V, (r + 1) * V);
      softmax(row, probs);
      let top = 0;
      for (let i = 0; i < V; i++) if (probs[i]! > top) top = probs[i]!;
      const threshold = Math.fround(this.minP32 * Math.fround(top));
      // The `keep` most likely tokens survive whatever their probability.
      const kth = keep > 1 ? kthLargest(row, keep) : Infinity;
      for (let i = 0; i < V; i++) {
        if (Math.fround(probs[i]!) < threshold && !(row[i]! >= kth) && probs[i] !== top) row[i] = -Infinity;
      }
    }
  }
}

/** The resolved knobs the processor list depends on (see config.ts). */
export interface ProcessorSettings {
  repetitionPenalty: number;
  minLength: number;
  minNewTokens?: number;
  eosTokenIds: readonly number[];
  doSample: boolean;
  numBeams: number;
  temperature: number;
  topK: number;
  topP: number;
  minP?: number;
}

/** The processor list HF builds for these settings, in HF's order. */
export function buildLogitsProcessors(s: ProcessorSettings, promptLength: number): LogitsProcessor[] {
  const list: LogitsProcessor[] = [];
  const hasEos = s.eosTokenIds.length > 0;
  if (s.repetitionPenalty !== 1) list.push(new RepetitionPenaltyProcessor(s.repetitionPenalty));
  if (hasEos && s.minLength > 0) list.push(new MinLengthProcessor(s.minLength, s.eosTokenIds));
  if (hasEos && s.minNewTokens !== undefined && s.minNewTokens > 0) {
    list.push(new MinNewTokensProcessor(promptLength, s.minNewTokens, s.eosTokenIds));
  }
  if (s.doSample) {
    // Beam sampling keeps one non-EOS continuation per EOS id at least (HF).
    const minKeep = s.numBeams > 1 ? s.eosTokenIds.length + 1 : 1;
    if (s.temperature !== 1) list.push(new TemperatureWarper(s.temperature));
    if (s.topK !== 0) list.push(new TopKWarper(s.topK, minKeep));
    if (s.topP < 1) list.push(new TopPWarper(s.topP, minKeep));
    if (s.minP !== undefined) list.push(new MinPWarper(s.minP, minKeep));
  }
  return list;
}
