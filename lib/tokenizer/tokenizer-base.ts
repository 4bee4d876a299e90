/**
 * What every tokenizer offers, with HF transformers' semantics (camelCase
 * names): encode/decode, the batch call with padding and truncation, the v4
 * special-token API (buildInputsWithSpecialTokens, getSpecialTokensMask,
 * createTokenTypeIdsFromSequences), token/id conversion and chat templates.
 * Subclasses supply the model: `encodePlain` (text → ids, no template
 * specials), `decodeChecked`, and the vocabulary lookups.
 *
 * Pad policy: LLaMA tokenizers have no pad token. `padTokenId` is the
 * configured pad token if there is one, else the `padTokenId` option, else
 * EOS (the usual choice for LLaMA; `padTokenSource` says which). Padding with
 * the EOS fallback prints a one-line note on stderr once per tokenizer.
 */
import { InputError } from "../errors.js";
import type { AddedToken } from "./added-tokens.js";
import { renderChatTemplate, type ChatMessage, type ChatTemplateOptions } from "./chat-template.js";
import { applyTemplate, countSpecials, llamaTemplate, type SpecialTemplate } from "./special-template.js";
import type { TokenizerConfig } from "./tokenizer-config.js";

export interface EncodeOptions {
  /** Add BOS/EOS as the tokenizer's template says (default true). */
  addSpecialTokens?: boolean;
  /**
   * HF's split_special_tokens: true = text like `<s>` is plain text (sentencepiece
   * semantics, the default for a tokenizer.model); false = it becomes the special
   * token (the default for a tokenizer.json, and always for chat templates).
   */
  splitSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
  /** HF's clean_up_tokenization_spaces (" ." → "." …); default from tokenizer_config.json, else false. */
  cleanUpTokenizationSpaces?: boolean;
}

export type PaddingStrategy = boolean | "longest" | "max_length" | "do_not_pad";
export type TruncationStrategy = boolean | "longest_first" | "only_first" | "do_not_truncate";

export interface CallOptions extends EncodeOptions {
  padding?: PaddingStrategy;
  truncation?: TruncationStrategy;
  /** Target length for truncation and 'max_length' padding (default: modelMaxLength). */
  maxLength?: number;
  padToMultipleOf?: number;
  paddingSide?: "left" | "right";
  truncationSide?: "left" | "right";
  returnAttentionMask?: boolean;
}

export interface BatchEncoding {
  /** [batch][seq] */
  inputIds: number[][];
  /** [batch][seq], 1 for real tokens and 0 for padding (absent when returnAttentionMask is false). */
  attentionMask?: number[][];
}

export interface TokenizerOptions {
  /** Settings from tokenizer_config.json / special_tokens_map.json. */
  config?: TokenizerConfig;
  /** Pad id to use when the tokenizer defines no pad token (default: EOS). */
  padTokenId?: number;
  /** Default for EncodeOptions.splitSpecialTokens. */
  splitSpecialTokens?: boolean;
}

const VERY_LARGE_INTEGER = Number.MAX_SAFE_INTEGER;

export abstract class PreTrainedTokenizerBase {
  /** Size of the base vocabulary (HF's vocab_size). */
  abstract readonly vocabSize: number;
  /** Number of ids including added tokens (HF's len(tokenizer)). */
  abstract get length(): number;
  abstract tokenToId(token: string): number | undefined;
  abstract idToToken(id: number): string | undefined;
  /** Added tokens (special or not), by id. */
  abstract get addedTokens(): readonly AddedToken[];
  protected abstract encodePlain(text: string, splitSpecialTokens: boolean): number[];
  protected abstract decodeChecked(ids: readonly number[], skipSpecialTokens: boolean): string;
  /** Where the vocabulary came from (file path), for messages. */
  abstract readonly source: string;

  readonly config: TokenizerConfig;
  bosToken: string | null = null;
  eosToken: string | null = null;
  unkToken: string | null = null;
  padToken: string | null = null;
  modelMaxLength: number;
  paddingSide: "left" | "right";
  truncationSide: "left" | "right";
  chatTemplate: string | Record<string, string> | undefined;
  cleanUpTokenizationSpaces: boolean;
  protected readonly defaultSplitSpecial: boolean;
  private padOverride: number | undefined;
  private template: SpecialTemplate;
  private addBos: boolean;
  private addEos: boolean;
  private warnedPad = false;

  protected constructor(opts: TokenizerOptions, defaults: { paddingSide: "left" | "right"; splitSpecialTokens: boolean; addBosToken: boolean; addEosToken: boolean }) {
    this.config = opts.config ?? {};
    this.modelMaxLength = this.config.modelMaxLength ?? VERY_LARGE_INTEGER;
    this.paddingSide = this.config.paddingSide ?? defaults.paddingSide;
    this.truncationSide = this.config.truncationSide ?? "right";
    this.chatTemplate = this.config.chatTemplate;
    this.cleanUpTokenizationSpaces = this.config.cleanUpTokenizationSpaces ?? false;
    this.defaultSplitSpecial = opts.splitSpecialTokens ?? defaults.splitSpecialTokens;
    this.padOverride = opts.padTokenId;
    this.addBos = this.config.addBosToken ?? defaults.addBosToken;
    this.addEos = this.config.addEosToken ?? defaults.addEosToken;
    this.template = llamaTemplate(null, null); // set by initSpecials()
  }

  /** Called by subclasses once the vocabulary exists. `template` overrides the add_bos/add_eos rule. */
  protected initSpecials(defaults: { bos: string | null; eos: string | null; unk: string | null; pad: string | null }, template?: SpecialTemplate): void {
    const c = this.config;
    this.bosToken = c.bosToken !== undefined ? c.bosToken : defaults.bos;
    this.eosToken = c.eosToken !== undefined ? c.eosToken : defaults.eos;
    this.unkToken = c.unkToken !== undefined ? c.unkToken : defaults.unk;
    this.padToken = c.padToken !== undefined ? c.padToken : defaults.pad;
    this.template = template ?? this.llamaRule();
  }

  private llamaRule(): SpecialTemplate {
    return llamaTemplate(this.addBos ? this.bosTokenId : null, this.addEos ? this.eosTokenId : null);
  }

  private idOf(token: string | null): number | null {
    if (token === null) return null;
    return this.tokenToId(token) ?? null;
  }

  get bosTokenId(): number | null {
    return this.idOf(this.bosToken);
  }
  get eosTokenId(): number | null {
    return this.idOf(this.eosToken);
  }
  get unkTokenId(): number | null {
    return this.idOf(this.unkToken);
  }
  /** The id used for padding: pad token, else the padTokenId option, else EOS (see padTokenSource). */
  get padTokenId(): number | null {
    return this.idOf(this.padToken) ?? this.padOverride ?? this.eosTokenId;
  }
  set padTokenId(id: number | null) {
    this.padToken = null;
    this.padOverride = id ?? undefined;
  }
  get padTokenSource(): "pad_token" | "option" | "eos" | "none" {
    if (this.idOf(this.padToken) !== null) return "pad_token";
    if (this.padOverride !== undefined) return "option";
    return this.eosTokenId !== null ? "eos" : "none";
  }

  get addBosToken(): boolean {
    return this.addBos;
  }
  set addBosToken(v: boolean) {
    this.addBos = v;
    this.template = this.llamaRule();
  }
  get addEosToken(): boolean {
    return this.addEos;
  }
  set addEosToken(v: boolean) {
    this.addEos = v;
    this.template = this.llamaRule();
  }

  /** Ids HF counts as special: bos, eos, unk, pad and added tokens marked special. */
  get allSpecialIds(): Set<number> {
    const s = new Set<number>();
    for (const id of [this.bosTokenId, this.eosTokenId, this.unkTokenId, this.idOf(this.padToken)]) if (id !== null) s.add(id);
    for (const t of this.addedTokens) if (t.special) s.add(t.id);
    for (const t of this.config.additionalSpecialTokens ?? []) {
      const id = this.tokenToId(t);
      if (id !== undefined) s.add(id);
    }
    return s;
  }

  // ---- encoding ----

  encode(text: string, opts: EncodeOptions = {}): number[] {
    checkText(text, "encode");
    const ids = this.encodePlain(text, opts.splitSpecialTokens ?? this.defaultSplitSpecial);
    return opts.addSpecialTokens === false ? ids : this.buildInputsWithSpecialTokens(ids);
  }

  /** Token strings of `text` (no specials), like HF's tokenize(). */
  tokenize(text: string, opts: Omit<EncodeOptions, "addSpecialTokens"> = {}): string[] {
    return this.convertIdsToTokens(this.encode(text, { ...opts, addSpecialTokens: false }));
  }

  /**
   * HF's `tokenizer(texts, ...)`: encodes a batch (a single string is a batch
   * of one), truncates each to maxLength, pads to the longest or to maxLength.
   */
  call(texts: string | readonly string[], opts: CallOptions = {}): BatchEncoding {
    const batch = typeof texts === "string" ? [texts] : texts;
    if (!Array.isArray(batch)) throw new InputError(`tokenizer call: texts must be a string or an array of strings`);
    const addSpecial = opts.addSpecialTokens !== false;
    const split = opts.splitSpecialTokens ?? this.defaultSplitSpecial;
    const truncate = opts.truncation !== undefined && opts.truncation !== false && opts.truncation !== "do_not_truncate";
    const padding = opts.padding === true ? "longest" : opts.padding === false || opts.padding === undefined ? "do_not_pad" : opts.padding;
    if (!["longest", "max_length", "do_not_pad"].includes(padding)) throw new InputError(`tokenizer call: padding must be true, false, "longest", "max_length" or "do_not_pad", got ${JSON.stringify(opts.padding)}`);
    const maxLength = opts.maxLength ?? (truncate || padding === "max_length" ? this.modelMaxLength : undefined);
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 0)) throw new InputError(`tokenizer call: maxLength must be a non-negative integer, got ${maxLength}`);
    if (padding === "max_length" && maxLength === VERY_LARGE_INTEGER) throw new InputError(`tokenizer call: padding "max_length" needs maxLength (this tokenizer has no model_max_length)`);
    const truncSide = opts.truncationSide ?? this.truncationSide;
    const numSpecial = addSpecial ? countSpecials(this.template, false) : 0;
    const inputIds = batch.map((text, i) => {
      if (typeof text !== "string") throw new InputError(`tokenizer call: texts[${i}] is ${typeof text}, expected a string`);
      let ids = this.encodePlain(text, split);
      if (truncate && maxLength !== undefined && ids.length + numSpecial > maxLength) {
        const keep = Math.max(0, maxLength - numSpecial);
        ids = truncSide === "right" ? ids.slice(0, keep) : ids.slice(ids.length - keep);
      }
      return addSpecial ? this.buildInputsWithSpecialTokens(ids) : ids;
    });
    const returnMask = opts.returnAttentionMask !== false;
    const attentionMask = inputIds.map((ids) => ids.map(() => 1));
    if (padding !== "do_not_pad") {
      let target = padding === "longest" ? Math.max(0, ...inputIds.map((x) => x.length)) : maxLength!;
      const mult = opts.padToMultipleOf;
      if (mult !== undefined && mult > 0 && target % mult !== 0) target = (Math.floor(target / mult) + 1) * mult;
      const side = opts.paddingSide ?? this.paddingSide;
      const needsPad = inputIds.some((x) => x.length < target);
      const pad = this.padTokenId;
      if (needsPad && pad === null) throw new InputError(`tokenizer call: padding needs a pad token, and this tokenizer has neither pad nor eos; pass {padTokenId} when loading`);
      if (needsPad && this.padTokenSource === "eos" && !this.warnedPad) {
        this.warnedPad = true;
        process.stderr.write(`llama-ts: tokenizer has no pad token; padding with eos id ${pad} (attention_mask marks the padding). Set tokenizer.padTokenId to choose another.\n`);
      }
      for (let i = 0; i < inputIds.length; i++) {
        const n = target - inputIds[i]!.length;
        if (n <= 0) continue;
        const ids = new Array<number>(n).fill(pad!);
        const zeros = new Array<number>(n).fill(0);
        if (side === "left") {
          inputIds[i] = [...ids, ...inputIds[i]!];
          attentionMask[i] = [...zeros, ...attentionMask[i]!];
        } else {
          inputIds[i] = [...inputIds[i]!, ...ids];
          attentionMask[i] = [...attentionMask[i]!, ...zeros];
        }
      }
    }
    return returnMask ? { inputIds, attentionMask } : { inputIds };
  }

  // ---- HF v4 special-token API ----

  /** `bos? + a + eos?`, and for a pair `+ bos? + b + eos?` (or the tokenizer.json template). */
  buildInputsWithSpecialTokens(a: readonly number[], b?: readonly number[]): number[] {
    return applyTemplate(this.template, a, b).ids;
  }

  /** 1 where a special token is (or would be added), 0 for sequence tokens. */
  getSpecialTokensMask(a: readonly number[], b?: readonly number[], alreadyHasSpecialTokens = false): number[] {
    if (alreadyHasSpecialTokens) {
      if (b !== undefined) throw new InputError("getSpecialTokensMask: with alreadyHasSpecialTokens, pass one already-built sequence, not a pair");
      const special = this.allSpecialIds;
      return a.map((id) => (special.has(id) ? 1 : 0));
    }
    return applyTemplate(this.template, a, b).specialMask;
  }

  /** 0 over the first sequence and its specials, 1 over the second (HF's token_type_ids). */
  createTokenTypeIdsFromSequences(a: readonly number[], b?: readonly number[]): number[] {
    return applyTemplate(this.template, a, b).typeIds;
  }

  numSpecialTokensToAdd(pair = false): number {
    return countSpecials(this.template, pair);
  }

  // ---- decoding ----

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    this.checkIds(ids, "decode");
    const text = this.decodeChecked(ids, opts.skipSpecialTokens === true);
    return (opts.cleanUpTokenizationSpaces ?? this.cleanUpTokenizationSpaces) ? cleanUpTokenization(text) : text;
  }

  batchDecode(sequences: readonly (readonly number[])[], opts: DecodeOptions = {}): string[] {
    return sequences.map((ids) => this.decode(ids, opts));
  }

  convertIdsToTokens(ids: readonly number[]): string[];
  convertIdsToTokens(id: number): string;
  convertIdsToTokens(ids: number | readonly number[]): string | string[] {
    if (typeof ids === "number") {
      this.checkIds([ids], "convertIdsToTokens");
      return this.idToToken(ids)!;
    }
    this.checkIds(ids, "convertIdsToTokens");
    return ids.map((id) => this.idToToken(id)!);
  }

  /** Unknown tokens map to the unk id (HF behaviour), or throw when there is no unk token. */
  convertTokensToIds(tokens: readonly string[]): number[];
  convertTokensToIds(token: string): number;
  convertTokensToIds(tokens: string | readonly string[]): number | number[] {
    const one = (t: string): number => {
      const id = this.tokenToId(t) ?? this.unkTokenId;
      if (id === null) throw new InputError(`convertTokensToIds: token ${JSON.stringify(t)} is not in the vocabulary and there is no unk token`);
      return id;
    };
    return typeof tokens === "string" ? one(tokens) : tokens.map(one);
  }

  /** Joins token strings into text, as decoding their ids would. */
  convertTokensToString(tokens: readonly string[]): string {
    return this.decodeChecked(this.convertTokensToIds(tokens), false);
  }

  getVocab(): Map<string, number> {
    const m = new Map<string, number>();
    for (let id = 0; id < this.length; id++) {
      const t = this.idToToken(id);
      if (t !== undefined && !m.has(t)) m.set(t, id);
    }
    return m;
  }

  // ---- chat templates ----

  /** Renders messages with the chat template (tokenizer_config.json's, or opts.chatTemplate) and, by default, encodes them. */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions & { tokenize: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions & { tokenize?: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions & { tokenize?: boolean } = {}): string | number[] {
    const text = renderChatTemplate(this.source, opts.chatTemplate ?? this.chatTemplate, messages, opts, {
      bos_token: this.bosToken ?? "",
      eos_token: this.eosToken ?? "",
      unk_token: this.unkToken ?? "",
      pad_token: this.padToken ?? "",
    });
    if (opts.tokenize === false) return text;
    // The template writes special tokens as text; they must become their ids.
    return this.encode(text, { addSpecialTokens: false, splitSpecialTokens: false });
  }

  protected checkIds(ids: readonly number[], what: string): void {
    if (!Array.isArray(ids) && !(ArrayBuffer.isView(ids) as boolean)) throw new InputError(`${what}: ids must be an array of integers`);
    const n = this.length;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= n || this.idToToken(id) === undefined) {
        throw new InputError(`${what}: token id ${JSON.stringify(id)} at position ${i} is outside the vocabulary of ${this.source} (valid ids: 0..${n - 1})`);
      }
    }
  }
}

function checkText(text: unknown, what: string): asserts text is string {
  if (typeof text !== "string") throw new InputError(`${what}: text must be a string, got ${text === null ? "null" : typeof text}`);
}

/** transformers' clean_up_tokenization: removes spaces before punctuation and English contractions. */
export function cleanUpTokenization(s: string): string {
  return s
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
