/**
 * What `generate` needs from a model and a tokenizer, and what it returns.
 *
 * The model side is a structural type (not an import of lib/model) so that
 * generation depends only on the forward contract: any causal LM whose
 * `forward` takes ids + mask + positions + a KV cache and returns logits works
 * (LlamaForCausalLM on either backend, or a test double).
 */
import type { Tensor } from "../tensor/tensor.js";
import type { Backend, DeviceTensor } from "../backend/backend.js";

/** The KV cache as generation uses it (lib/model/kv-cache.ts DynamicCache satisfies this). */
export interface GenerationCache {
  getSeqLength(): number;
  /** Keeps row `beamIndices[i]` of the old batch as row i of the new one (beam search). */
  reorder(beamIndices: number[]): void | Promise<void>;
}

/** The forward arguments generation passes (a subset of the model's forward args). */
export interface GenerationForwardArgs {
  /** [B, T] (given by generate except on the prefill with inputsEmbeds). */
  inputIds?: number[][];
  /** [B, T, hidden]: the prefill of a generate call given inputsEmbeds. */
  inputsEmbeds?: Tensor;
  /** [B, past + T] — covers the cached tokens and the new ones, as HF's 2-D mask. */
  attentionMask?: number[][];
  /** [B, T] positions of the new tokens. */
  positionIds?: number[][];
  pastKeyValues?: GenerationCache;
  useCache?: boolean;
  /** When this call creates the KV cache: the positions to allocate room for up front. */
  cacheCapacity?: number;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
  /** 1 = logits for the last position only (what generation needs). */
  logitsToKeep?: number;
}

export interface GenerationForwardOutput {
  /** [B, T', V] float32 (T' = 1 with logitsToKeep = 1). */
  logits: Tensor;
  pastKeyValues?: GenerationCache;
  /** Per layer [B, heads, T, T_kv]. */
  attentions?: Tensor[];
  hiddenStates?: Tensor[];
}

/** A forward whose logits stay on the model's backend (device-side token selection). */
export interface GenerationDeviceOutput extends Omit<GenerationForwardOutput, "logits"> {
  /** [B, T', V] on the backend; the caller releases it. */
  logits: DeviceTensor;
}

/** The HF config fields generation reads (LlamaConfig has them all). */
export interface GenerationModelConfig {
  vocab_size: number;
  max_position_embeddings?: number;
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
}

/** A causal LM that `generate` can drive. */
export interface GenerationModel {
  readonly config: GenerationModelConfig;
  /** Parsed generation_config.json (snake_case keys, may be empty). */
  readonly generationConfig?: Readonly<Record<string, unknown>>;
  forward(args: GenerationForwardArgs): Promise<GenerationForwardOutput>;
  /** The model's backend: one with `tokenSelector` (WebGPU) lets generate choose tokens on the device. */
  readonly backend?: Pick<Backend, "tokenSelector" | "selectBatch" | "release">;
  /** `forward` without the logits readback (with `backend`, enables device-side selection). */
  forwardOnDevice?(args: GenerationForwardArgs): Promise<GenerationDeviceOutput>;
}

/** The tokenizer surface used for stop strings and streaming text. */
export interface GenerationTokenizer {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

/** One streamed piece: the new token ids of one sequence and the text they completed. */
export interface StreamChunk {
  /** Row of the batch this chunk belongs to. */
  index: number;
  /** Token ids generated since the previous chunk of this row (may hold ids whose text is still pending). */
  tokenIds: number[];
  /** Newly completed text: never ends inside a UTF-8 character ("" without a tokenizer). */
  text: string;
}

/** HF's BaseStreamer shape (put/end) or a plain callback receiving chunks. */
export type Streamer = ((chunk: StreamChunk) => void) | { put(chunk: StreamChunk): void; end?(): void };

export interface GenerateOptions {
  /**
   * [B, T] prompts; rows of a batch are left-padded to one length (see attentionMask).
   * Required unless `inputsEmbeds` is given.
   */
  inputIds?: number[][];
  /**
   * [B, T, hidden] prompt embeddings fed instead of looking up `inputIds` (HF's
   * `inputs_embeds`; needs the KV cache). Without `inputIds` the result holds only
   * the new tokens, as HF's; with both, `inputIds` start each returned row.
   */
  inputsEmbeds?: Tensor;
  /** [B, T] 1 = token, 0 = padding. Default: inferred from padTokenId as HF does (all ones with only inputsEmbeds). */
  attentionMask?: number[][];
  /** New tokens to generate at most (default: generation_config max_new_tokens, else 20, as HF). */
  maxNewTokens?: number;
  /** Total length limit (prompt + new); maxNewTokens wins when both are given, as in HF. */
  maxLength?: number;
  /** EOS is suppressed until this many new tokens exist. */
  minNewTokens?: number;
  minLength?: number;
  doSample?: boolean;
  temperature?: number;
  /** HF default 50 when sampling (0 disables). */
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  numBeams?: number;
  numReturnSequences?: number;
  /** Beam search: score = sum logprob / (new length ** lengthPenalty). */
  lengthPenalty?: number;
  /** Beam search stop rule: true, false (HF heuristic) or "never". */
  earlyStopping?: boolean | "never";
  eosTokenId?: number | number[] | null;
  padTokenId?: number | null;
  bosTokenId?: number | null;
  /** Stop when the decoded text gains one of these (needs `tokenizer`). */
  stopStrings?: string | string[];
  tokenizer?: GenerationTokenizer;
  /** Seed of the sampling RNG (xoshiro128**, see rng.ts); omitted = random seed. */
  seed?: number;
  returnDictInGenerate?: boolean;
  /** With returnDictInGenerate: the processed scores of every step ([rows, V] each). */
  outputScores?: boolean;
  /** With returnDictInGenerate: the raw logits of every step. */
  outputLogits?: boolean;
  /** With returnDictInGenerate: per step, per layer attention maps. */
  outputAttentions?: boolean;
  /** Streaming of new tokens (greedy/sampling only, as HF). */
  streamer?: Streamer;
  /** Decode options used for streamed text (default: skip special tokens). */
  skipSpecialTokens?: boolean;
  /** Whether to use the KV cache (default true; false recomputes the whole sequence each step, for checks). */
  useCache?: boolean;
}

export interface GenerateOutput {
  /** [rows, L] full sequences (prompt + new), padded on the right with the pad id where shorter. */
  sequences: number[][];
  /** Per step, the processed scores [rows, V] (rows = B*numBeams in beam search), when outputScores. */
  scores?: Tensor[];
  /** Per step, the raw logits [rows, V], when outputLogits. */
  logits?: Tensor[];
  /** Per step, per layer attention [rows, heads, T_step, T_kv], when outputAttentions. */
  attentions?: Tensor[][];
  /** Beam search: final length-penalised score of each returned sequence, when outputScores. */
  sequencesScores?: number[];
  /** Beam search: for each returned sequence, the beam row each step's token came from. */
  beamIndices?: number[][];
}

/** The type of O's returnDictInGenerate (undefined when O has no such property). */
type DictFlag<O> = O extends { returnDictInGenerate: infer R }
  ? R
  : O extends { returnDictInGenerate?: infer R }
    ? R | undefined
    : undefined;

/** What `generate` returns for options O: the sequences, or the dict when returnDictInGenerate is true. */
export type GenerateResult<O extends GenerateOptions> = [DictFlag<O>] extends [true]
  ? GenerateOutput
  : [DictFlag<O>] extends [false | undefined]
    ? number[][]
    : number[][] | GenerateOutput;
