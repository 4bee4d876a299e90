/**
 * Beam search bookkeeping with the semantics of HF transformers 5's
 * vectorised `_beam_search` (no model calls here; generate.ts feeds it the
 * processed log-probabilities of each step and reorders the KV cache as told).
 *
 * Per prompt b there are `numBeams` running beams and `numBeams` finished
 * slots. Each step:
 *  1. every running beam's log-probs are added to its running score; the top
 *     K = max(2, 1 + #eos) × numBeams continuations over all beams are kept
 *     (or K are sampled without replacement when sampling);
 *  2. continuations that hit a stopping criterion (EOS, max length, stop
 *     string) cannot keep running: the best numBeams others become the new
 *     running beams;
 *  3. among the first numBeams candidates, those that stopped are scored
 *     sum_logprobs / new_length ** length_penalty and merged into the
 *     finished slots (best numBeams kept);
 *  4. the early-stop heuristic (early_stopping true / false / "never")
 *     decides whether the running beams can still beat the finished ones.
 * Scores are float32 as in torch: every sum and quotient is rounded.
 */
import { sampleWithoutReplacement, softmax, topKIndices } from "./sampling.js";
import type { SeededRng } from "./rng.js";

const f32 = Math.fround;
const NEG = -1.0e9;

export interface BeamSearchSettings {
  numBeams: number;
  /** Number of EOS ids (sets how many continuations are kept per step). */
  numEosTokens: number;
  lengthPenalty: number;
  earlyStopping: boolean | "never";
  maxLength: number;
  doSample: boolean;
}

interface Slot {
  seq: number[];
  score: number;
  /** Per generated token: the flat row (b * numBeams + beam) it extended. */
  beamIdx: number[];
}

export class BeamSearch {
  readonly batchSize: number;
  readonly numBeams: number;
  readonly beamsToKeep: number;
  readonly promptLength: number;
  private curLen: number;
  private running: Slot[][];
  private finished: (Slot & { isFinished: boolean })[][];
  private heuristicUnsatisfied: boolean[];
  private lastHits: boolean[][];

  /** `prompts`: one row per prompt (all of the same, left-padded, length). */
  constructor(prompts: readonly (readonly number[])[], private readonly s: BeamSearchSettings) {
    this.batchSize = prompts.length;
    this.numBeams = s.numBeams;
    this.beamsToKeep = Math.max(2, 1 + s.numEosTokens) * s.numBeams;
    this.promptLength = prompts[0]!.length;
    this.curLen = this.promptLength;
    // Only beam 0 starts live (score 0); the others start at -1e9 so that the
    // first step does not pick the same token from identical copies.
    this.running = prompts.map((p) =>
      Array.from({ length: s.numBeams }, (_, j) => ({ seq: [...p], score: j === 0 ? 0 : NEG, beamIdx: [] })),
    );
    this.finished = prompts.map((p) =>
      Array.from({ length: s.numBeams }, () => ({ seq: [...p], score: NEG, beamIdx: [], isFinished: false })),
    );
    this.heuristicUnsatisfied = prompts.map(() => true);
    this.lastHits = prompts.map(() => []);
  }

  /** The running sequences, flattened [B * numBeams] (what the logits processors see). */
  runningSequences(): number[][] {
    return this.running.flat().map((r) => r.seq);
  }

  /** The last token of each running beam: the next forward's input [B * numBeams]. */
  runningLastTokens(): number[] {
    return this.running.flat().map((r) => r.seq[r.seq.length - 1]!);
  }

  /**
   * One step. `logProbs`: processed log-softmax scores [B * numBeams, V] of the
   * current running beams. `stop` says which candidate sequences hit a stopping
   * criterion. Returns, for each new running row, the old row it continues
   * (apply it to the KV cache: cache.reorder(order)).
   */
  step(logProbs: Float32Array, V: number, stop: (seqs: number[][]) => boolean[], rng?: SeededRng): number[] {
    const { numBeams: nb, beamsToKeep: K } = this;
    const order: number[] = [];
    const acc = new Float32Array(nb * V);
    for (let b = 0; b < this.batchSize; b++) {
      // 1. accumulated scores over all beams of this prompt, [nb * V]
      for (let j = 0; j < nb; j++) {
        const base = this.running[b]![j]!.score;
        const src = logProbs.subarray((b * nb + j) * V, (b * nb + j + 1) * V);
        for (let v = 0; v < V; v++) acc[j * V + v] = src[v]! + base;
      }
      let picks: number[];
      if (this.s.doSample) {
        if (!rng) throw new Error("BeamSearch.step: sampling needs an rng");
        picks = sampleWithoutReplacement(softmax(acc), K, rng);
      } else {
        picks = topKIndices(acc, K);
      }
      const cands: Slot[] = picks.map((idx) => {
        const j = Math.floor(idx / V);
        const from = this.running[b]![j]!;
        return { seq: [...from.seq, idx % V], score: acc[idx]!, beamIdx: [...from.beamIdx, b * nb + j] };
      });
      // 2. which candidates stop here
      const hits = stop(cands.map((c) => c.seq));
      this.lastHits[b] = hits;
      // 3. next running beams: the best numBeams that did not stop
      const runScores = cands.map((c, k) => (hits[k] ? f32(c.score + NEG) : c.score));
      const next = topKIndices(runScores, nb);
      this.running[b] = next.map((k) => ({ ...cands[k]!, score: runScores[k]! }));
      for (const k of next) order.push(cands[k]!.beamIdx[cands[k]!.beamIdx.length - 1]!);
      // 4. merge newly finished (top numBeams candidates only) into the finished slots
      this.updateFinished(b, cands, hits);
    }
    this.curLen++;
    for (let b = 0; b < this.batchSize; b++) this.checkEarlyStop(b);
    return order;
  }

  private updateFinished(b: number, cands: Slot[], hits: boolean[]): void {
    const nb = this.numBeams;
    const fin = this.finished[b]!;
    const lenPen = f32((this.curLen + 1 - this.promptLength) ** this.s.lengthPenalty);
    const full = fin.every((f) => f.isFinished) && this.s.earlyStopping === true;
    const merged = [...fin];
    cands.forEach((c, k) => {
      const justFinished = hits[k]! && k < nb;
      let score = f32(c.score / lenPen);
      if (full) score = f32(score + NEG);
      if (!this.heuristicUnsatisfied[b]) score = f32(score + NEG);
      if (!justFinished) score = f32(score + NEG);
      merged.push({ seq: c.seq, score, beamIdx: c.beamIdx, isFinished: justFinished });
    });
    this.finished[b] = topKIndices(
      merged.map((m) => m.score),
      nb,
    ).map((i) => merged[i]!);
  }

  private checkEarlyStop(b: number): void {
    const { earlyStopping, lengthPenalty, maxLength } = this.s;
    const bestLen = earlyStopping === "never" && lengthPenalty > 0 ? maxLength - this.promptLength : this.curLen - this.promptLength;
    const best = f32(this.running[b]![0]!.score / f32(bestLen ** lengthPenalty));
    const fin = this.finished[b]!;
    let minFinished = Infinity;
    for (const f of fin) if (f.score < minFinished) minFinished = f.score;
    const anyBetter = fin.some((f) => best > (f.isFinished ? minFinished : NEG));
    this.heuristicUnsatisfied[b] = this.heuristicUnsatisfied[b]! && anyBetter;
  }

  /** Whether another step is needed (HF _beam_search_has_unfinished_sequences). */
  hasUnfinished(): boolean {
    const improvementPossible = this.heuristicUnsatisfied.some((x) => x);
    const allFinished = this.finished.every((fs) => fs.every((f) => f.isFinished));
    const existsOpenBeam = !(allFinished && this.s.earlyStopping === true);
    const allHit = this.lastHits.every((h) => h.length > 0 && h.every((x) => x));
    return improvementPossible && existsOpenBeam && !allHit;
  }

  /**
   * The best `numReturnSequences` finished sequences of each prompt (rows
   * b * n + i), right-padded with `fill` to a common length, with their scores
   * and per-step source rows (-1 past a sequence's end).
   */
  result(numReturnSequences: number, fill: number): { sequences: number[][]; scores: number[]; beamIndices: number[][] } {
    const picked = this.finished.flatMap((fs) => fs.slice(0, numReturnSequences));
    const genLen = Math.max(...picked.map((p) => p.beamIdx.length));
    return {
      sequences: picked.map((p) => {
        const s = p.seq.slice(0, this.promptLength + genLen);
        while (s.length < this.promptLength + genLen) s.push(fill);
        return s;
      }),
      scores: picked.map((p) => p.score),
      beamIndices: picked.map((p) => {
        const bi = p.beamIdx.slice(0, genLen);
        while (bi.length < genLen) bi.push(-1);
        return bi;
      }),
    };
  }
}
