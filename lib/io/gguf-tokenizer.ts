/**
 * The tokenizer a GGUF file carries in `tokenizer.ggml.*` metadata, as plain
 * data (the tokenizer module builds a tokenizer from it):
 *   model        "llama" (sentencepiece-style BPE with scores + byte tokens), "gpt2" (byte-level BPE + merges), …
 *   pre          the pre-tokenizer name for "gpt2" models ("llama-bpe" = Llama 3's regex, …)
 *   tokens[i]    the piece of id i; scores[i] (llama); token_type[i]: 1 normal, 2 unknown,
 *                3 control, 4 user-defined, 5 unused, 6 byte
 *   merges       "a b" pairs in rank order (gpt2)
 *   bos/eos/unknown/padding token ids, add_bos_token/add_eos_token, chat_template
 */
import { FormatError } from "../errors.js";
import type { GgufEntry, GgufFile } from "./gguf.js";
import { GgufValueType } from "./gguf-types.js";
import { gguf } from "./gguf-writer.js";

export enum GgufTokenType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export interface GgufTokenizerData {
  model: string;
  pre?: string;
  tokens: string[];
  scores?: number[];
  tokenTypes?: number[];
  merges?: string[];
  bosTokenId?: number;
  eosTokenId?: number;
  unkTokenId?: number;
  padTokenId?: number;
  addBosToken?: boolean;
  addEosToken?: boolean;
  addSpacePrefix?: boolean;
  chatTemplate?: string;
}

/** The tokenizer metadata of a GGUF file, or null when it has none. */
export function readGgufTokenizer(f: GgufFile): GgufTokenizerData | null {
  if (!f.has("tokenizer.ggml.model")) return null;
  const model = f.string("tokenizer.ggml.model");
  const tokens = f.array("tokenizer.ggml.tokens", "string") ?? [];
  const data: GgufTokenizerData = { model, tokens };
  const n = tokens.length;
  const sameLength = (key: string, arr: unknown[] | undefined) => {
    if (arr && arr.length !== n) throw new FormatError(f.path, `metadata "${key}" has ${arr.length} entries, tokenizer.ggml.tokens has ${n}`);
    return arr;
  };
  if (f.has("tokenizer.ggml.pre")) data.pre = f.string("tokenizer.ggml.pre");
  const scores = sameLength("tokenizer.ggml.scores", f.array("tokenizer.ggml.scores", "number"));
  if (scores) data.scores = scores as number[];
  const types = sameLength("tokenizer.ggml.token_type", f.array("tokenizer.ggml.token_type", "number"));
  if (types) data.tokenTypes = types as number[];
  const merges = f.array("tokenizer.ggml.merges", "string");
  if (merges) data.merges = merges;
  const id = (key: string): number | undefined => {
    if (!f.has(key)) return undefined;
    const v = f.number(key);
    if (!Number.isInteger(v) || v < 0 || (n > 0 && v >= n)) throw new FormatError(f.path, `metadata "${key}" = ${v}: not a token id (vocabulary has ${n} tokens)`);
    return v;
  };
  const bos = id("tokenizer.ggml.bos_token_id");
  const eos = id("tokenizer.ggml.eos_token_id");
  const unk = id("tokenizer.ggml.unknown_token_id");
  const pad = id("tokenizer.ggml.padding_token_id");
  if (bos !== undefined) data.bosTokenId = bos;
  if (eos !== undefined) data.eosTokenId = eos;
  if (unk !== undefined) data.unkTokenId = unk;
  if (pad !== undefined) data.padTokenId = pad;
  if (f.has("tokenizer.ggml.add_bos_token")) data.addBosToken = f.bool("tokenizer.ggml.add_bos_token", true);
  if (f.has("tokenizer.ggml.add_eos_token")) data.addEosToken = f.bool("tokenizer.ggml.add_eos_token", false);
  if (f.has("tokenizer.ggml.add_space_prefix")) data.addSpacePrefix = f.bool("tokenizer.ggml.add_space_prefix", true);
  if (f.has("tokenizer.chat_template")) data.chatTemplate = f.string("tokenizer.chat_template");
  return data;
}

/** The metadata entries that store `data` (for the GGUF writer). */
export function tokenizerMetadata(data: GgufTokenizerData): [string, GgufEntry][] {
  const md: [string, GgufEntry][] = [["tokenizer.ggml.model", gguf.str(data.model)]];
  if (data.pre !== undefined) md.push(["tokenizer.ggml.pre", gguf.str(data.pre)]);
  md.push(["tokenizer.ggml.tokens", gguf.arr(GgufValueType.STRING, data.tokens)]);
  if (data.scores) md.push(["tokenizer.ggml.scores", gguf.arr(GgufValueType.FLOAT32, data.scores)]);
  if (data.tokenTypes) md.push(["tokenizer.ggml.token_type", gguf.arr(GgufValueType.INT32, data.tokenTypes)]);
  if (data.merges) md.push(["tokenizer.ggml.merges", gguf.arr(GgufValueType.STRING, data.merges)]);
  const ids: [keyof GgufTokenizerData, string][] = [
    ["bosTokenId", "bos_token_id"], ["eosTokenId", "eos_token_id"], ["unkTokenId", "unknown_token_id"], ["padTokenId", "padding_token_id"],
  ];
  for (const [field, key] of ids) {
    const v = data[field];
    if (typeof v === "number") md.push([`tokenizer.ggml.${key}`, gguf.u32(v)]);
  }
  if (data.addBosToken !== undefined) md.push(["tokenizer.ggml.add_bos_token", gguf.bool(data.addBosToken)]);
  if (data.addEosToken !== undefined) md.push(["tokenizer.ggml.add_eos_token", gguf.bool(data.addEosToken)]);
  if (data.addSpacePrefix !== undefined) md.push(["tokenizer.ggml.add_space_prefix", gguf.bool(data.addSpacePrefix)]);
  if (data.chatTemplate !== undefined) md.push(["tokenizer.chat_template", gguf.str(data.chatTemplate)]);
  return md;
}

/**
 * A placeholder sentencepiece-style vocabulary of `size` tokens (<unk>, <s>,
 * </s>, the 256 byte tokens, then distinct filler pieces), for exporting
 * models that have no tokenizer of their own (test fixtures): llama.cpp
 * requires a vocabulary to load a model.
 */
export function syntheticSpmVocab(size: number): GgufTokenizerData {
  if (size < 259) throw new FormatError("<synthetic vocab>", `a sentencepiece vocabulary needs at least 259 tokens (3 specials + 256 bytes), got ${size}`);
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [GgufTokenType.UNKNOWN, GgufTokenType.CONTROL, GgufTokenType.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(GgufTokenType.BYTE);
  }
  for (let i = tokens.length; i < size; i++) {
    tokens.push(`\u2581t${i}`);
    types.push(GgufTokenType.NORMAL);
  }
  return {
    model: "llama",
    pre: "default",
    tokens,
    scores: tokens.map((_, i) => (i < 259 ? 0 : -i)),
    tokenTypes: types,
    bosTokenId: 1,
    eosTokenId: 2,
    unkTokenId: 0,
    addBosToken: true,
    addEosToken: false,
  };
}
