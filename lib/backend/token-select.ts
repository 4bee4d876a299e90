/**
 * Next-token selection on the device, for `generate`'s greedy/sampling loop:
 * the processors (repetition penalty, min-length EOS suppression), the warpers
 * (temperature → top-k → top-p → min-p), the draw or argmax, the EOS stopping
 * check and the pad id for finished rows all run where the logits are, and
 * only the chosen id of each row (4 bytes) comes back per step.
 *
 * Semantics are HF's (lib/generate/processors.ts is the host reference). The
 * random numbers stay on the host: the caller passes one uniform per row per
 * step, drawn from the same SeededRng stream the host sampler uses, so a seed
 * gives the same draws on both paths except where float32 (device) and
 * float64 (host) sums put the uniform on different sides of a bucket edge.
 */
import type { DeviceTensor } from "./backend.js";

export interface TokenSelectSettings {
  /** Rows decoded together (batch × numReturnSequences). */
  rows: number;
  vocabSize: number;
  /** null = greedy (argmax of the processed scores). */
  sampling: { temperature: number; topK: number; topP: number; minP?: number } | null;
  /** 1 = off. */
  repetitionPenalty: number;
  eosTokenIds: readonly number[];
  /** Finished rows receive this id on every later step (HF does so only when EOS can stop rows); null = never. */
  padTokenId: number | null;
  /** Each row's ids so far (prompt, padding included): the repetition penalty's initial set. */
  prompts: readonly (readonly number[])[];
}

export interface TokenStep {
  /** min_length / min_new_tokens still active: EOS scores are -inf this step. */
  suppressEos: boolean;
  /** Sampling: one uniform in [0, 1) per row (the host RNG's stream). */
  uniforms?: Float32Array;
}

export interface TokenChoice {
  /** The chosen id per row (the pad id for rows already finished). */
  tokens: Int32Array;
  /** Per row: the token is an EOS id and the row was unfinished (it stops now). */
  eos: boolean[];
}

export interface TokenSelector {
  /** Chooses one token per row from logits [rows, 1, V] (or [rows, V]); the only readback is the ids. */
  select(logits: DeviceTensor, step: TokenStep): Promise<TokenChoice>;
  /** Rows a host-side criterion stopped (stop strings): they receive the pad id from the next step on. */
  markFinished(rows: readonly number[]): void;
  /** Frees the selector's device state. */
  dispose(): void;
}
