/** Tokenizers: sentencepiece (LlamaTokenizer), tokenizer.json / tiktoken (LlamaTokenizerFast), AutoTokenizer, inspection. */
export { PreTrainedTokenizerBase, cleanUpTokenization } from "./tokenizer-base.js";
export type { EncodeOptions, DecodeOptions, CallOptions, BatchEncoding, TokenizerOptions, PaddingStrategy, TruncationStrategy } from "./tokenizer-base.js";
export { LlamaTokenizer, SentencePieceCore } from "./llama-tokenizer.js";
export { LlamaTokenizerFast, loadTokenizerJsonCore } from "./llama-tokenizer-fast.js";
export { AutoTokenizer } from "./auto-tokenizer.js";
export type { AutoTokenizerOptions, LlamaAnyTokenizer } from "./auto-tokenizer.js";
export { readTokenizerConfig, parseTokenizerConfig } from "./tokenizer-config.js";
export type { TokenizerConfig } from "./tokenizer-config.js";
export type { AddedToken } from "./added-tokens.js";
export type { ChatMessage, ChatTemplateOptions } from "./chat-template.js";
export { PieceType, readSentencePieceModel, parseSentencePieceModel } from "./sentencepiece-model.js";
export type { SentencePieceModel, SentencePiece } from "./sentencepiece-model.js";
export { llama3SpecialTokenNames, LLAMA3_SPLIT_PATTERN } from "./tiktoken.js";
export { inspectTokens } from "./inspect.js";
export type { TokenInspection, TokenRow, InspectableTokenizer } from "./inspect.js";
