/**
 * GGUF tokenizer data ↔ the tokenizer module's classes.
 *
 * - "llama" (sentencepiece BPE: pieces, scores, types incl. <0xNN> byte
 *   pieces) becomes a sentencepiece model description → LlamaTokenizer,
 *   exactly what a `tokenizer.model` with the same pieces gives.
 * - "gpt2" (byte-level BPE with merges, e.g. Llama 3 with pre "llama-bpe")
 *   becomes a `tokenizer.json` dict → LlamaTokenizerFast.
 * And the other way, for the GGUF exporter: a sentencepiece model or a
 * byte-level tokenizer.json → GGUF tokenizer data.
 */
import { FormatError } from "../errors.js";
import { LlamaTokenizer, SentencePieceCore } from "../tokenizer/llama-tokenizer.js";
import { LlamaTokenizerFast } from "../tokenizer/llama-tokenizer-fast.js";
import { PieceType, type SentencePieceModel } from "../tokenizer/sentencepiece-model.js";
import { LLAMA3_SPLIT_PATTERN } from "../tokenizer/tiktoken.js";
import { TokenizerJson } from "../tokenizer/tokenizer-json.js";
import { GgufTokenType, type GgufTokenizerData } from "./gguf-tokenizer.js";

/** GPT-2's pre-tokenizer regex (llama.cpp's "default"/"gpt-2" pre type). */
const GPT2_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const SPLIT_PATTERNS: Record<string, { pattern: string; ignoreMerges: boolean }> = {
  "llama-bpe": { pattern: LLAMA3_SPLIT_PATTERN, ignoreMerges: true },
  "llama3": { pattern: LLAMA3_SPLIT_PATTERN, ignoreMerges: true },
  "smaug-bpe": { pattern: LLAMA3_SPLIT_PATTERN, ignoreMerges: true },
  "default": { pattern: GPT2_SPLIT_PATTERN, ignoreMerges: false },
  "gpt-2": { pattern: GPT2_SPLIT_PATTERN, ignoreMerges: false },
};

export type GgufTokenizer = LlamaTokenizer | LlamaTokenizerFast;

/** Builds the tokenizer a GGUF file describes (`source` names the file in errors). */
export function tokenizerFromGguf(data: GgufTokenizerData, source: string): GgufTokenizer {
  if (data.model === "llama") {
    return new LlamaTokenizer(new SentencePieceCore(ggufToSentencePieceModel(data, source)), {
      config: {
        addBosToken: data.addBosToken ?? true,
        addEosToken: data.addEosToken ?? false,
        ...(data.chatTemplate !== undefined ? { chatTemplate: data.chatTemplate } : {}),
      },
    });
  }
  if (data.model === "gpt2") {
    const json = ggufTokenizerToJson(data, source);
    return new LlamaTokenizerFast(new TokenizerJson(source, json), {
      config: {
        tokenizerClass: "PreTrainedTokenizerFast",
        ...(data.chatTemplate !== undefined ? { chatTemplate: data.chatTemplate } : {}),
      },
    });
  }
  throw new FormatError(source, `tokenizer.ggml.model "${data.model}" is not supported (expected "llama" or "gpt2")`);
}

/** A sentencepiece model description of a "llama" GGUF vocabulary (LLaMA 1/2's normalizer settings). */
export function ggufToSentencePieceModel(data: GgufTokenizerData, source: string): SentencePieceModel {
  const types = data.tokenTypes ?? data.tokens.map(() => GgufTokenType.NORMAL);
  const scores = data.scores ?? data.tokens.map(() => 0);
  const pieces = data.tokens.map((piece, i) => {
    const t = types[i]!;
    if (t < 1 || t > 6) throw new FormatError(source, `tokenizer.ggml.token_type[${i}] = ${t} (expected 1..6)`);
    return { piece, score: scores[i]!, type: t as PieceType };
  });
  const name = (id: number | undefined, fallback: string) => (id !== undefined && id < pieces.length ? pieces[id]!.piece : fallback);
  return {
    file: source,
    bytes: new Uint8Array(0),
    pieces,
    trainer: {
      modelType: 2,
      byteFallback: pieces.some((p) => p.type === PieceType.Byte),
      treatWhitespaceAsSuffix: false,
      unkPiece: name(data.unkTokenId, "<unk>"),
      bosPiece: name(data.bosTokenId, "<s>"),
      eosPiece: name(data.eosTokenId, "</s>"),
      padPiece: name(data.padTokenId, "<pad>"),
      unkSurface: " \u2047 ",
    },
    normalizer: {
      name: "identity",
      precompiledCharsmap: new Uint8Array(0),
      addDummyPrefix: data.addSpacePrefix ?? true,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
    },
  };
}

/** A `tokenizer.json` dict for a "gpt2" (byte-level BPE) GGUF vocabulary. */
export function ggufTokenizerToJson(data: GgufTokenizerData, source: string): Record<string, unknown> {
  const pre = SPLIT_PATTERNS[data.pre ?? "default"];
  if (!pre) throw new FormatError(source, `tokenizer.ggml.pre "${data.pre}" is not supported (expected one of ${Object.keys(SPLIT_PATTERNS).join(", ")})`);
  if (!data.merges) throw new FormatError(source, "a gpt2 tokenizer needs tokenizer.ggml.merges");
  const types = data.tokenTypes ?? [];
  const vocab: Record<string, number> = {};
  const added: Record<string, unknown>[] = [];
  data.tokens.forEach((tok, id) => {
    const t = types[id] ?? GgufTokenType.NORMAL;
    if (t === GgufTokenType.CONTROL || t === GgufTokenType.USER_DEFINED) {
      added.push({ id, content: tok, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t === GgufTokenType.CONTROL });
    } else {
      vocab[tok] = id;
    }
  });
  const bos = data.bosTokenId !== undefined ? data.tokens[data.bosTokenId] : undefined;
  const addBos = (data.addBosToken ?? true) && bos !== undefined;
  return {
    version: "1.0",
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: pre.pattern }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: addBos
      ? {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
          special_tokens: { [bos]: { id: bos, ids: [data.bosTokenId], tokens: [bos] } },
        }
      : null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: pre.ignoreMerges, vocab, merges: data.merges,
    },
  };
}

/** GGUF data for a sentencepiece model (the exporter's "llama" vocabulary). */
export function sentencePieceToGgufData(model: SentencePieceModel): GgufTokenizerData {
  const find = (piece: string) => model.pieces.findIndex((p) => p.piece === piece);
  const data: GgufTokenizerData = {
    model: "llama",
    pre: "default",
    tokens: model.pieces.map((p) => p.piece),
    scores: model.pieces.map((p) => p.score),
    tokenTypes: model.pieces.map((p) => p.type),
    addBosToken: true,
    addEosToken: false,
    addSpacePrefix: model.normalizer.addDummyPrefix,
  };
  const [unk, bos, eos] = [find(model.trainer.unkPiece), find(model.trainer.bosPiece), find(model.trainer.eosPiece)];
  if (unk >= 0) data.unkTokenId = unk;
  if (bos >= 0) data.bosTokenId = bos;
  if (eos >= 0) data.eosTokenId = eos;
  return data;
}

/** GGUF data for a byte-level BPE tokenizer.json (Llama 3 style), with llama.cpp's "llama-bpe" pre-tokenizer. */
export function tokenizerJsonToGgufData(json: Record<string, unknown>, source: string, opts: { addBosToken?: boolean; eosToken?: string } = {}): GgufTokenizerData {
  const model = json.model as { type?: string; vocab?: Record<string, number>; merges?: unknown[] } | undefined;
  if (!model || model.type !== "BPE" || !model.vocab || !Array.isArray(model.merges)) throw new FormatError(source, "expected a BPE tokenizer.json with vocab and merges");
  const pre = JSON.stringify(json.pre_tokenizer ?? null);
  if (!pre.includes("ByteLevel")) throw new FormatError(source, "only byte-level BPE tokenizer.json files map to GGUF's gpt2 vocabulary");
  const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []) as { id: number; content: string; special?: boolean }[];
  let size = 0;
  for (const id of Object.values(model.vocab)) size = Math.max(size, id + 1);
  for (const t of added) size = Math.max(size, t.id + 1);
  const tokens = new Array<string>(size);
  const types = new Array<number>(size).fill(GgufTokenType.NORMAL);
  for (const [tok, id] of Object.entries(model.vocab)) tokens[id] = tok;
  for (const t of added) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? GgufTokenType.CONTROL : GgufTokenType.USER_DEFINED;
  }
  for (let i = 0; i < size; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = GgufTokenType.UNUSED;
    }
  }
  const merges = model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : String(m)));
  const bosId = added.find((t) => t.content === "<|begin_of_text|>")?.id;
  const eosId = added.find((t) => t.content === (opts.eosToken ?? "<|end_of_text|>"))?.id;
  const data: GgufTokenizerData = { model: "gpt2", pre: "llama-bpe", tokens, tokenTypes: types, merges, addBosToken: opts.addBosToken ?? bosId !== undefined };
  if (bosId !== undefined) data.bosTokenId = bosId;
  if (eosId !== undefined) data.eosTokenId = eosId;
  return data;
}
