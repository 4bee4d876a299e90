/**
 * The tokenizer part of a Meta → HF conversion. LLaMA 1/2 ship a
 * sentencepiece `tokenizer.model`: it is copied as is, with the
 * tokenizer_config.json HF's Llama-2 folders carry. Llama 3 ships a tiktoken
 * `tokenizer.model` (base64 token + rank per line): it becomes a
 * `tokenizer.json` through the tokenizer module's converter when that module
 * provides one (loaded on demand, so the converter has no hard dependency on it).
 */
import * as fs from "node:fs";
import * as path from "node:path";

export interface TokenizerFilesOptions {
  /** Folders to look for tokenizer.model in, first match wins. */
  searchDirs: string[];
  outputDir: string;
  llama3: boolean;
  maxPositions: number;
  onWarning?: (message: string) => void;
}

/** The signature the tokenizer module's tiktoken converter must have to be used here. */
type TiktokenToJson = (tiktokenFile: string) => Record<string, unknown> | Promise<Record<string, unknown>>;

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
  const convert = await findTiktokenConverter();
  if (!convert) {
    fs.copyFileSync(source, path.join(o.outputDir, "tokenizer.model"));
    o.onWarning?.("Llama 3 tokenizer.model copied as is: the tokenizer module provides no tiktoken → tokenizer.json converter");
    return ["tokenizer.model"];
  }
  write("tokenizer.json", await convert(source));
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

async function findTiktokenConverter(): Promise<TiktokenToJson | undefined> {
  try {
    // A computed specifier: the tokenizer module is optional for the converter.
    const spec = ["..", "tokenizer", "index.js"].join("/");
    const mod = (await import(spec)) as Record<string, unknown>;
    const fn = mod.tiktokenToTokenizerJson;
    return typeof fn === "function" ? (fn as TiktokenToJson) : undefined;
  } catch {
    return undefined;
  }
}
