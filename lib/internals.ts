/**
 * `llama-ts/internals`: every module of the library by name, for tests,
 * benchmarks and people extending llama-ts (kernels, backend interface,
 * tensor ops, file-format internals). Not a stable API: the documented one is
 * `llama-ts` (lib/index.ts). This entry does not register the WebGPU backend;
 * import "llama-ts" too for `device: "webgpu"`.
 */
export * from "./errors.js";
export * from "./tensor/dtype.js";
export * from "./tensor/tensor.js";
export * from "./io/atomic.js";
export * from "./io/safetensors.js";
export * from "./config.js";
export * from "./backend/backend.js";
export * from "./backend/registry.js";
export { CpuBackend, CpuTensor } from "./backend/cpu/cpu-backend.js";
export * from "./tensor/ops.js";
export * from "./tensor/matmul.js";
export * from "./io/checkpoint.js";
export * from "./model/index.js";
export * from "./generate/index.js";
export { TorchCheckpoint, type TorchTensorInfo, type TorchDType } from "./io/pth.js";
export { ZipFile, type ZipEntry } from "./io/zip.js";
export * from "./io/gguf.js";
export * from "./io/gguf-types.js";
export { gguf, writeGguf, type GgufTensorSpec, type GgufWriteOptions, type GgufWritableType } from "./io/gguf-writer.js";
export { readGgufAsHf, ggufToHfConfig, GgufHfWeights, type GgufAsHf } from "./io/gguf-hf.js";
export { exportHfToGguf, type GgufExportOptions } from "./io/gguf-export.js";
export { quantizeRows, isQuantizedType, typeBytes, type QuantizedType, type QuantOutputType } from "./quant/quantize.js";
export { planQuantization, llamaTensorOrder, PRESETS as QUANT_PRESET_INFO, type TensorPlan } from "./quant/mix.js";
export { hfToGgufName, ggufToHfName, llama3RopeFactors, fitRopeFreqs } from "./io/gguf-llama.js";
export { readGgufTokenizer, tokenizerMetadata, syntheticSpmVocab, GgufTokenType, type GgufTokenizerData } from "./io/gguf-tokenizer.js";
export { convertMetaToHf, type ConvertOptions, type ConvertResult } from "./convert/meta-to-hf.js";
export { computeIntermediateSize, metaParamsToHfConfig, readMetaParams, type MetaParams, type LlamaVersion } from "./convert/params.js";
export { loadLora, readLoraAdapter, activeLora, LoadedLora, type LoraAdapter, type LoraModuleWeights, type AdaptableModel } from "./peft/lora.js";
export { LoraModel, linearModules, type LoraTrainConfigInit, type LoraBatch } from "./peft/lora-train.js";
export { parseLoraConfig, readLoraConfig, type LoraConfig } from "./peft/lora-config.js";
export * from "./tokenizer/index.js";
export * as autograd from "./autograd/index.js";
export { Var, backward } from "./autograd/var.js";
export { TapeBackend, TapeTensor } from "./autograd/tape-backend.js";
export {
  backprop, createDifferentiableBackend, isDifferentiable, type DifferentiableBackend,
} from "./autograd/differentiable.js";
export { PromptTuningConfig, PEFT_VERSION, type PromptTuningConfigInit, type PromptTuningInit, type TaskType } from "./peft/prompt-config.js";
export { PromptTuningModel, type PromptBatch, type PromptBaseModel } from "./peft/prompt-tuning.js";
export { savePromptAdapter, loadPromptAdapter } from "./peft/prompt-io.js";
export { fitToLength, randomPrompt, type PromptTokenizer } from "./peft/prompt-init.js";
export { readJsonl, readTrainingFile, completionExample, splitContinuation, collate, type TokenExample, type TextTokenizer } from "./peft/prompt-data.js";
export { trainPrompt, type TrainOptions, type TrainResult, type StepLog, type EvalLog } from "./peft/prompt-train.js";
export { scoreLabelContinuations, classifyByLabelScores, type ClassificationResult } from "./peft/prompt-classify.js";
export { nearestTokens } from "./peft/prompt-inspect.js";
export { Adam, AdamW, clipGradNorm, type AdamOptions } from "./peft/optim.js";
export { lrMultiplier, type ScheduleName } from "./peft/optim-schedule.js";
export { tokenSpans, tokenSpansHtml, tokenTable, tokenTableHtml, tokenCompare, tokenCompareHtml } from "./viz/tokens.js";
export * from "./interp/index.js";
export * from "./viz/index.js";
export { tokenizerFromGguf, ggufTokenizerToJson, ggufToSentencePieceModel, sentencePieceToGgufData, tokenizerJsonToGgufData, type GgufTokenizer } from "./io/gguf-tokenizer-build.js";
export { saveTorchStateDict, type TorchTensorSpec } from "./io/pth-writer.js";
export { convertHfToMeta, writeMetaCheckpoint, type MetaTensorSource } from "./convert/hf-to-meta.js";
export { tiktokenToTokenizerJson } from "./convert/tokenizer-files.js";
