/**
 * UTF-8 helpers shared by the tokenizers. Two decoders on purpose:
 * sentencepiece (and HF's ByteFallback decoder) replace every byte of an
 * invalid sequence with one U+FFFD, while HF's ByteLevel decoder and tiktoken
 * follow the WHATWG "maximal subpart" rule (what TextDecoder does).
 */

const encoder = new TextEncoder();
/** ignoreBOM: a leading U+FEFF is text, not a byte-order mark to drop. */
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Replaces lone UTF-16 surrogates (not representable in UTF-8) with U+FFFD, as TextEncoder does. */
export function wellFormed(text: string): string {
  const s = text as unknown as { isWellFormed?: () => boolean; toWellFormed?: () => string };
  if (s.isWellFormed && s.toWellFormed) return s.isWellFormed() ? text : s.toWellFormed();
  return text.replace(LONE_SURROGATE, "\ufffd");
}

/** UTF-8 bytes of a JS string; lone surrogates become U+FFFD (EF BF BD). */
export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8 with WHATWG replacement (one U+FFFD per maximal invalid subpart). */
export function utf8DecodeLenient(bytes: Uint8Array): string {
  return lenientDecoder.decode(bytes);
}

/** UTF-8 length of one code point. */
export function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/** UTF-8 byte length of a JS string (lone surrogates count as U+FFFD, 3 bytes). */
export function utf8ByteLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * Decodes UTF-8 the way sentencepiece does: a valid character is decoded,
 * and each byte that does not start a valid character becomes one U+FFFD
 * (so the truncated emoji F0 9F becomes two replacement characters).
 * Surrogate code points and overlong forms are invalid.
 */
export function utf8DecodePerByte(bytes: Uint8Array): string {
  // Fast path: most runs are valid; TextDecoder with fatal tells us cheaply.
  try {
    return strictDecoder.decode(bytes);
  } catch {
    // fall through to the byte-by-byte decoder
  }
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const len = validCharLength(bytes, i);
    if (len === 0) {
      out += "\ufffd";
      i += 1;
    } else {
      out += lenientDecoder.decode(bytes.subarray(i, i + len));
      i += len;
    }
  }
  return out;
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Length of the valid UTF-8 character starting at `i`, or 0 if the bytes there are not one. */
export function validCharLength(b: Uint8Array, i: number): number {
  const c0 = b[i]!;
  if (c0 < 0x80) return 1;
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (c0 >= 0xc2 && c0 <= 0xdf) return cont(1) ? 2 : 0;
  if (c0 >= 0xe0 && c0 <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const cp = ((c0 & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f);
    if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return 3;
  }
  if (c0 >= 0xf0 && c0 <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const cp = ((c0 & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f);
    if (cp < 0x10000 || cp > 0x10ffff) return 0;
    return 4;
  }
  return 0;
}

/**
 * GPT-2's byte-level alphabet: every byte maps to a printable code point so
 * that byte strings can live in a JSON vocab. Printable Latin-1 bytes map to
 * themselves; the other 68 bytes map to U+0100 upwards in byte order.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
})();

/** Inverse of BYTE_TO_CHAR: code point → byte, -1 where the char is not in the alphabet. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const inv = new Int16Array(512).fill(-1);
  BYTE_TO_CHAR.forEach((ch, b) => {
    inv[ch.charCodeAt(0)] = b;
  });
  return inv;
})();

/** Maps raw bytes to their byte-level string. */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}

/** Maps a byte-level string back to bytes; null if any char is outside the alphabet. */
export function byteLevelToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 512 ? CHAR_TO_BYTE[c]! : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}

/** `<0xNN>` byte piece → byte value, or -1 when the string is not a byte piece. */
export function bytePieceValue(piece: string): number {
  if (piece.length !== 6 || !piece.startsWith("<0x") || piece[5] !== ">") return -1;
  const v = Number.parseInt(piece.slice(3, 5), 16);
  return Number.isNaN(v) || !/^[0-9A-Fa-f]{2}$/.test(piece.slice(3, 5)) ? -1 : v;
}

/** Byte value → `<0xNN>` (uppercase hex, as sentencepiece and HF both write it). */
export function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
}
