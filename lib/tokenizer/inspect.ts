/**
 * Tokenizer inspection as plain data: for a text, one row per token with
 * its id, token string, the text it stands for, its byte span in the input
 * and whether it is special or a byte-fallback token. The HTML views in
 * lib/viz/tokens.ts are built from this.
 *
 * Spans are found by aligning each token's bytes (▁ read as a space) with
 * the input's UTF-8: a space the tokenizer inserted (sentencepiece's dummy
 * prefix) covers no input; a ▁ typed in the input matches a ▁ token; tokens
 * added by the template (BOS) are zero-width at their position.
 */
import type { PreTrainedTokenizerBase } from "./tokenizer-base.js";
import { utf8Encode, wellFormed } from "./utf8.js";

/** What inspection needs beyond the common API (both LlamaTokenizer and LlamaTokenizerFast have it). */
export interface InspectableTokenizer extends PreTrainedTokenizerBase {
  surfaceBytes(id: number): Uint8Array | null;
  isByte(id: number): boolean;
}

export interface TokenRow {
  readonly index: number;
  readonly id: number;
  /** The vocabulary string (e.g. "▁Hello", "ĠHello", "<0x0A>", "<s>"). */
  readonly token: string;
  /** The text this token stands for ("" when its bytes are not whole UTF-8 characters). */
  readonly text: string;
  /** The token's bytes in the input (null for special tokens). */
  readonly bytes: readonly number[] | null;
  /** [start, end) byte offsets in the UTF-8 input. */
  readonly start: number;
  readonly end: number;
  /** [charStart, charEnd) UTF-16 offsets in the input string. */
  readonly charStart: number;
  readonly charEnd: number;
  readonly isSpecial: boolean;
  readonly isByte: boolean;
  /** True for a special token the template added (BOS/EOS), which has no text in the input. */
  readonly addedByTemplate: boolean;
}

export interface TokenInspection {
  readonly text: string;
  /** Class and file of the tokenizer, for labels. */
  readonly tokenizer: string;
  readonly ids: readonly number[];
  readonly rows: readonly TokenRow[];
  /** UTF-8 length of the input. */
  readonly byteLength: number;
}

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const ENC_SPACE = [0xe2, 0x96, 0x81]; // ▁ in UTF-8

export function inspectTokens(tok: InspectableTokenizer, text: string, opts: { addSpecialTokens?: boolean; splitSpecialTokens?: boolean } = {}): TokenInspection {
  const clean = wellFormed(text);
  const input = utf8Encode(clean);
  const plain = tok.encode(clean, { addSpecialTokens: false, splitSpecialTokens: opts.splitSpecialTokens });
  const ids = opts.addSpecialTokens === false ? plain : tok.buildInputsWithSpecialTokens(plain);
  // Which positions the template added: the mask marks all specials; those beyond the plain ids' specials are template ones.
  const templateMask = opts.addSpecialTokens === false ? plain.map(() => 0) : tok.getSpecialTokensMask(plain);
  const special = tok.allSpecialIds;
  const byteToChar = byteToCharIndex(clean, input.length);
  const rows: TokenRow[] = [];
  let p = 0;
  ids.forEach((id, index) => {
    const token = tok.idToToken(id) ?? "";
    const fromTemplate = templateMask[index] === 1;
    const surface = tok.surfaceBytes(id);
    let start = p;
    let end = p;
    let bytes: number[] | null = null;
    if (fromTemplate) {
      // zero-width at p
    } else if (surface === null) {
      // A special/control/added token or <unk>: find its text at p (after whitespace it may have stripped).
      const content = utf8Encode(token);
      let q = p;
      while (q < input.length && !startsWith(input, content, q) && isAsciiSpace(input[q]!)) q++;
      if (content.length > 0 && startsWith(input, content, q)) {
        start = q;
        end = p = q + content.length;
      } else if (id === tok.unkTokenId && p < input.length) {
        // <unk> covers unknown characters; take one (best effort: a fused run may cover more).
        start = p;
        end = p = p + utf8CharLength(input[p]!);
      }
    } else {
      bytes = Array.from(surface);
      let first = -1;
      for (let j = 0; j < surface.length; j++) {
        const b = surface[j]!;
        if (p < input.length && input[p] === b) {
          if (first < 0) first = p;
          p++;
        } else if (b === 0x20 && startsWith(input, ENC_SPACE, p)) {
          // A ▁ typed in the input reads back as a space.
          if (first < 0) first = p;
          p += 3;
        } else if (b === 0x20) {
          // A space the tokenizer inserted (dummy prefix): covers no input.
        } else {
          // The normalizer changed the text; give the rest of this token's length, best effort.
          if (first < 0) first = p;
          p = Math.min(input.length, p + (surface.length - j));
          break;
        }
      }
      start = first < 0 ? p : first;
      end = p;
    }
    rows.push({
      index,
      id,
      token,
      text: surface === null ? token : decodeWhole(surface),
      bytes,
      start,
      end,
      charStart: byteToChar[start]!,
      charEnd: byteToChar[end]!,
      isSpecial: special.has(id) || (surface === null && id !== tok.unkTokenId),
      isByte: tok.isByte(id),
      addedByTemplate: fromTemplate,
    });
  });
  return { text: clean, tokenizer: `${tok.constructor.name}(${tok.source})`, ids, rows, byteLength: input.length };
}

function decodeWhole(b: Uint8Array): string {
  try {
    return strict.decode(b);
  } catch {
    return "";
  }
}

function startsWith(hay: Uint8Array, needle: ArrayLike<number>, at: number): boolean {
  if (at + needle.length > hay.length) return false;
  for (let i = 0; i < needle.length; i++) if (hay[at + i] !== needle[i]) return false;
  return true;
}

function isAsciiSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

function utf8CharLength(lead: number): number {
  return lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
}

/** UTF-8 byte offset → UTF-16 index (offsets inside a character map to the character's start). */
function byteToCharIndex(text: string, byteLength: number): Int32Array {
  const map = new Int32Array(byteLength + 1);
  let b = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let n = c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
    let units = 1;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      n = 4;
      units = 2;
    }
    for (let k = 0; k < n; k++) map[b + k] = i;
    b += n;
    i += units - 1;
  }
  map[byteLength] = text.length;
  return map;
}
