/**
 * Text generation: HF-compatible logits processors, samplers, beam search,
 * stopping criteria and streaming over any causal LM with a KV cache.
 */
export { generate, streamGenerate, type StepEvent } from "./generate.js";
export * from "./types.js";
export { SeededRng } from "./rng.js";
export { resolveGeneration, HF_GENERATION_DEFAULTS, type ResolvedGeneration } from "./config.js";
export {
  buildLogitsProcessors,
  applyProcessors,
  RepetitionPenaltyProcessor,
  MinLengthProcessor,
  MinNewTokensProcessor,
  TemperatureWarper,
  TopKWarper,
  TopPWarper,
  MinPWarper,
  type LogitsProcessor,
  type ProcessorSettings,
} from "./processors.js";
export { MaxLengthCriterion, EosTokenCriterion, StopStringCriterion, anyDone, type StoppingCriterion } from "./stopping.js";
export { BeamSearch, type BeamSearchSettings } from "./beam-search.js";
export { TokenStreamer } from "./streamer.js";
export { positionsFromMask, resolveAttentionMask } from "./inputs.js";
