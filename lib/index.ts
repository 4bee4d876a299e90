/**
 * llama-ts: the documented API (what README, the notebooks and the workbench
 * use): models, tokenizers, generation, interpretability, figures, PEFT, and
 * autograd as a namespace. Internals (kernels, tensor ops, the backend
 * interface, file-format details) are in `llama-ts/internals` (lib/internals.ts).
 * No Jupyter and no GPU imports here: the package entry (../index.ts) registers
 * the WebGPU backend, which loads Dawn only when a model asks for `device: "webgpu"`.
 *
 * Values are listed by name so each one is a decision; types come along with
 * `export type *` (they cost nothing at run time).
 */

// Errors, tensors, config, devices.
export { LlamaError, InputError, ConfigError, FormatError } from "./errors.js";
export { Tensor } from "./tensor/tensor.js";
export { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from "./tensor/dtype.js";
export { LlamaConfig } from "./config.js";
export { getBackend } from "./backend/registry.js";
export type * from "./errors.js";
export type * from "./tensor/tensor.js";
export type * from "./tensor/dtype.js";
export type * from "./config.js";
export type { Backend, Device, DeviceTensor } from "./backend/backend.js";
export type { BackendOptions, WebGpuOptions } from "./backend/registry.js";

// Models.
export { LlamaForCausalLM } from "./model/causal-lm.js";
export { LlamaForSequenceClassification } from "./model/seq-cls.js";
export { LlamaModel } from "./model/llama.js";
export { DynamicCache } from "./model/kv-cache.js";
export { loadPretrained } from "./model/auto.js";
export type * from "./model/types.js";
export type * from "./model/auto.js";
export type { FromPretrainedOptions } from "./model/pretrained.js";

// Checkpoint files and conversion (HF ⇄ Meta ⇄ GGUF).
export { SafetensorsFile, saveSafetensors } from "./io/safetensors.js";
export { TorchCheckpoint } from "./io/pth.js";
export { saveTorchStateDict } from "./io/pth-writer.js";
export { GgufFile } from "./io/gguf.js";
export { GgmlType } from "./io/gguf-types.js";
export { readGgufAsHf } from "./io/gguf-hf.js";
export { exportHfToGguf, type GgufExportOptions } from "./io/gguf-export.js";
export { quantizeModel, describeFallbacks, type QuantizeModelOptions, type QuantizeReport, type QuantizedTensor } from "./quant/quantize-model.js";
export { QUANT_PRESETS, type QuantPreset } from "./quant/mix.js";
export { convertMetaToHf, type ConvertOptions, type ConvertResult } from "./convert/meta-to-hf.js";
export { convertHfToMeta } from "./convert/hf-to-meta.js";
export { computeIntermediateSize, readMetaParams, type MetaParams, type LlamaVersion } from "./convert/params.js";

// Generation.
export { generate, streamGenerate } from "./generate/generate.js";
export { TokenStreamer } from "./generate/streamer.js";
export type * from "./generate/types.js";

// Tokenizers.
export { AutoTokenizer } from "./tokenizer/auto-tokenizer.js";
export { LlamaTokenizer } from "./tokenizer/llama-tokenizer.js";
export { LlamaTokenizerFast } from "./tokenizer/llama-tokenizer-fast.js";
export { PreTrainedTokenizerBase } from "./tokenizer/tokenizer-base.js";
export { inspectTokens } from "./tokenizer/inspect.js";
export { tokenizerFromGguf } from "./io/gguf-tokenizer-build.js";
export type * from "./tokenizer/index.js";

// Interpretability: hooks, activation cache, logit lens, attribution, heads, patching.
export { hookPointNames, actName } from "./interp/hook-points.js";
export { ActivationCache } from "./interp/cache.js";
export { runWithCache, runWithHooks } from "./interp/run.js";
export { ablateHead, activationDifference, patchActivation, steer } from "./interp/interventions.js";
export { entropyOfLogits } from "./interp/math.js";
export { meanNll, tokenLogProbs, topKNextTokens } from "./interp/logprobs.js";
export { summarizeLens } from "./interp/lens-summary.js";
export { logitLens, residualToLogits } from "./interp/logit-lens.js";
export { directLogitAttribution } from "./interp/attribution.js";
export { rankHeads, repeatedRandomTokens, summarizeHeads, detectorScores } from "./interp/heads.js";
export { detectHeads } from "./interp/detect.js";
export { activationPatching, logitDiffMetric } from "./interp/patching.js";
export type * from "./interp/index.js";

// Figures (plain plotly objects and self-contained HTML).
export { Figure, HtmlFigure } from "./viz/figure.js";
export { htmlPage, setFigureHtmlDefaults } from "./viz/html.js";
export { attentionHeatmap } from "./viz/attention.js";
export { attentionGrid } from "./viz/attention-grid.js";
export { headView } from "./viz/head-view.js";
export { logitLensFigure, topKBarChart } from "./viz/lens.js";
export { logProbStrip } from "./viz/logprob-strip.js";
export { patchingHeatmap } from "./viz/patching.js";
export { tokenSpans, tokenSpansHtml, tokenTable, tokenTableHtml, tokenCompare, tokenCompareHtml } from "./viz/tokens.js";
export type * from "./viz/index.js";

// PEFT: prompt tuning, LoRA, optimizers.
export { PromptTuningConfig, type PromptTuningConfigInit, type PromptTuningInit, type TaskType } from "./peft/prompt-config.js";
export { PromptTuningModel, type PromptBatch, type PromptBaseModel } from "./peft/prompt-tuning.js";
export { savePromptAdapter, loadPromptAdapter } from "./peft/prompt-io.js";
export { readJsonl, readTrainingFile, completionExample, collate, type TokenExample, type TextTokenizer } from "./peft/prompt-data.js";
export { trainPrompt, type TrainOptions, type TrainResult, type StepLog, type EvalLog } from "./peft/prompt-train.js";
export { scoreLabelContinuations, classifyByLabelScores, type ClassificationResult } from "./peft/prompt-classify.js";
export { nearestTokens } from "./peft/prompt-inspect.js";
export { LoraModel, type LoraTrainConfigInit, type LoraBatch } from "./peft/lora-train.js";
export { loadLora, readLoraAdapter, type LoraAdapter } from "./peft/lora.js";
export { readLoraConfig, type LoraConfig } from "./peft/lora-config.js";
export { trainLora, type LoraTrainOptions } from "./peft/lora-train.js";
// Preference tuning as TRL computes it: reward model, DPO, best-of-n.
export { readPreferenceFile, tokenizeDpoRows, tokenizeRewardRows, type PreferenceRow, type DpoExample, type RewardExample } from "./peft/preference-data.js";
export { RewardModel, loadRewardBase, trainReward, type RewardTrainOptions } from "./peft/reward.js";
export { trainDpo, dpoEvaluate, precomputeReferenceLogps, type DpoTrainOptions, type DpoTrainResult, type DpoLossType } from "./peft/dpo.js";
export { bestOfN, type BestOfNOptions, type BestOfNResult } from "./peft/best-of-n.js";
export { sampleContinuations, preferenceMetrics, mentionsFriend, type PreferenceMetrics, type SampleOptions } from "./peft/preference-eval.js";
export { Adam, AdamW, clipGradNorm, type AdamOptions } from "./peft/optim.js";
export { lrMultiplier, type ScheduleName } from "./peft/optim-schedule.js";

// Autograd: the namespace, and the backends models train on.
export * as autograd from "./autograd/index.js";
export { TapeBackend } from "./autograd/tape-backend.js";
export { backprop, createDifferentiableBackend, type DifferentiableBackend } from "./autograd/differentiable.js";
