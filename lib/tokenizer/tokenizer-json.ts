/**
 * A Hugging Face `tokenizer.json`, assembled into a pipeline that behaves as
 * the Rust `tokenizers` library does: added tokens split out of the raw
 * text → normalizer → pre-tokenizer → BPE model; decoding maps ids to token
 * strings (added tokens first) and runs the decoder chain. Only BPE models
 * are supported (LLaMA 2 metaspace/byte-fallback and LLaMA 3 byte-level);
 * other model types are a FormatError naming the type.
 */
import * as fs from "node:fs";
import { FormatError } from "../errors.js";
import { AddedTokenMatcher, addedTokenFromJson, type AddedToken, type Segment } from "./added-tokens.js";
import { HfBpe, type MergeIds } from "./hf-bpe.js";
import { buildDecoder, type Decoder } from "./hf-decoders.js";
import { buildNormalizer, buildPreTokenizer, type Normalizer, type PreTokenizerInfo } from "./hf-text-steps.js";
import { templateFromPostProcessor, type SpecialTemplate } from "./special-template.js";
import { byteLevelToBytes, bytePieceValue, utf8Encode, wellFormed } from "./utf8.js";

/** The parts of tokenizer.json we read; vocab may already be a Map (tiktoken import). */
export interface TokenizerJsonSpec {
  readonly normalizer?: unknown;
  readonly pre_tokenizer?: unknown;
  readonly post_processor?: unknown;
  readonly decoder?: unknown;
  readonly added_tokens?: unknown;
  readonly model?: unknown;
}

/** How a token string maps back to input bytes (for inspection). */
export type SurfaceStyle = "byte-level" | "metaspace";

export class TokenizerJson {
  readonly model: HfBpe;
  readonly addedTokens: readonly AddedToken[];
  readonly template: SpecialTemplate;
  readonly surfaceStyle: SurfaceStyle;
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly rawMatcher: AddedTokenMatcher;
  private readonly normalizedMatcher: AddedTokenMatcher;
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: PreTokenizerInfo | null;
  private readonly decoder: Decoder | null;

  constructor(readonly file: string, spec: TokenizerJsonSpec, readonly bytes?: Uint8Array) {
    const model = (spec.model ?? null) as Record<string, unknown> | null;
    if (!model || typeof model !== "object") throw new FormatError(file, "missing \"model\" object");
    const type = model.type ?? (model.merges !== undefined ? "BPE" : undefined);
    if (type !== "BPE") {
      throw new FormatError(file, `model.type is ${JSON.stringify(type)}; only "BPE" tokenizers (LLaMA's) are supported (not WordPiece, Unigram or WordLevel)`);
    }
    for (const k of ["continuing_subword_prefix", "end_of_word_suffix"] as const) {
      if (model[k] !== null && model[k] !== undefined && model[k] !== "") throw new FormatError(file, `model.${k} is set (${JSON.stringify(model[k])}); BPE with subword prefixes/suffixes is not supported`);
    }
    if (typeof model.dropout === "number" && model.dropout > 0) throw new FormatError(file, "model.dropout > 0 (BPE dropout) is not supported: encoding would not be deterministic");
    const vocab = readVocab(model.vocab, file);
    this.model = new HfBpe(
      {
        vocab,
        merges: readMerges(model.merges, vocab, file),
        unkToken: typeof model.unk_token === "string" ? model.unk_token : null,
        byteFallback: model.byte_fallback === true,
        fuseUnk: model.fuse_unk === true,
        ignoreMerges: model.ignore_merges === true,
      },
      file,
    );
    this.addedTokens = readAddedTokens(spec.added_tokens, file);
    for (const t of this.addedTokens) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
    }
    this.rawMatcher = new AddedTokenMatcher(this.addedTokens.filter((t) => !t.normalized));
    this.normalizedMatcher = new AddedTokenMatcher(this.addedTokens.filter((t) => t.normalized));
    this.normalizer = buildNormalizer(spec.normalizer, file);
    this.preTokenizer = buildPreTokenizer(spec.pre_tokenizer, file);
    this.decoder = buildDecoder(spec.decoder, file);
    this.template = templateFromPostProcessor(spec.post_processor, file, (t) => this.tokenToId(t));
    const dec = spec.decoder as { type?: unknown } | null | undefined;
    this.surfaceStyle = this.preTokenizer?.byteLevelLast || dec?.type === "ByteLevel" ? "byte-level" : "metaspace";
  }

  static fromFile(file: string): TokenizerJson {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      throw new FormatError(file, `cannot read tokenizer.json (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    return TokenizerJson.fromBytes(file, bytes);
  }

  static fromBytes(file: string, bytes: Buffer): TokenizerJson {
    let spec: unknown;
    try {
      spec = JSON.parse(bytes.toString("utf8"));
    } catch (err) {
      throw new FormatError(file, `not valid JSON (${(err as Error).message})`);
    }
    if (typeof spec !== "object" || spec === null || Array.isArray(spec)) throw new FormatError(file, "tokenizer.json must be a JSON object");
    return new TokenizerJson(file, spec as TokenizerJsonSpec, bytes);
  }

  /** Number of ids: model vocab plus added tokens beyond it. */
  get size(): number {
    let n = this.model.idToToken.length;
    for (const t of this.addedTokens) n = Math.max(n, t.id + 1);
    return n;
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    const added = this.addedById.get(id);
    if (added) return added.content;
    const t = this.model.idToToken[id];
    return t === undefined || (t === "" && !this.model.vocab.has("")) ? undefined : t;
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  isAdded(id: number): boolean {
    return this.addedById.has(id);
  }

  /** Encodes without post-processor specials. `splitSpecial`: treat added-token text as plain text. */
  encode(text: string, splitSpecial = false): number[] {
    const out: number[] = [];
    this.encodeInto(text, splitSpecial, out);
    return out;
  }

  private encodeInto(text: string, splitSpecial: boolean, out: number[]): void {
    const clean = wellFormed(text);
    const segments: Segment[] = splitSpecial ? [{ text: clean, start: 0, end: clean.length }] : this.rawMatcher.split(clean);
    for (const seg of segments) {
      if (seg.id !== undefined) out.push(seg.id);
      else {
        const normalized = this.normalizer ? this.normalizer(seg.text) : seg.text;
        const subs = splitSpecial || this.normalizedMatcher.empty ? [{ text: normalized } as Segment] : this.normalizedMatcher.split(normalized);
        subs.forEach((sub, k) => {
          if (sub.id !== undefined) out.push(sub.id);
          else this.encodePlain(sub.text, seg.start === 0 && k === 0, out);
        });
      }
    }
  }

  private encodePlain(text: string, atStart: boolean, out: number[]): void {
    if (text.length === 0) return;
    const pieces = this.preTokenizer ? this.preTokenizer.run([text], atStart) : [text];
    if (this.preTokenizer?.byteLevelLast) {
      for (const p of pieces) this.model.encodeByteLevel(p, out);
    } else {
      for (const p of pieces) this.model.encodeWord(p, out);
    }
  }

  /** Decodes valid ids (the caller checks the range) through the decoder chain. */
  decode(ids: readonly number[], skipSpecial: boolean): string {
    const tokens: string[] = [];
    for (const id of ids) {
      if (skipSpecial && this.isSpecial(id)) continue;
      const t = this.idToToken(id);
      if (t !== undefined) tokens.push(t);
    }
    return this.decoder ? this.decoder(tokens).join("") : tokens.join(" ");
  }

  /** The input bytes a model token stands for (inspection); null for added tokens. */
  surfaceBytes(id: number): Uint8Array | null {
    if (this.addedById.has(id)) return null;
    const t = this.model.idToToken[id];
    if (t === undefined) return null;
    const b = bytePieceValue(t);
    if (b >= 0 && this.surfaceStyle === "metaspace") return Uint8Array.of(b);
    if (this.surfaceStyle === "byte-level") return byteLevelToBytes(t) ?? utf8Encode(t);
    return utf8Encode(t.replaceAll("\u2581", " "));
  }
}

function readVocab(v: unknown, file: string): Map<string, number> {
  if (v instanceof Map) return v as Map<string, number>;
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FormatError(file, "model.vocab must be an object of token → id");
  const obj = v as Record<string, unknown>;
  const m = new Map<string, number>();
  // Object.keys + index is several times faster than Object.entries on a 128k-key object.
  for (const tok of Object.keys(obj)) {
    const id = obj[tok];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) throw new FormatError(file, `model.vocab[${JSON.stringify(tok)}] = ${JSON.stringify(id)} is not a non-negative integer id`);
    m.set(tok, id);
  }
  return m;
}

/** Resolves merges ("a b" strings or [a, b] pairs) to token ids, naming the first bad rule. */
function readMerges(v: unknown, vocab: ReadonlyMap<string, number>, file: string): MergeIds {
  if (v === undefined || v === null) return { left: new Int32Array(0), right: new Int32Array(0), merged: null };
  if (typeof v === "object" && !Array.isArray(v) && (v as MergeIds).left instanceof Int32Array) return v as MergeIds;
  if (!Array.isArray(v)) throw new FormatError(file, "model.merges must be an array");
  const left = new Int32Array(v.length);
  const right = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const m: unknown = v[i];
    let a: string, b: string;
    if (typeof m === "string") {
      // Legacy form "a b": tokens never contain a plain space (it is mapped to Ġ or ▁).
      const sp = m.indexOf(" ");
      if (sp <= 0 || sp !== m.lastIndexOf(" ")) throw new FormatError(file, `model.merges[${i}] ${JSON.stringify(m)} is not "left right"`);
      a = m.slice(0, sp);
      b = m.slice(sp + 1);
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
      a = m[0];
      b = m[1];
    } else throw new FormatError(file, `model.merges[${i}] must be "left right" or ["left", "right"]`);
    const l = vocab.get(a);
    const r = vocab.get(b);
    if (l === undefined || r === undefined) throw new FormatError(file, `model.merges[${i}] "${a} ${b}": token ${JSON.stringify(l === undefined ? a : b)} is not in the vocab`);
    left[i] = l;
    right[i] = r;
  }
  return { left, right, merged: null };
}

function readAddedTokens(v: unknown, file: string): AddedToken[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new FormatError(file, "added_tokens must be an array");
  return v.map((t, i) => {
    const o = t as Record<string, unknown>;
    if (typeof o?.content !== "string" || typeof o.id !== "number" || !Number.isInteger(o.id) || o.id < 0) {
      throw new FormatError(file, `added_tokens[${i}] needs a string "content" and a non-negative integer "id"`);
    }
    return addedTokenFromJson(o.id, o.content, o);
  });
}
