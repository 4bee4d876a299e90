/**
 * sentencepiece `tokenizer.model`: a protobuf ModelProto
 * (sentencepiece_model.proto). We read the pieces (string, score, type), the
 * trainer spec fields that change encoding (model type, byte_fallback,
 * special piece names, unk surface, whitespace-as-suffix) and the normalizer
 * spec (dummy prefix, whitespace handling, precompiled charsmap).
 */
import * as fs from "node:fs";
import { FormatError } from "../errors.js";
import { readFields, utf8Field, expectWire, WireType } from "./protobuf.js";

/** sentencepiece piece types (ModelProto.SentencePiece.Type). */
export enum PieceType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

export interface SentencePiece {
  readonly piece: string;
  /** float32 score: higher merges first in BPE. */
  readonly score: number;
  readonly type: PieceType;
}

export interface TrainerSpec {
  /** 1 unigram, 2 BPE, 3 word, 4 char. */
  readonly modelType: number;
  readonly byteFallback: boolean;
  readonly treatWhitespaceAsSuffix: boolean;
  readonly unkPiece: string;
  readonly bosPiece: string;
  readonly eosPiece: string;
  readonly padPiece: string;
  /** What `<unk>` decodes to (default " ⁇ "). */
  readonly unkSurface: string;
}

export interface NormalizerSpec {
  readonly name: string;
  readonly precompiledCharsmap: Uint8Array;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
}

export interface SentencePieceModel {
  readonly file: string;
  /** The raw file bytes (save_vocabulary writes them back byte for byte). */
  readonly bytes: Uint8Array;
  readonly pieces: readonly SentencePiece[];
  readonly trainer: TrainerSpec;
  readonly normalizer: NormalizerSpec;
}

/** Pieces beyond this are refused: no real model comes near it, and it bounds memory on a corrupt file. */
const MAX_PIECES = 4_000_000;

const MODEL_TYPE_NAMES: Record<number, string> = { 1: "unigram", 2: "bpe", 3: "word", 4: "char" };

export function readSentencePieceModel(file: string): SentencePieceModel {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new FormatError(file, `cannot read sentencepiece model (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseSentencePieceModel(bytes, file);
}

export function parseSentencePieceModel(bytes: Uint8Array, file = "<sentencepiece model>"): SentencePieceModel {
  if (bytes.length === 0) throw new FormatError(file, "empty file: expected a sentencepiece ModelProto");
  const pieces: SentencePiece[] = [];
  let trainerBytes: Uint8Array | undefined;
  let trainerBase = 0;
  let normalizerBytes: Uint8Array | undefined;
  let normalizerBase = 0;
  for (const f of readFields(file, bytes)) {
    if (f.number === 1) {
      expectWire(file, f, WireType.LengthDelimited, "ModelProto.pieces");
      if (pieces.length >= MAX_PIECES) throw new FormatError(file, `more than ${MAX_PIECES} pieces: not a plausible sentencepiece model`);
      pieces.push(parsePiece(file, f.bytes, f.offset, pieces.length));
    } else if (f.number === 2) {
      expectWire(file, f, WireType.LengthDelimited, "ModelProto.trainer_spec");
      trainerBytes = f.bytes;
      trainerBase = f.offset;
    } else if (f.number === 3) {
      expectWire(file, f, WireType.LengthDelimited, "ModelProto.normalizer_spec");
      normalizerBytes = f.bytes;
      normalizerBase = f.offset;
    }
    // 4 self_test_data, 5 denormalizer_spec and unknown fields are skipped.
  }
  if (pieces.length === 0) throw new FormatError(file, "no pieces: not a sentencepiece model (or an empty one)");
  const trainer = parseTrainer(file, trainerBytes, trainerBase);
  if (trainer.modelType !== 2) {
    const name = MODEL_TYPE_NAMES[trainer.modelType] ?? `type ${trainer.modelType}`;
    throw new FormatError(file, `sentencepiece model_type is ${name}; only BPE models (LLaMA's) are supported`);
  }
  const normalizer = parseNormalizer(file, normalizerBytes, normalizerBase);
  return { file, bytes, pieces, trainer, normalizer };
}

function parsePiece(file: string, buf: Uint8Array, base: number, index: number): SentencePiece {
  let piece: string | undefined;
  let score = 0;
  let type = PieceType.Normal;
  for (const f of readFields(file, buf, base)) {
    if (f.number === 1) piece = utf8Field(file, f, `piece ${index} string`);
    else if (f.number === 2) {
      expectWire(file, f, WireType.Fixed32, `piece ${index} score`);
      score = f.float32;
    } else if (f.number === 3) {
      expectWire(file, f, WireType.Varint, `piece ${index} type`);
      type = f.int32 as PieceType;
      if (type < 1 || type > 6) throw new FormatError(file, `piece ${index} has unknown type ${f.int32} (expected 1..6)`);
    }
  }
  if (piece === undefined || piece.length === 0) throw new FormatError(file, `piece ${index} has an empty string (sentencepiece requires non-empty pieces)`);
  if (!Number.isFinite(score)) throw new FormatError(file, `piece ${index} (${JSON.stringify(piece)}) has a non-finite score ${score}`);
  return { piece, score, type };
}

function parseTrainer(file: string, buf: Uint8Array | undefined, base: number): TrainerSpec {
  const spec = {
    modelType: 1, // proto default: UNIGRAM
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
    unkPiece: "<unk>",
    bosPiece: "<s>",
    eosPiece: "</s>",
    padPiece: "<pad>",
    unkSurface: " \u2047 ",
  };
  if (!buf) return spec;
  for (const f of readFields(file, buf, base)) {
    switch (f.number) {
      case 3: expectWire(file, f, WireType.Varint, "trainer_spec.model_type"); spec.modelType = f.int32; break;
      case 24: expectWire(file, f, WireType.Varint, "trainer_spec.treat_whitespace_as_suffix"); spec.treatWhitespaceAsSuffix = f.int32 !== 0; break;
      case 35: expectWire(file, f, WireType.Varint, "trainer_spec.byte_fallback"); spec.byteFallback = f.int32 !== 0; break;
      case 44: spec.unkSurface = utf8Field(file, f, "trainer_spec.unk_surface"); break;
      case 45: spec.unkPiece = utf8Field(file, f, "trainer_spec.unk_piece"); break;
      case 46: spec.bosPiece = utf8Field(file, f, "trainer_spec.bos_piece"); break;
      case 47: spec.eosPiece = utf8Field(file, f, "trainer_spec.eos_piece"); break;
      case 48: spec.padPiece = utf8Field(file, f, "trainer_spec.pad_piece"); break;
      default: break; // training-only settings
    }
  }
  return spec;
}

function parseNormalizer(file: string, buf: Uint8Array | undefined, base: number): NormalizerSpec {
  const spec: { -readonly [K in keyof NormalizerSpec]: NormalizerSpec[K] } = {
    name: "",
    precompiledCharsmap: new Uint8Array(0) as Uint8Array,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  if (!buf) return spec;
  for (const f of readFields(file, buf, base)) {
    switch (f.number) {
      case 1: spec.name = utf8Field(file, f, "normalizer_spec.name"); break;
      case 2: expectWire(file, f, WireType.LengthDelimited, "normalizer_spec.precompiled_charsmap"); spec.precompiledCharsmap = f.bytes; break;
      case 3: expectWire(file, f, WireType.Varint, "normalizer_spec.add_dummy_prefix"); spec.addDummyPrefix = f.int32 !== 0; break;
      case 4: expectWire(file, f, WireType.Varint, "normalizer_spec.remove_extra_whitespaces"); spec.removeExtraWhitespaces = f.int32 !== 0; break;
      case 5: expectWire(file, f, WireType.Varint, "normalizer_spec.escape_whitespaces"); spec.escapeWhitespaces = f.int32 !== 0; break;
      default: break;
    }
  }
  return spec;
}
