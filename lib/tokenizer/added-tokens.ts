/**
 * Added tokens (special tokens like `<|begin_of_text|>` and user-added
 * words) are matched in the text BEFORE the model sees it, as HF's
 * AddedVocabulary does: leftmost-longest matches, with the token's
 * single_word / lstrip / rstrip options. `normalized: false` tokens are
 * matched in the raw text; `normalized: true` ones after normalization.
 */
import { escapeRegex } from "./hf-regex.js";

export interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly singleWord: boolean;
  readonly normalized: boolean;
}

/**
 * An AddedToken from HF's JSON form (tokenizer.json `added_tokens[i]`,
 * tokenizer_config.json `added_tokens_decoder[id]`), after the caller has
 * checked `id` and `content`: every flag is true only when the JSON says `true`.
 */
export function addedTokenFromJson(id: number, content: string, o: Readonly<Record<string, unknown>>): AddedToken {
  return {
    id,
    content,
    special: o.special === true,
    lstrip: o.lstrip === true,
    rstrip: o.rstrip === true,
    singleWord: o.single_word === true,
    normalized: o.normalized === true,
  };
}

/** A piece of text: either plain text for the model, or one added token. */
export interface Segment {
  readonly text: string;
  /** Set when this segment is an added token. */
  readonly id?: number;
  /** UTF-16 range in the string that was split. */
  readonly start: number;
  readonly end: number;
}

const WORD_CHAR = /[\p{Alphabetic}\p{N}_]/u;
const WHITE = /\p{White_Space}/u;

export class AddedTokenMatcher {
  private readonly re: RegExp | null;
  private readonly byContent = new Map<string, AddedToken>();

  constructor(tokens: readonly AddedToken[]) {
    for (const t of tokens) if (t.content.length > 0) this.byContent.set(t.content, t);
    const contents = [...this.byContent.keys()].sort((a, b) => b.length - a.length);
    // Longest alternatives first: JS takes the first alternative that matches at the leftmost position.
    this.re = contents.length > 0 ? new RegExp(contents.map(escapeRegex).join("|"), "gu") : null;
  }

  get empty(): boolean {
    return this.re === null;
  }

  /** Splits `text` at added-token matches (mirrors AddedVocabulary::find_matches). */
  split(text: string): Segment[] {
    if (!this.re || text.length === 0) return [{ text, start: 0, end: text.length }];
    const out: Segment[] = [];
    let offset = 0;
    this.re.lastIndex = 0;
    for (const m of text.matchAll(this.re)) {
      let start = m.index!;
      let stop = start + m[0].length;
      const tok = this.byContent.get(m[0])!;
      if (tok.singleWord) {
        const startOk = start === 0 || !endsWithWord(text.slice(0, start));
        const stopOk = stop === text.length || !startsWithWord(text.slice(stop));
        if (!startOk || !stopOk) continue;
      }
      if (tok.lstrip) {
        let s = start;
        while (s > 0 && WHITE.test(charBefore(text, s))) s -= charBefore(text, s).length;
        start = Math.max(s, offset);
      }
      if (tok.rstrip) {
        while (stop < text.length && WHITE.test(charAt(text, stop))) stop += charAt(text, stop).length;
      }
      if (offset < start) out.push({ text: text.slice(offset, start), start: offset, end: start });
      out.push({ text: text.slice(start, stop), id: tok.id, start, end: stop });
      offset = stop;
      this.re.lastIndex = Math.max(this.re.lastIndex, stop);
    }
    if (offset < text.length) out.push({ text: text.slice(offset), start: offset, end: text.length });
    return out;
  }
}

function charAt(s: string, i: number): string {
  return String.fromCodePoint(s.codePointAt(i)!);
}

function charBefore(s: string, i: number): string {
  const c = s.charCodeAt(i - 1);
  return c >= 0xdc00 && c <= 0xdfff && i >= 2 ? s.slice(i - 2, i) : s.slice(i - 1, i);
}

function endsWithWord(s: string): boolean {
  return s.length > 0 && WORD_CHAR.test(charBefore(s, s.length));
}

function startsWithWord(s: string): boolean {
  return s.length > 0 && WORD_CHAR.test(charAt(s, 0));
}
