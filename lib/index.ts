/**
 * llama-ts: the LLaMA library. Everything a notebook or program imports by
 * name comes from here. (No Jupyter and no GPU imports: the WebGPU backend is
 * loaded on demand when a model asks for `device: "webgpu"`.)
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
export { TorchCheckpoint, type TorchTensorInfo, type TorchDType } from "./io/pth.js";
export { ZipFile, type ZipEntry } from "./io/zip.js";
export * from "./io/gguf.js";
export * from "./io/gguf-types.js";
export { gguf, writeGguf, type GgufTensorSpec, type GgufWriteOptions, type GgufWritableType } from "./io/gguf-writer.js";
export { readGgufAsHf, ggufToHfConfig, GgufHfWeights, type GgufAsHf } from "./io/gguf-hf.js";
export { exportHfToGguf, type GgufExportOptions } from "./io/gguf-export.js";
export { hfToGgufName, ggufToHfName, llama3RopeFactors, fitRopeFreqs } from "./io/gguf-llama.js";
export { readGgufTokenizer, tokenizerMetadata, syntheticSpmVocab, GgufTokenType, type GgufTokenizerData } from "./io/gguf-tokenizer.js";
export { convertMetaToHf, type ConvertOptions, type ConvertResult } from "./convert/meta-to-hf.js";
export { computeIntermediateSize, metaParamsToHfConfig, readMetaParams, type MetaParams, type LlamaVersion } from "./convert/params.js";
export { loadLora, readLoraAdapter, activeLora, LoadedLora, type LoraAdapter, type LoraModuleWeights, type AdaptableModel } from "./peft/lora.js";
export { parseLoraConfig, readLoraConfig, type LoraConfig } from "./peft/lora-config.js";
export * from "./tokenizer/index.js";
export { tokenSpans, tokenSpansHtml, tokenTable, tokenTableHtml, tokenCompare, tokenCompareHtml } from "./viz/tokens.js";
