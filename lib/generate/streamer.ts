/**
 * Streaming of generated text that never emits part of a character.
 *
 * Byte-fallback tokenizers (sentencepiece `<0xE2>`, byte-level BPE) split a
 * multi-byte UTF-8 character over several tokens; decoding a prefix that ends
 * mid-character yields U+FFFD. So each step we decode everything generated
 * so far for the row and emit only the part past what was already emitted,
 * holding back a trailing run of U+FFFD until the character completes (or
 * the stream ends, when whatever is left is flushed as is).
 *
 * Decoding starts from a few real prompt tokens (`context`) whose own text is
 * then cut off: tokenizers strip the leading space of the first token they
 * decode, and the generated text's first space must survive. The concatenated
 * chunks therefore equal decode(prompt + new) minus decode(prompt) whenever
 * the tokenizer's decode is prefix-stable (sentencepiece and byte-level BPE are).
 */
import type { GenerationTokenizer, StreamChunk, Streamer } from "./types.js";

/** How many trailing prompt tokens give decoding its context. */
const CONTEXT_TOKENS = 4;
const REPLACEMENT = 0xfffd;

class RowStream {
  readonly generated: number[] = [];
  private pendingIds: number[] = [];
  private printed = 0;
  constructor(private readonly context: number[]) {}

  /** Adds tokens; returns the chunk to emit (null when nothing is ready). */
  push(ids: number[], tok: GenerationTokenizer | undefined, skipSpecial: boolean, final: boolean, index: number): StreamChunk | null {
    this.generated.push(...ids);
    this.pendingIds.push(...ids);
    if (!tok) return this.take("", index);
    const text = this.decodeGenerated(tok, skipSpecial);
    let end = text.length;
    if (!final) while (end > this.printed && text.charCodeAt(end - 1) === REPLACEMENT) end--;
    if (end <= this.printed) return final && this.pendingIds.length ? this.take("", index) : null;
    const piece = text.slice(this.printed, end);
    this.printed = end;
    return this.take(piece, index);
  }

  private take(text: string, index: number): StreamChunk | null {
    if (!text && !this.pendingIds.length) return null;
    const chunk = { index, tokenIds: this.pendingIds, text };
    this.pendingIds = [];
    return chunk;
  }

  private decodeGenerated(tok: GenerationTokenizer, skipSpecialTokens: boolean): string {
    if (this.context.length) {
      const base = tok.decode(this.context, { skipSpecialTokens });
      const full = tok.decode([...this.context, ...this.generated], { skipSpecialTokens });
      if (full.startsWith(base)) return full.slice(base.length);
    }
    return tok.decode(this.generated, { skipSpecialTokens });
  }
}

/**
 * Turns per-step token ids into UTF-8-safe text chunks for each row of a
 * batch and hands them to a Streamer (callback or put/end object).
 */
export class TokenStreamer {
  private readonly rows: RowStream[];
  private readonly done: boolean[];

  /**
   * `prompts`/`masks`: the rows' prompt ids and attention masks (padding is
   * skipped when choosing the context tokens).
   */
  constructor(
    private readonly sink: (chunk: StreamChunk) => void,
    prompts: readonly (readonly number[])[],
    masks: readonly (readonly number[])[],
    private readonly tokenizer?: GenerationTokenizer,
    private readonly skipSpecialTokens = true,
  ) {
    this.rows = prompts.map((ids, r) => {
      const real = ids.filter((_, j) => masks[r]![j] !== 0);
      return new RowStream(real.slice(-CONTEXT_TOKENS));
    });
    this.done = prompts.map(() => false);
  }

  /** New token of each row for one step; `finished[r]` marks a row's last token (later ones are padding). */
  step(tokens: readonly number[], finished: readonly boolean[]): void {
    for (let r = 0; r < this.rows.length; r++) {
      if (this.done[r]) continue;
      const chunk = this.rows[r]!.push([tokens[r]!], this.tokenizer, this.skipSpecialTokens, finished[r]!, r);
      if (chunk) this.sink(chunk);
      if (finished[r]) this.done[r] = true;
    }
  }

  /** Flushes every row still open (end of generation). */
  end(): void {
    for (let r = 0; r < this.rows.length; r++) {
      if (this.done[r]) continue;
      const chunk = this.rows[r]!.push([], this.tokenizer, this.skipSpecialTokens, true, r);
      if (chunk) this.sink(chunk);
      this.done[r] = true;
    }
  }
}

/** Adapts the public Streamer union to a chunk sink plus an end hook. */
export function streamerSink(s: Streamer): { put: (c: StreamChunk) => void; end: () => void } {
  if (typeof s === "function") return { put: s, end: () => {} };
  return { put: (c) => s.put(c), end: () => s.end?.() };
}
