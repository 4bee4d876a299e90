/**
 * Stopping criteria with HF's semantics: MaxLengthCriteria (the sequence
 * reached max_length), EosTokenCriteria (the last token is one of the EOS
 * ids) and StopStringCriteria (a stop string ends inside the last token's
 * text).
 *
 * Stop strings: HF precomputes, for every vocabulary entry, where it can sit
 * inside each stop string, and matches on token strings. We get the same
 * answer from the tokenizer's own `decode`: a stop string counts when an
 * occurrence of it *ends within the text of the final token* — it may start
 * in earlier tokens (prompt included) and the final token may run past its
 * end ("st" + "opper" stops on "stop"), but an occurrence that ended before
 * the final token does not count (it would have stopped generation then).
 */
import type { GenerationTokenizer } from "./types.js";

export interface StoppingCriterion {
  /** true for every row (sequence) that must stop after its last token. */
  isDone(sequences: readonly (readonly number[])[]): boolean[];
}

export class MaxLengthCriterion implements StoppingCriterion {
  constructor(readonly maxLength: number) {}
  isDone(seqs: readonly (readonly number[])[]): boolean[] {
    return seqs.map((s) => s.length >= this.maxLength);
  }
}

export class EosTokenCriterion implements StoppingCriterion {
  private readonly eos: Set<number>;
  constructor(eosTokenIds: readonly number[]) {
    this.eos = new Set(eosTokenIds);
  }
  isDone(seqs: readonly (readonly number[])[]): boolean[] {
    return seqs.map((s) => s.length > 0 && this.eos.has(s[s.length - 1]!));
  }
}

export class StopStringCriterion implements StoppingCriterion {
  /** How many trailing tokens to decode: enough that every stop string fits after the window's first token. */
  private readonly window: number;
  private readonly maxLen: number;
  constructor(readonly tokenizer: GenerationTokenizer, readonly stopStrings: readonly string[]) {
    this.maxLen = Math.max(...stopStrings.map((s) => s.length));
    // A token yields ≥ 1 UTF-16 unit, except byte-fallback pieces (up to 4 per
    // character) and empty specials; 4 per unit plus slack covers both.
    this.window = 4 * this.maxLen + 8;
  }

  isDone(seqs: readonly (readonly number[])[]): boolean[] {
    return seqs.map((s) => this.rowDone(s));
  }

  private rowDone(seq: readonly number[]): boolean {
    if (seq.length === 0) return false;
    // One extra leading token so that a tokenizer's "strip the first leading
    // space" rule never touches the part where a stop string can lie.
    const tail = seq.slice(Math.max(0, seq.length - this.window - 1));
    const before = this.tokenizer.decode(tail.slice(0, -1), { skipSpecialTokens: false });
    const after = this.tokenizer.decode(tail, { skipSpecialTokens: false });
    // Start of the final token's text: where the two decodings part (an
    // incomplete UTF-8 character at the end of `before` ends the common part).
    let start = 0;
    const n = Math.min(before.length, after.length);
    while (start < n && before.charCodeAt(start) === after.charCodeAt(start)) start++;
    if (start === after.length) return false; // the final token added no text
    for (const stop of this.stopStrings) {
      // An occurrence must end after `start`, so it begins at start - len + 1 or later.
      const at = after.indexOf(stop, Math.max(0, start - stop.length + 1));
      if (at >= 0) return true;
    }
    return false;
  }
}

/** A row is done when any criterion says so (HF StoppingCriteriaList). */
export function anyDone(criteria: readonly StoppingCriterion[], seqs: readonly (readonly number[])[]): boolean[] {
  const done = seqs.map(() => false);
  for (const c of criteria) {
    const d = c.isDone(seqs);
    for (let i = 0; i < done.length; i++) done[i] = done[i]! || d[i]!;
  }
  return done;
}
