/**
 * Attention-head summaries and detectors, computed from post-softmax patterns
 * (`layers.{i}.self_attn.pattern`, [B, heads, T, T]) and the input token ids.
 *
 * Every detector score is "the attention mass a query puts on the keys the
 * behaviour predicts", averaged over the query positions where the behaviour
 * is defined, so 1.0 means the head does exactly that and scores of different
 * detectors are comparable:
 *  - previous-token: key t-1 for query t (t ≥ 1);
 *  - duplicate-token: every earlier key holding the same token id as query t;
 *  - induction: every key j+1 (j+1 ≤ t) right after an earlier occurrence j of
 *    query t's token, i.e. "attend to what came after this token last time".
 * On a repeated random sequence [bos, r, r] the induction key for t in the
 * second copy is exactly t - n + 1, TransformerLens's induction stripe.
 */
import { InputError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { headSlab, seededRandom } from "./math.js";

export type HeadDetector = "previousToken" | "duplicateToken" | "induction";

/** Per-head numbers, indexed [layer][head]. */
export type HeadMatrix = number[][];

export interface HeadSummaries {
  previousToken: HeadMatrix;
  duplicateToken: HeadMatrix;
  induction: HeadMatrix;
  /** Mean attention on position 0 (BOS: the usual "no-op" sink). */
  firstToken: HeadMatrix;
  /** Mean entropy (nats) of the query rows: low = sharp, high = diffuse. */
  entropy: HeadMatrix;
  /** Mean distance |t - j| weighted by attention. */
  meanDistance: HeadMatrix;
}

export interface RankedHead {
  layer: number;
  head: number;
  score: number;
}

/** Options shared by the detectors. */
export interface DetectorOptions {
  /** Batch row to read (default 0). */
  batch?: number;
  /** The row's attention mask (1 = token, 0 = padding); padded queries and keys are left out. */
  attentionMask?: readonly number[];
}

/** Checks that a [T, S] pattern slab and tokens agree; returns T. */
function queryCount(pattern: Tensor, tokens: readonly number[] | undefined, name: string): number {
  if (pattern.rank !== 4) throw new InputError(`${name}: pattern must be [B, heads, T, S], got [${pattern.shape.join(", ")}]`);
  const T = pattern.shape[2]!;
  const S = pattern.shape[3]!;
  if (S !== T) throw new InputError(`${name}: head detectors need a full self-attention pattern (T == S), got T=${T}, S=${S} (run without a KV cache)`);
  if (tokens && tokens.length !== T) throw new InputError(`${name}: ${tokens.length} tokens for a pattern over ${T} positions`);
  return T;
}

/** Mask helper: true where position p is a real token. */
function realAt(mask: readonly number[] | undefined, p: number): boolean {
  return !mask || mask[p] !== 0;
}

/** The keys each query's behaviour predicts, for one detector (an empty list = not defined there). */
export function detectorKeys(detector: HeadDetector, tokens: readonly number[]): number[][] {
  const T = tokens.length;
  const keys: number[][] = [];
  const seen = new Map<number, number[]>(); // token id → earlier positions
  for (let t = 0; t < T; t++) {
    const earlier = seen.get(tokens[t]!) ?? [];
    if (detector === "previousToken") keys.push(t >= 1 ? [t - 1] : []);
    else if (detector === "duplicateToken") keys.push([...earlier]);
    else keys.push(earlier.map((j) => j + 1).filter((k) => k <= t));
    if (!seen.has(tokens[t]!)) seen.set(tokens[t]!, []);
    seen.get(tokens[t]!)!.push(t);
  }
  return keys;
}

/**
 * One detector's score for every head of one layer's pattern [B, heads, T, T]:
 * the mean over defined queries of the attention mass on the predicted keys.
 * Heads with no defined query (e.g. induction on a sequence without repeats) score NaN.
 */
export function detectorScores(pattern: Tensor, tokens: readonly number[], detector: HeadDetector, options: DetectorOptions = {}): number[] {
  const T = queryCount(pattern, tokens, detector);
  const keys = detectorKeys(detector, tokens);
  const b = options.batch ?? 0;
  const mask = options.attentionMask;
  const heads = pattern.shape[1]!;
  const out: number[] = [];
  for (let h = 0; h < heads; h++) {
    const a = headSlab(pattern, b, h); // [T, T]
    let sum = 0;
    let n = 0;
    for (let t = 0; t < T; t++) {
      if (!realAt(mask, t)) continue;
      const ks = keys[t]!.filter((k) => realAt(mask, k));
      if (!ks.length) continue;
      let mass = 0;
      for (const k of ks) mass += a[t * T + k]!;
      sum += mass;
      n++;
    }
    out.push(n ? sum / n : NaN);
  }
  return out;
}

/** Summaries of every head: detectors (if tokens are given) plus token-free statistics. */
export function summarizeHeads(patterns: readonly Tensor[], tokens: readonly number[], options: DetectorOptions = {}): HeadSummaries {
  const res: HeadSummaries = { previousToken: [], duplicateToken: [], induction: [], firstToken: [], entropy: [], meanDistance: [] };
  const b = options.batch ?? 0;
  const mask = options.attentionMask;
  patterns.forEach((pattern, layer) => {
    const T = queryCount(pattern, tokens, `layer ${layer}`);
    res.previousToken.push(detectorScores(pattern, tokens, "previousToken", options));
    res.duplicateToken.push(detectorScores(pattern, tokens, "duplicateToken", options));
    res.induction.push(detectorScores(pattern, tokens, "induction", options));
    const first: number[] = [];
    const ent: number[] = [];
    const dist: number[] = [];
    const firstReal = mask ? Math.max(0, mask.findIndex((m) => m !== 0)) : 0;
    for (let h = 0; h < pattern.shape[1]!; h++) {
      const a = headSlab(pattern, b, h);
      let f = 0, e = 0, d = 0, n = 0;
      for (let t = 0; t < T; t++) {
        if (!realAt(mask, t)) continue;
        f += a[t * T + firstReal]!;
        for (let j = 0; j < T; j++) {
          const p = a[t * T + j]!;
          if (p > 0) e -= p * Math.log(p);
          d += p * Math.abs(t - j);
        }
        n++;
      }
      first.push(n ? f / n : NaN);
      ent.push(n ? e / n : NaN);
      dist.push(n ? d / n : NaN);
    }
    res.firstToken.push(first);
    res.entropy.push(ent);
    res.meanDistance.push(dist);
  });
  return res;
}

/** Heads sorted by score, highest first (NaN last). */
export function rankHeads(scores: HeadMatrix, k = Infinity): RankedHead[] {
  const all: RankedHead[] = [];
  scores.forEach((row, layer) => row.forEach((score, head) => all.push({ layer, head, score })));
  all.sort((x, y) => (Number.isNaN(x.score) ? 1 : Number.isNaN(y.score) ? -1 : y.score - x.score));
  return all.slice(0, Math.min(k, all.length));
}

export interface RepeatedSequenceOptions {
  /** Length n of the random span (the sequence is [bos?, r_1..r_n, r_1..r_n]). */
  length: number;
  /** Token ids to draw from (e.g. common ordinary tokens); or `vocabSize` to draw from [low, vocabSize). */
  candidates?: readonly number[];
  vocabSize?: number;
  /** Lowest id when drawing from `vocabSize` (skip special/byte tokens; default 3). */
  low?: number;
  /** Prepended BOS id (default none). */
  bos?: number;
  seed?: number;
}

/**
 * A random span repeated twice: the standard induction-head probe. Tokens in
 * the span are distinct so the induction key of each second-copy query is
 * unique (t - n + 1 when no BOS; shifted by one with BOS).
 */
export function repeatedRandomTokens(options: RepeatedSequenceOptions): number[] {
  const { length: n, seed = 0 } = options;
  const pool = options.candidates
    ? [...new Set(options.candidates)]
    : options.vocabSize !== undefined
      ? Array.from({ length: Math.max(0, options.vocabSize - (options.low ?? 3)) }, (_, i) => i + (options.low ?? 3))
      : undefined;
  if (!pool) throw new InputError("repeatedRandomTokens: give `candidates` or `vocabSize`");
  if (!Number.isInteger(n) || n < 1) throw new InputError(`repeatedRandomTokens: length must be a positive integer, got ${n}`);
  if (pool.length < n) throw new InputError(`repeatedRandomTokens: need ${n} distinct candidate ids, have ${pool.length}`);
  const rand = seededRandom(seed);
  // Partial Fisher–Yates: the first n entries become a uniform random sample without replacement.
  const p = [...pool];
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (p.length - i));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  const span = p.slice(0, n);
  return [...(options.bos !== undefined ? [options.bos] : []), ...span, ...span];
}
