/**
 * LlamaTokenizerFast: a HF `tokenizer.json` (LLaMA 2's metaspace/byte-fallback
 * layout or Llama 3's byte-level one), or Meta's tiktoken-text Llama 3
 * `tokenizer.model`, behaving as HF `tokenizers` does: special-token text in
 * the input becomes the special token, and decoding writes special tokens
 * out unless skipSpecialTokens.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.js";
import { writeTextAtomic } from "../io/atomic.js";
import type { AddedToken } from "./added-tokens.js";
import { isTiktokenText, llama3SpecialTokenNames, parseTiktoken, tiktokenSpec } from "./tiktoken.js";
import { PreTrainedTokenizerBase, type TokenizerOptions } from "./tokenizer-base.js";
import { TokenizerJson } from "./tokenizer-json.js";
import { bytePieceValue } from "./utf8.js";

export interface LlamaTokenizerFastOptions extends TokenizerOptions {
  /** A parsed core to share (AutoTokenizer's per-process cache). */
  core?: TokenizerJson;
  /** For a tiktoken file without tokenizer_config.json: which special-token names (default Llama 3.1's). */
  llama3Version?: "3.1" | "3.0";
}

/** Loads tokenizer.json or a tiktoken tokenizer.model into a TokenizerJson pipeline (format detected by content). */
export function loadTokenizerJsonCore(file: string, opts: { config?: TokenizerOptions["config"]; llama3Version?: "3.1" | "3.0" } = {}): TokenizerJson {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new FormatError(file, `cannot read tokenizer file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const first = bytes.subarray(0, 64).toString("latin1").trimStart()[0];
  if (first === "{") return TokenizerJson.fromBytes(file, bytes);
  if (isTiktokenText(bytes)) {
    const byRank = parseTiktoken(bytes, file);
    // Special-token names: from tokenizer_config.json's added_tokens_decoder when present, else Llama 3's.
    const names = llama3SpecialTokenNames(opts.llama3Version ?? "3.1");
    for (const t of opts.config?.addedTokens ?? []) {
      const k = t.id - byRank.length;
      if (k >= 0 && k < names.length) names[k] = t.content;
    }
    return new TokenizerJson(file, tiktokenSpec(byRank, file, names), bytes);
  }
  throw new FormatError(file, "neither a tokenizer.json (JSON object) nor a tiktoken tokenizer.model (base64 rank lines); a sentencepiece tokenizer.model needs LlamaTokenizer");
}

export class LlamaTokenizerFast extends PreTrainedTokenizerBase {
  readonly core: TokenizerJson;
  readonly source: string;

  constructor(core: TokenizerJson, opts: TokenizerOptions = {}) {
    const cls = opts.config?.tokenizerClass;
    const single = core.template.single;
    super(opts, {
      // transformers: LlamaTokenizerFast pads left; PreTrainedTokenizerFast (Llama 3 files) pads right.
      paddingSide: cls === "PreTrainedTokenizerFast" ? "right" : "left",
      splitSpecialTokens: false,
      addBosToken: single[0]?.kind === "special",
      addEosToken: single.length > 1 && single[single.length - 1]!.kind === "special",
    });
    this.core = core;
    this.source = core.file;
    const has = (t: string) => (core.tokenToId(t) !== undefined ? t : null);
    const firstSpecial = single[0]?.kind === "special" ? core.idToToken(single[0].ids[0]!) ?? null : null;
    const unk = core.model.unkId;
    const c = this.config;
    // LlamaTokenizerFast follows add_bos_token/add_eos_token from the config; PreTrainedTokenizerFast keeps the file's template.
    const useConfigRule = cls !== "PreTrainedTokenizerFast" && (c.addBosToken !== undefined || c.addEosToken !== undefined);
    this.initSpecials(
      {
        bos: firstSpecial ?? has("<s>") ?? has("<|begin_of_text|>"),
        eos: has("</s>") ?? has("<|end_of_text|>"),
        unk: unk >= 0 ? (core.idToToken(unk) ?? null) : null,
        pad: null,
      },
      useConfigRule ? undefined : core.template,
    );
  }

  /** Loads a tokenizer.json, or a tiktoken Llama 3 tokenizer.model. */
  static fromFile(file: string, opts: LlamaTokenizerFastOptions = {}): LlamaTokenizerFast {
    return new LlamaTokenizerFast(opts.core ?? loadTokenizerJsonCore(file, opts), opts);
  }

  get vocabSize(): number {
    return this.core.model.size;
  }

  get length(): number {
    return this.core.size;
  }

  get addedTokens(): readonly AddedToken[] {
    return this.core.addedTokens;
  }

  tokenToId(token: string): number | undefined {
    return this.core.tokenToId(token);
  }

  idToToken(id: number): string | undefined {
    return this.core.idToToken(id);
  }

  isByte(id: number): boolean {
    return this.core.surfaceStyle === "metaspace" && !this.core.isAdded(id) && bytePieceValue(this.core.model.idToToken[id] ?? "") >= 0;
  }

  protected encodePlain(text: string, splitSpecial: boolean): number[] {
    return this.core.encode(text, splitSpecial);
  }

  protected decodeChecked(ids: readonly number[], skipSpecial: boolean): string {
    return this.core.decode(ids, skipSpecial);
  }

  /** The input bytes a token stands for (inspection); null for added tokens. */
  surfaceBytes(id: number): Uint8Array | null {
    return this.core.surfaceBytes(id);
  }

  /** Writes a byte-identical copy of the file this tokenizer was loaded from into `dir`; returns its path. */
  saveVocabulary(dir: string, filenamePrefix?: string): string {
    if (!this.core.bytes) throw new FormatError(this.source, "this tokenizer was not loaded from a file, so there is nothing to save");
    const file = path.join(dir, `${filenamePrefix ? `${filenamePrefix}-` : ""}${path.basename(this.source)}`);
    writeTextAtomic(file, this.core.bytes);
    return file;
  }
}
