/**
 * sentencepiece's precompiled character map (normalizer_spec.precompiled_charsmap):
 * `<trie size: uint32 LE><darts-clone double-array trie: uint32 units><NUL-terminated replacement strings>`.
 * At each position the longest key found in the trie (over UTF-8 bytes) is
 * replaced by its string; positions without a match pass one character
 * through. Every trie index and string offset is bounds-checked: a corrupt
 * map ends the match or raises a FormatError, never reads out of range.
 */
import { FormatError } from "../errors.js";
import { utf8Encode, validCharLength } from "./utf8.js";

export interface CharsMapPiece {
  /** Normalized text for this piece of input. */
  readonly out: string;
  /** UTF-16 length of the input it consumed. */
  readonly inLen: number;
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

export class CharsMap {
  private readonly units: Uint32Array;
  private readonly strings: Uint8Array;

  constructor(blob: Uint8Array, file: string) {
    if (blob.length < 4) throw new FormatError(file, `normalizer_spec.precompiled_charsmap is ${blob.length} bytes, too short for its header`);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize % 4 !== 0 || 4 + trieSize > blob.length || trieSize === 0) {
      throw new FormatError(file, `normalizer_spec.precompiled_charsmap: trie size ${trieSize} does not fit the ${blob.length}-byte map`);
    }
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.strings = blob.subarray(4 + trieSize);
  }

  /** Longest trie match at bytes[pos...]: [matched byte length, string offset], or [0, 0]. */
  private longestMatch(bytes: Uint8Array, pos: number): [number, number] {
    const u = this.units;
    let node = 0;
    let unit = u[0]!;
    node ^= offsetOf(unit);
    let bestLen = 0;
    let bestValue = 0;
    for (let i = pos; i < bytes.length; i++) {
      const c = bytes[i]!;
      node ^= c;
      if (node >= u.length) break;
      unit = u[node]!;
      // label(): the low byte plus the leaf flag bit (bit 31) must equal the key byte.
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      node ^= offsetOf(unit);
      if (node >= u.length) break;
      if ((unit >>> 8) & 1) {
        bestLen = i - pos + 1;
        bestValue = u[node]! & 0x7fffffff;
      }
    }
    return [bestLen, bestValue];
  }

  private stringAt(offset: number): string {
    if (offset >= this.strings.length) return "";
    let end = offset;
    while (end < this.strings.length && this.strings[end] !== 0) end++;
    return decoder.decode(this.strings.subarray(offset, end));
  }

  /** Splits well-formed text into normalized pieces, as Normalizer::NormalizePrefix does repeatedly. */
  split(text: string): CharsMapPiece[] {
    const bytes = utf8Encode(text);
    const out: CharsMapPiece[] = [];
    let pos = 0;
    while (pos < bytes.length) {
      const [len, value] = this.longestMatch(bytes, pos);
      let consumed: number;
      let norm: string;
      if (len > 0) {
        consumed = len;
        norm = this.stringAt(value);
      } else {
        consumed = Math.max(1, validCharLength(bytes, pos));
        norm = consumed === 1 && bytes[pos]! >= 0x80 ? "\ufffd" : decoder.decode(bytes.subarray(pos, pos + consumed));
      }
      out.push({ out: norm, inLen: utf16Length(bytes, pos, pos + consumed) });
      pos += consumed;
    }
    return out;
  }
}

/** darts-clone unit offset(): (unit >> 10) << ((unit & (1 << 9)) >> 6). */
function offsetOf(unit: number): number {
  return ((unit >>> 10) << ((unit & 0x200) >>> 6)) >>> 0;
}

/** UTF-16 length of the well-formed UTF-8 in bytes[a, b). */
function utf16Length(bytes: Uint8Array, a: number, b: number): number {
  let n = 0;
  for (let i = a; i < b; i++) {
    const c = bytes[i]!;
    if ((c & 0xc0) !== 0x80) n += c >= 0xf0 ? 2 : 1;
  }
  return n;
}
