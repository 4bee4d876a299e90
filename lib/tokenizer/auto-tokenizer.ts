/**
 * AutoTokenizer: loads the right tokenizer for a path, as transformers'
 * AutoTokenizer does for a local folder. A folder with tokenizer.json gets
 * LlamaTokenizerFast (unless useFast: false), else its tokenizer.model:
 * protobuf → LlamaTokenizer, tiktoken text → LlamaTokenizerFast.
 * tokenizer_config.json and special_tokens_map.json are applied when present.
 * A single file may be passed too (format detected by content).
 *
 * Parsing Llama 3's 9 MB tokenizer.json takes a while, so the parsed
 * vocabulary/merges are cached per process (keyed by path, size and mtime);
 * each call still returns a fresh tokenizer object, so settings changed on
 * one (padTokenId, addBosToken…) never leak into another.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, LlamaError } from "../errors.js";
import { resolveModelPath } from "../io/checkpoint.js";
import { LlamaTokenizer, SentencePieceCore } from "./llama-tokenizer.js";
import { LlamaTokenizerFast, loadTokenizerJsonCore } from "./llama-tokenizer-fast.js";
import { isTiktokenText } from "./tiktoken.js";
import type { TokenizerOptions } from "./tokenizer-base.js";
import { readTokenizerConfig, type TokenizerConfig } from "./tokenizer-config.js";
import type { TokenizerJson } from "./tokenizer-json.js";

export type LlamaAnyTokenizer = LlamaTokenizer | LlamaTokenizerFast;

export interface AutoTokenizerOptions extends Omit<TokenizerOptions, "config"> {
  /** Prefer tokenizer.json when a folder has both (default true, like transformers). */
  useFast?: boolean;
  /** Settings to use instead of (or for a single file, in the absence of) tokenizer_config.json. */
  config?: TokenizerConfig;
  llama3Version?: "3.1" | "3.0";
}

const coreCache = new Map<string, SentencePieceCore | TokenizerJson>();

function cacheKey(file: string, extra: string): string {
  const st = fs.statSync(file);
  return `${path.resolve(file)}\0${st.size}\0${st.mtimeMs}\0${extra}`;
}

function sniff(file: string): "json" | "tiktoken" | "sentencepiece" {
  const fd = fs.openSync(file, "r");
  try {
    const head = Buffer.alloc(256);
    const n = fs.readSync(fd, head, 0, 256, 0);
    const bytes = head.subarray(0, n);
    if (bytes.toString("latin1").trimStart().startsWith("{")) return "json";
    if (isTiktokenText(bytes)) return "tiktoken";
    return "sentencepiece";
  } finally {
    fs.closeSync(fd);
  }
}

function loadFile(file: string, config: TokenizerConfig, opts: AutoTokenizerOptions): LlamaAnyTokenizer {
  const kind = sniff(file);
  const tokOpts: TokenizerOptions = { config, padTokenId: opts.padTokenId, splitSpecialTokens: opts.splitSpecialTokens };
  if (kind === "sentencepiece") {
    const key = cacheKey(file, "spm");
    let core = coreCache.get(key) as SentencePieceCore | undefined;
    if (!core) {
      core = SentencePieceCore.fromFile(file);
      coreCache.set(key, core);
    }
    return new LlamaTokenizer(core, tokOpts);
  }
  const names = (config.addedTokens ?? []).map((t) => `${t.id}=${t.content}`).join(",");
  const key = cacheKey(file, `json:${opts.llama3Version ?? ""}:${kind === "tiktoken" ? names : ""}`);
  let core = coreCache.get(key) as TokenizerJson | undefined;
  if (!core) {
    core = loadTokenizerJsonCore(file, { config, llama3Version: opts.llama3Version });
    coreCache.set(key, core);
  }
  return new LlamaTokenizerFast(core, tokOpts);
}

export class AutoTokenizer {
  /** Loads a tokenizer from a model folder, a tokenizer.json, or a tokenizer.model (protobuf or tiktoken). */
  static fromPretrained(nameOrPath: string, opts: AutoTokenizerOptions = {}): LlamaAnyTokenizer {
    // A path as is; a model name of the package ("tiny-stories") or of the local HF cache as fromPretrained finds it.
    let pathOrDir = nameOrPath;
    let st: fs.Stats;
    try {
      if (!fs.existsSync(nameOrPath)) pathOrDir = resolveModelPath(nameOrPath);
      st = fs.statSync(pathOrDir);
    } catch (err) {
      const why = err instanceof LlamaError ? ` (${err.message})` : "";
      throw new FormatError(nameOrPath, `no such tokenizer file or model folder (expected a folder with tokenizer.model or tokenizer.json, or one of those files)${why}`);
    }
    if (st.isFile()) {
      const sibling = readTokenizerConfig(path.dirname(pathOrDir));
      return loadFile(pathOrDir, opts.config ?? sibling, opts);
    }
    const config = opts.config ?? readTokenizerConfig(pathOrDir);
    const json = path.join(pathOrDir, "tokenizer.json");
    const model = path.join(pathOrDir, "tokenizer.model");
    const hasJson = fs.existsSync(json);
    const hasModel = fs.existsSync(model);
    if (hasJson && (opts.useFast !== false || !hasModel)) return loadFile(json, config, opts);
    if (hasModel) return loadFile(model, config, opts);
    throw new FormatError(pathOrDir, "folder has neither tokenizer.json nor tokenizer.model");
  }

  /** Drops the per-process cache of parsed vocabularies (tests, or to free memory). */
  static clearCache(): void {
    coreCache.clear();
  }
}
