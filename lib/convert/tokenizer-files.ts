/**
 * The tokenizer part of a Meta → HF conversion. LLaMA 1/2 ship a
 * sentencepiece `tokenizer.model`: it is copied as is, with the
 * tokenizer_config.json HF's Llama-2 folders carry. Llama 3 ships a tiktoken
 * `tokenizer.model` (base64 token + rank per line): it becomes a
 * `tokenizer.json` through the tokenizer module's tiktoken loader (which
 * derives the merges as transformers' TikTokenConverter does), serialized in
 * HF's layout (vocab object, merges as [left, right] pairs).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.js";
import type { MergeIds } from "../tokenizer/hf-bpe.js";
import { isTiktokenText, llama3SpecialTokenNames, parseTiktoken, tiktokenSpec } from "../tokenizer/tiktoken.js";

export interface TokenizerFilesOptions {
  /** Folders to look for tokenizer.model in, first match wins. */
  searchDirs: string[];
  outputDir: string;
  llama3: boolean;
  /** Special-token names of the Llama 3 generation (3.0's reserved names differ from 3.1's), as HF's converter picks them. */
  llama3Names?: "3.0" | "3.1";
  maxPositions: number;
  onWarning?: (message: string) => void;
}

/** Writes the tokenizer files into outputDir and returns their names (empty when there is no tokenizer). */
export async function convertTokenizerFiles(o: TokenizerFilesOptions): Promise<string[]> {
  const source = o.searchDirs.map((d) => path.join(d, "tokenizer.model")).find((f) => fs.existsSync(f));
  if (!source) {
    o.onWarning?.(`no tokenizer.model in ${[...new Set(o.searchDirs)].join(" or ")}: the output folder has weights and config only`);
    return [];
  }
  const write = (name: string, obj: unknown) => fs.writeFileSync(path.join(o.outputDir, name), JSON.stringify(obj, null, 2) + "\n");
  if (!o.llama3) {
    fs.copyFileSync(source, path.join(o.outputDir, "tokenizer.model"));
    write("tokenizer_config.json", {
      add_bos_token: true,
      add_eos_token: false,
      bos_token: "<s>",
      eos_token: "</s>",
      unk_token: "<unk>",
      pad_token: null,
      clean_up_tokenization_spaces: false,
      legacy: false,
      model_max_length: o.maxPositions,
      tokenizer_class: "LlamaTokenizer",
      sp_model_kwargs: {},
    });
    write("special_tokens_map.json", { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" });
    return ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"];
  }
  write("tokenizer.json", tiktokenToTokenizerJson(source, o.llama3Names ?? "3.1"));
  write("tokenizer_config.json", {
    bos_token: "<|begin_of_text|>",
    eos_token: "<|end_of_text|>",
    clean_up_tokenization_spaces: true,
    model_input_names: ["input_ids", "attention_mask"],
    model_max_length: o.maxPositions,
    tokenizer_class: "PreTrainedTokenizerFast",
  });
  write("special_tokens_map.json", { bos_token: "<|begin_of_text|>", eos_token: "<|end_of_text|>" });
  return ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];
}

/**
 * Meta's Llama 3 tiktoken `tokenizer.model` → an HF tokenizer.json dict
 * (byte-level BPE, ignore_merges, Llama 3 split regex, 256 special tokens
 * named as in Llama 3.0 or 3.1+).
 */
export function tiktokenToTokenizerJson(file: string, names: "3.0" | "3.1" = "3.1"): Record<string, unknown> {
  const bytes = fs.readFileSync(file);
  if (!isTiktokenText(bytes)) throw new FormatError(file, "not a tiktoken tokenizer.model (expected `base64 rank` lines): is this a LLaMA 1/2 sentencepiece model? use --llama_version 2");
  const spec = tiktokenSpec(parseTiktoken(bytes, file), file, llama3SpecialTokenNames(names));
  const model = spec.model as { vocab: ReadonlyMap<string, number>; merges: MergeIds } & Record<string, unknown>;
  const byId: string[] = [];
  for (const [tok, id] of model.vocab) byId[id] = tok;
  const merges: [string, string][] = [];
  for (let i = 0; i < model.merges.left.length; i++) merges.push([byId[model.merges.left[i]!]!, byId[model.merges.right[i]!]!]);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: spec.added_tokens,
    normalizer: spec.normalizer,
    pre_tokenizer: spec.pre_tokenizer,
    post_processor: spec.post_processor,
    decoder: spec.decoder,
    model: { ...model, dropout: null, continuing_subword_prefix: null, end_of_word_suffix: null, vocab: Object.fromEntries(model.vocab), merges },
  };
}
