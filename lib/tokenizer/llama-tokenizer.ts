/**
 * LlamaTokenizer: a sentencepiece `tokenizer.model` (BPE, byte fallback),
 * encoding and decoding exactly as the sentencepiece library does. Text like
 * `<s>` is plain text here (as `sp.encode` treats it); pass
 * `{splitSpecialTokens: false}` to have added/special token strings
 * recognised as HF's slow tokenizer does (chat templates always do).
 *
 * Decoding follows sentencepiece's DecodeIds: control tokens (BOS/EOS) are
 * invisible, `<unk>` reads " ⁇ ", byte tokens are assembled into UTF-8 with
 * one U+FFFD per invalid byte, and the first visible piece loses one leading
 * ▁ (the dummy prefix), BOS/EOS not counting as first.
 */
import * as path from "node:path";
import { FormatError } from "../errors.js";
import { writeTextAtomic } from "../io/atomic.js";
import { AddedTokenMatcher, type AddedToken } from "./added-tokens.js";
import { PieceType, readSentencePieceModel, type SentencePieceModel } from "./sentencepiece-model.js";
import { SpmBpe } from "./spm-bpe.js";
import { SpmNormalizer } from "./spm-normalizer.js";
import { PreTrainedTokenizerBase, type TokenizerOptions } from "./tokenizer-base.js";
import { utf8DecodePerByte, utf8Encode } from "./utf8.js";

const SPACE = "\u2581";

/** Parsed model + encoder, shared by every LlamaTokenizer built from the same file. */
export class SentencePieceCore {
  readonly bpe: SpmBpe;
  readonly normalizer: SpmNormalizer;
  /** Normal, user-defined and unused pieces (spm's pieces_). */
  private readonly normalIds = new Map<string, number>();
  /** Control, unknown and byte pieces (spm's reserved_id_map_), which PieceToId consults first. */
  private readonly reservedIds = new Map<string, number>();
  readonly unkId: number;

  constructor(readonly model: SentencePieceModel) {
    const { pieces, trainer } = model;
    pieces.forEach((p, id) => {
      const reserved = p.type === PieceType.Control || p.type === PieceType.Unknown || p.type === PieceType.Byte;
      const map = reserved ? this.reservedIds : this.normalIds;
      const prev = map.get(p.piece);
      if (prev !== undefined) throw new FormatError(model.file, `piece ${JSON.stringify(p.piece)} is defined twice (ids ${prev} and ${id})`);
      map.set(p.piece, id);
      if (p.type === PieceType.Byte && !trainer.byteFallback) throw new FormatError(model.file, `piece ${id} is a byte piece but byte_fallback is off`);
    });
    const unk = pieces.findIndex((p) => p.type === PieceType.Unknown);
    if (unk < 0) throw new FormatError(model.file, "no piece of type UNKNOWN: sentencepiece requires an <unk> piece");
    this.unkId = unk;
    this.bpe = new SpmBpe({ pieces, unkId: unk, byteFallback: trainer.byteFallback });
    this.normalizer = new SpmNormalizer(model.normalizer, trainer.treatWhitespaceAsSuffix, model.file);
  }

  static fromFile(file: string): SentencePieceCore {
    return new SentencePieceCore(readSentencePieceModel(file));
  }

  /** sentencepiece's Encode: normalize, then BPE. */
  encode(text: string, out: number[]): void {
    const normalized = this.normalizer.normalize(text);
    if (normalized.length > 0) this.bpe.encode(normalized, out);
  }

  /** The id a piece string has in sentencepiece (control/byte/unknown first), or undefined. */
  pieceToId(piece: string): number | undefined {
    return this.reservedIds.get(piece) ?? this.normalIds.get(piece);
  }

  /** sentencepiece's DecodeIds (ids already checked to be in range). */
  decode(ids: readonly number[]): string {
    const { pieces, trainer } = this.model;
    const stripFirst = this.normalizer.addDummyPrefix || this.normalizer.removeExtraWhitespaces;
    const suffix = trainer.treatWhitespaceAsSuffix;
    // With whitespace-as-suffix the dummy ▁ sits on the LAST visible piece.
    let lastVisible = -1;
    if (suffix) for (let i = ids.length - 1; i >= 0 && lastVisible < 0; i--) if (pieces[ids[i]!]!.type !== PieceType.Control) lastVisible = i;
    let out = "";
    let firstPending = true;
    const bytes: number[] = [];
    const flushBytes = () => {
      if (bytes.length === 0) return;
      out += utf8DecodePerByte(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (let i = 0; i < ids.length; i++) {
      const p = pieces[ids[i]!]!;
      if (p.type === PieceType.Byte) {
        bytes.push(Number.parseInt(p.piece.slice(3, 5), 16));
        firstPending = false;
        continue;
      }
      flushBytes();
      if (p.type === PieceType.Control) continue; // invisible; does not count as the first piece
      if (p.type === PieceType.Unknown) {
        out += trainer.unkSurface;
        firstPending = false;
        continue;
      }
      let piece = p.piece;
      if (!suffix && firstPending && stripFirst && piece.startsWith(SPACE)) piece = piece.slice(1);
      if (suffix && i === lastVisible && stripFirst && piece.endsWith(SPACE)) piece = piece.slice(0, -1);
      firstPending = false;
      out += piece.replaceAll(SPACE, " ");
    }
    flushBytes();
    return out;
  }
}

export interface LlamaTokenizerOptions extends TokenizerOptions {
  /** A parsed core to share (AutoTokenizer's per-process cache). */
  core?: SentencePieceCore;
}

export class LlamaTokenizer extends PreTrainedTokenizerBase {
  readonly core: SentencePieceCore;
  readonly source: string;
  private readonly added: readonly AddedToken[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly matcher: AddedTokenMatcher;

  constructor(core: SentencePieceCore, opts: TokenizerOptions = {}) {
    // HF's LlamaTokenizer: padding_side "left", add_bos_token true, add_eos_token false.
    super(opts, { paddingSide: "left", splitSpecialTokens: true, addBosToken: true, addEosToken: false });
    this.core = core;
    this.source = core.model.file;
    const { pieces, trainer } = core.model;
    const byName = (name: string, type: PieceType) => {
      const id = core.pieceToId(name);
      return id !== undefined && pieces[id]!.type === type ? name : null;
    };
    // HF's slow tokenizer registers unk/bos/eos as special added tokens unless the config lists its own.
    this.added = this.config.addedTokens ?? [trainer.unkPiece, trainer.bosPiece, trainer.eosPiece]
      .map((content) => ({ content, id: core.pieceToId(content) }))
      .filter((t): t is { content: string; id: number } => t.id !== undefined)
      .map((t) => ({ ...t, special: true, lstrip: false, rstrip: false, singleWord: false, normalized: false }));
    for (const t of this.added) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
    }
    this.matcher = new AddedTokenMatcher(this.added);
    this.initSpecials({
      bos: byName(trainer.bosPiece, PieceType.Control),
      eos: byName(trainer.eosPiece, PieceType.Control),
      unk: byName(trainer.unkPiece, PieceType.Unknown),
      pad: byName(trainer.padPiece, PieceType.Control),
    });
  }

  /** Loads a sentencepiece `tokenizer.model` file. */
  static fromFile(file: string, opts: LlamaTokenizerOptions = {}): LlamaTokenizer {
    return new LlamaTokenizer(opts.core ?? SentencePieceCore.fromFile(file), opts);
  }

  get vocabSize(): number {
    return this.core.model.pieces.length;
  }

  get length(): number {
    let n = this.vocabSize;
    for (const t of this.added) n = Math.max(n, t.id + 1);
    return n;
  }

  get addedTokens(): readonly AddedToken[] {
    return this.added;
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.core.pieceToId(token);
  }

  idToToken(id: number): string | undefined {
    if (id >= 0 && id < this.vocabSize) return this.core.model.pieces[id]!.piece;
    return this.addedById.get(id)?.content;
  }

  /** sentencepiece piece type of an id (for inspection). */
  pieceType(id: number): PieceType | undefined {
    return this.core.model.pieces[id]?.type;
  }

  isByte(id: number): boolean {
    return this.pieceType(id) === PieceType.Byte;
  }

  protected encodePlain(text: string, splitSpecial: boolean): number[] {
    const out: number[] = [];
    if (splitSpecial || this.matcher.empty) {
      this.core.encode(text, out);
      return out;
    }
    // Each text segment between special tokens is encoded on its own (with its own dummy prefix), as HF's slow tokenizer does.
    for (const seg of this.matcher.split(text)) {
      if (seg.id !== undefined) out.push(seg.id);
      else this.core.encode(seg.text, out);
    }
    return out;
  }

  protected decodeChecked(ids: readonly number[], skipSpecial: boolean): string {
    const special = skipSpecial ? this.allSpecialIds : null;
    let out = "";
    let run: number[] = [];
    for (const id of ids) {
      if (special?.has(id)) continue;
      if (id >= this.vocabSize) {
        // Added tokens beyond the sentencepiece vocab are written as their text.
        out += this.core.decode(run) + this.addedById.get(id)!.content;
        run = [];
      } else run.push(id);
    }
    return out + this.core.decode(run);
  }

  /** The input bytes a token stands for (inspection); null for control/unknown/added tokens. */
  surfaceBytes(id: number): Uint8Array | null {
    const p = this.core.model.pieces[id];
    if (!p || p.type === PieceType.Control || p.type === PieceType.Unknown) return null;
    if (p.type === PieceType.Byte) return Uint8Array.of(Number.parseInt(p.piece.slice(3, 5), 16));
    return utf8Encode(p.piece.replaceAll(SPACE, " "));
  }

  /** HF save_vocabulary: writes a byte-identical `[prefix-]tokenizer.model` into `dir`; returns its path. */
  saveVocabulary(dir: string, filenamePrefix?: string): string {
    const file = path.join(dir, `${filenamePrefix ? `${filenamePrefix}-` : ""}tokenizer.model`);
    writeTextAtomic(file, this.core.model.bytes);
    return file;
  }
}
