/**
 * Decoders of a `tokenizer.json` (tokenizers' decoders/*.rs): each maps the
 * list of token strings to a new list (decode_chain), and the result is
 * joined. The details matter for exact text: ByteFallback turns a run of
 * `<0xNN>` tokens that is not valid UTF-8 into one U+FFFD PER BYTE, while
 * ByteLevel decodes its bytes leniently (one U+FFFD per invalid subpart);
 * Strip works per token; Metaspace drops ▁ from the first token.
 */
import { FormatError } from "../errors.js";
import { CHAR_TO_BYTE, utf8DecodeLenient, utf8Encode } from "./utf8.js";

export type Decoder = (tokens: string[]) => string[];

type Json = Record<string, unknown>;

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function buildDecoder(spec: unknown, file: string, where = "decoder"): Decoder | null {
  if (spec === null || spec === undefined) return null;
  if (typeof spec !== "object" || Array.isArray(spec)) throw new FormatError(file, `${where} must be an object`);
  const s = spec as Json;
  switch (s.type) {
    case "Sequence": {
      if (!Array.isArray(s.decoders)) throw new FormatError(file, `${where}.decoders must be an array`);
      const steps = s.decoders.map((d, i) => buildDecoder(d, file, `${where}.decoders[${i}]`)).filter((d): d is Decoder => d !== null);
      return (tokens) => steps.reduce((acc, f) => f(acc), tokens);
    }
    case "Replace": {
      const p = s.pattern as Json | undefined;
      if (!p || typeof p.String !== "string" || typeof s.content !== "string") {
        throw new FormatError(file, `${where}: Replace decoder needs pattern {"String": ...} and a string content`);
      }
      const from = p.String;
      const to = s.content;
      return (tokens) => tokens.map((t) => t.replaceAll(from, to));
    }
    case "ByteFallback":
      return byteFallback;
    case "Fuse":
      return (tokens) => [tokens.join("")];
    case "Strip": {
      const content = typeof s.content === "string" ? s.content : " ";
      const start = Number(s.start ?? 0);
      const stop = Number(s.stop ?? 0);
      return (tokens) => tokens.map((t) => strip(t, content, start, stop));
    }
    case "ByteLevel":
      return byteLevel;
    case "Metaspace": {
      const rep = typeof s.replacement === "string" ? s.replacement : "\u2581";
      const scheme = typeof s.prepend_scheme === "string" ? s.prepend_scheme : s.add_prefix_space === false ? "never" : "always";
      return (tokens) =>
        tokens.map((t, i) => {
          let out = "";
          for (const c of t) out += c === rep ? (i === 0 && scheme !== "never" ? "" : " ") : c;
          return out;
        });
    }
    default:
      throw new FormatError(file, `${where}: unsupported decoder type "${String(s.type)}" (supported: Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace)`);
  }
}

function parseByteToken(t: string): number {
  if (t.length !== 6 || !t.startsWith("<0x") || t[5] !== ">") return -1;
  const hex = t.slice(3, 5);
  return /^[0-9a-fA-F]{2}$/.test(hex) ? Number.parseInt(hex, 16) : -1;
}

function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  const pending: number[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    try {
      out.push(strictDecoder.decode(Uint8Array.from(pending)));
    } catch {
      for (let i = 0; i < pending.length; i++) out.push("\ufffd");
    }
    pending.length = 0;
  };
  for (const t of tokens) {
    const b = parseByteToken(t);
    if (b >= 0) pending.push(b);
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

function strip(token: string, content: string, start: number, stop: number): string {
  const chars = Array.from(token);
  let a = 0;
  for (let i = 0; i < Math.min(start, chars.length); i++) {
    if (chars[i] === content) a = i + 1;
    else break;
  }
  let b = chars.length;
  for (let i = 0; i < stop; i++) {
    const k = chars.length - i - 1;
    if (k < 0 || chars[k] !== content) break;
    b = k;
  }
  return b > a ? chars.slice(a, b).join("") : "";
}

/** Byte-level alphabet back to bytes; a token with any char outside the alphabet contributes its raw UTF-8. */
function byteLevel(tokens: string[]): string[] {
  const bytes: number[] = [];
  for (const t of tokens) {
    let ok = true;
    const start = bytes.length;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      const b = c < 512 ? CHAR_TO_BYTE[c]! : -1;
      if (b < 0) {
        ok = false;
        break;
      }
      bytes.push(b);
    }
    if (!ok) {
      bytes.length = start;
      for (const b of utf8Encode(t)) bytes.push(b);
    }
  }
  return [utf8DecodeLenient(Uint8Array.from(bytes))];
}
