/**
 * Initial values of a soft prompt, as PEFT's PromptEmbedding:
 *  - RANDOM: nn.Embedding's default init, N(0, 1) per element;
 *  - SAMPLE_VOCAB: the word embeddings of token ids drawn uniformly from
 *    [0, vocab_size) (torch.randint);
 *  - TEXT: the word embeddings of `tokenizer(init_text)["input_ids"]` — with
 *    the tokenizer's default special tokens, i.e. BOS first for LLaMA — cut
 *    to num_virtual_tokens, or repeated whole until long enough and then cut.
 * The random streams are seeded here (torch's generator state cannot be
 * reproduced from a seed alone), so RANDOM/SAMPLE_VOCAB draw from the same
 * distributions as PEFT, not the same numbers.
 */
import { ConfigError } from "../errors.js";
import type { PromptTuningConfig } from "./prompt-config.js";
import { mulberry32 } from "../mulberry32.js";

/** What TEXT init needs from a tokenizer: encode with the default special tokens (BOS for LLaMA). */
export interface PromptTokenizer {
  encode(text: string): number[];
}

/** A seeded uniform [0, 1) stream (mulberry32). */
export function seededUniform(seed: number): () => number {
  // XOR with the golden-ratio constant keeps this stream distinct from other users of the same seed.
  return mulberry32((seed >>> 0) ^ 0x9e3779b9);
}

/** n·H samples of N(0, 1) (Box–Muller), float32. */
export function randomPrompt(n: number, hidden: number, seed: number): Float32Array {
  const u = seededUniform(seed);
  const out = new Float32Array(n * hidden);
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const theta = 2 * Math.PI * u();
    out[i] = r * Math.cos(theta);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}

/** PEFT's TEXT rule: truncate, or repeat the whole id list ceil(n / len) times and truncate. */
export function fitToLength(ids: readonly number[], n: number): number[] {
  if (ids.length === 0) throw new ConfigError("prompt_tuning_init_text encodes to no tokens");
  if (ids.length >= n) return ids.slice(0, n);
  const reps = Math.ceil(n / ids.length);
  const out: number[] = [];
  for (let r = 0; r < reps; r++) out.push(...ids);
  return out.slice(0, n);
}

/** The token ids whose embeddings start a TEXT or SAMPLE_VOCAB prompt. */
export function initialPromptIds(
  config: PromptTuningConfig, vocabSize: number, options: { tokenizer?: PromptTokenizer; seed?: number },
): number[] {
  const n = config.totalVirtualTokens;
  if (config.prompt_tuning_init === "TEXT") {
    if (!options.tokenizer) throw new ConfigError("prompt_tuning_init TEXT needs a tokenizer (tokenizer_name_or_path in PEFT)");
    const ids = options.tokenizer.encode(config.prompt_tuning_init_text!);
    const bad = ids.find((id) => !(Number.isInteger(id) && id >= 0 && id < vocabSize));
    if (bad !== undefined) throw new ConfigError(`prompt_tuning_init_text: the tokenizer produced id ${bad}, outside the model's vocabulary 0..${vocabSize - 1}`);
    return fitToLength(ids, n);
  }
  if (config.prompt_tuning_init === "SAMPLE_VOCAB") {
    const u = seededUniform(options.seed ?? 0);
    return Array.from({ length: n }, () => Math.floor(u() * vocabSize));
  }
  throw new ConfigError(`initialPromptIds: init ${config.prompt_tuning_init} does not start from token ids`);
}
