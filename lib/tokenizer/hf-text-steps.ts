/**
 * The text steps of a `tokenizer.json` before the model: normalizers and
 * pre-tokenizers, built from their JSON. Each step is a plain function on
 * strings. Supported: the ones LLaMA-family files use (Sequence, Prepend,
 * Replace, NFC/NFD/NFKC/NFKD, Lowercase, Strip; Split, ByteLevel, Metaspace,
 * Digits, Whitespace). Anything else is a FormatError naming the type.
 */
import { FormatError } from "../errors.js";
import { compileOnigPattern, escapeRegex } from "./hf-regex.js";
import { BYTE_TO_CHAR, utf8Encode } from "./utf8.js";

export type Normalizer = (text: string) => string;

/** A pre-tokenizer splits each piece further. `atStart`: the piece begins the whole input (Metaspace "first"). */
export type PreTokenizer = (pieces: string[], atStart: boolean) => string[];

type Json = Record<string, unknown>;

function obj(v: unknown, file: string, where: string): Json {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FormatError(file, `${where} must be an object`);
  return v as Json;
}

function str(v: unknown, file: string, where: string): string {
  if (typeof v !== "string") throw new FormatError(file, `${where} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

/** A Split/Replace `pattern`: {"String": "..."} or {"Regex": "..."}. */
function pattern(v: unknown, file: string, where: string): RegExp {
  const p = obj(v, file, where);
  if (typeof p.String === "string") return new RegExp(escapeRegex(p.String), "gu");
  if (typeof p.Regex === "string") return compileOnigPattern(p.Regex, file, where);
  throw new FormatError(file, `${where} must be {"String": ...} or {"Regex": ...}`);
}

export function buildNormalizer(spec: unknown, file: string, where = "normalizer"): Normalizer | null {
  if (spec === null || spec === undefined) return null;
  const s = obj(spec, file, where);
  const type = str(s.type, file, `${where}.type`);
  switch (type) {
    case "Sequence": {
      if (!Array.isArray(s.normalizers)) throw new FormatError(file, `${where}.normalizers must be an array`);
      const steps = s.normalizers.map((n, i) => buildNormalizer(n, file, `${where}.normalizers[${i}]`)).filter((n): n is Normalizer => n !== null);
      return (t) => steps.reduce((acc, f) => f(acc), t);
    }
    case "Prepend": {
      const p = str(s.prepend, file, `${where}.prepend`);
      // HF prepends only to non-empty text.
      return (t) => (t.length > 0 ? p + t : t);
    }
    case "Replace": {
      const re = pattern(s.pattern, file, `${where}.pattern`);
      const content = str(s.content, file, `${where}.content`);
      return (t) => t.replace(re, () => content);
    }
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD":
      return (t) => t.normalize(type);
    case "Lowercase":
      return (t) => t.toLowerCase();
    case "Strip": {
      const left = s.strip_left !== false;
      const right = s.strip_right !== false;
      return (t) => (left && right ? t.replace(/^\p{White_Space}+|\p{White_Space}+$/gu, "") : left ? t.replace(/^\p{White_Space}+/u, "") : right ? t.replace(/\p{White_Space}+$/u, "") : t);
    }
    default:
      throw new FormatError(file, `${where}: unsupported normalizer type "${type}" (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip)`);
  }
}

/** GPT-2's split pattern, used by ByteLevel when use_regex is true. */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

export interface PreTokenizerInfo {
  readonly run: PreTokenizer;
  /** True when the last step is ByteLevel: its byte mapping is left to the model (so caches key on raw text). */
  readonly byteLevelLast: boolean;
}

/** Splits text by a regex with one of HF's SplitDelimiterBehavior values. */
export function splitBy(text: string, re: RegExp, behavior: string, invert: boolean): string[] {
  // Alternating (isMatch, text) segments covering the whole string.
  const segs: [boolean, string][] = [];
  let last = 0;
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) {
    if (m[0].length === 0) continue;
    const at = m.index!;
    if (at > last) segs.push([invert, text.slice(last, at)]);
    segs.push([!invert, m[0]]);
    last = at + m[0].length;
  }
  if (last < text.length) segs.push([invert, text.slice(last)]);
  // Folds mirror tokenizers' SplitDelimiterBehavior (normalizer.rs).
  const out: string[] = [];
  switch (behavior) {
    case "Isolated":
      for (const [, t] of segs) out.push(t);
      break;
    case "Removed":
      for (const [isMatch, t] of segs) if (!isMatch) out.push(t);
      break;
    case "MergedWithPrevious": {
      let prevMatch = false;
      for (const [isMatch, t] of segs) {
        if (isMatch && !prevMatch && out.length > 0) out[out.length - 1] += t;
        else out.push(t);
        prevMatch = isMatch;
      }
      break;
    }
    case "MergedWithNext": {
      // Folded from the right: a match joins the segment after it unless that one is a match too.
      let nextMatch = false;
      for (let k = segs.length - 1; k >= 0; k--) {
        const [isMatch, t] = segs[k]!;
        if (isMatch && !nextMatch && out.length > 0) out[out.length - 1] = t + out[out.length - 1];
        else out.push(t);
        nextMatch = isMatch;
      }
      out.reverse();
      break;
    }
    case "Contiguous": {
      let prevMatch = false;
      for (const [isMatch, t] of segs) {
        if (isMatch === prevMatch && out.length > 0) out[out.length - 1] += t;
        else out.push(t);
        prevMatch = isMatch;
      }
      break;
    }
    default:
      throw new Error(`unknown split behavior ${behavior}`);
  }
  return out;
}

export function buildPreTokenizer(spec: unknown, file: string): PreTokenizerInfo | null {
  if (spec === null || spec === undefined) return null;
  const steps = flatten(spec, file, "pre_tokenizer");
  let byteLevelLast = false;
  const last = steps[steps.length - 1];
  if (last && last.type === "ByteLevel" && last.use_regex === false && last.add_prefix_space !== true) {
    byteLevelLast = true;
    steps.pop();
  }
  const fns = steps.map((s, i) => buildStep(s, file, `pre_tokenizer step ${i} (${String(s.type)})`));
  const run: PreTokenizer = (pieces, atStart) => {
    let cur = pieces;
    for (const f of fns) cur = f(cur, atStart);
    return cur;
  };
  return { run, byteLevelLast };
}

function flatten(spec: unknown, file: string, where: string): Json[] {
  const s = obj(spec, file, where);
  if (s.type === "Sequence") {
    if (!Array.isArray(s.pretokenizers)) throw new FormatError(file, `${where}.pretokenizers must be an array`);
    return s.pretokenizers.flatMap((p, i) => flatten(p, file, `${where}.pretokenizers[${i}]`));
  }
  return [s];
}

function buildStep(s: Json, file: string, where: string): PreTokenizer {
  const type = str(s.type, file, `${where}.type`);
  switch (type) {
    case "Split": {
      const re = pattern(s.pattern, file, `${where}.pattern`);
      const behavior = str(s.behavior, file, `${where}.behavior`);
      if (!["Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"].includes(behavior)) {
        throw new FormatError(file, `${where}.behavior: unknown value "${behavior}"`);
      }
      const invert = s.invert === true;
      return (pieces) => pieces.flatMap((p) => splitBy(p, re, behavior, invert));
    }
    case "ByteLevel": {
      // Mid-sequence ByteLevel (or one that splits/prefixes) maps to the byte alphabet here.
      const re = s.use_regex === false ? null : compileOnigPattern(GPT2_PATTERN, file, where);
      const addPrefix = s.add_prefix_space === true;
      return (pieces) =>
        pieces.flatMap((p) => {
          const q = addPrefix && !p.startsWith(" ") ? " " + p : p;
          return (re ? splitBy(q, re, "Isolated", false) : [q]).map(toByteLevel);
        });
    }
    case "Metaspace": {
      const rep = str(s.replacement ?? "\u2581", file, `${where}.replacement`);
      const scheme = typeof s.prepend_scheme === "string" ? s.prepend_scheme : s.add_prefix_space === false ? "never" : "always";
      const split = s.split !== false;
      return (pieces, atStart) =>
        pieces.flatMap((p, i) => {
          let q = p.replaceAll(" ", rep);
          const first = atStart && i === 0;
          if (!q.startsWith(rep) && (scheme === "always" || (scheme === "first" && first))) q = rep + q;
          return split ? splitBy(q, new RegExp(escapeRegex(rep), "gu"), "MergedWithNext", false) : [q];
        });
    }
    case "Digits": {
      const re = s.individual_digits === true ? /\p{N}/gu : /\p{N}+/gu;
      return (pieces) => pieces.flatMap((p) => splitBy(p, re, "Isolated", false));
    }
    case "Whitespace":
      return (pieces) => pieces.flatMap((p) => Array.from(p.matchAll(/\w+|[^\w\s]+/gu), (m) => m[0]));
    case "WhitespaceSplit":
      return (pieces) => pieces.flatMap((p) => p.split(/\p{White_Space}+/u).filter((x) => x.length > 0));
    default:
      throw new FormatError(file, `${where}: unsupported pre-tokenizer type "${type}" (supported: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit)`);
  }
}


function toByteLevel(text: string): string {
  const bytes = utf8Encode(text);
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}
