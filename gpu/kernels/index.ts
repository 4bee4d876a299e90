/**
 * The kernel factories, memoized: each (kernel, arguments) pair builds its
 * WGSL once per process; ops call these on every dispatch.
 */
import { memoKernel } from "../executor.js";
import * as attention from "./attention.js";
import * as bwd from "./backward.js";
import * as decode from "./attention-decode.js";
import * as ew from "./elementwise.js";
import * as kv from "./kv.js";
import * as mm from "./matmul.js";
import * as sampling from "./sampling.js";

export const tiledMatmulKernel = memoKernel(mm.tiledMatmulKernel);
export const gemvKernel = memoKernel(mm.gemvKernel);
export const rmsNormKernel = memoKernel(ew.rmsNormKernel);
export const rmsInverseKernel = memoKernel(ew.rmsInverseKernel);
export const addKernel = memoKernel(ew.addKernel);
export const scaleKernel = memoKernel(ew.scaleKernel);
export const siluMulKernel = memoKernel(ew.siluMulKernel);
export const embeddingKernel = memoKernel(ew.embeddingKernel);
export const ropeKernel = memoKernel(ew.ropeKernel);
export const permute0213Kernel = memoKernel(ew.permute0213Kernel);
export const flashAttentionKernel = memoKernel(attention.flashAttentionKernel);
export const attentionWeightsKernel = memoKernel(attention.attentionWeightsKernel);
export const decodeAttentionKernel = memoKernel(decode.decodeAttentionKernel);
export const decodeCombineKernel = memoKernel(decode.decodeCombineKernel);
export const kvCopyKernel = memoKernel(kv.kvCopyKernel);
export const attendWithKernel = memoKernel(kv.attendWithKernel);
export const argmaxKernel = memoKernel(sampling.argmaxKernel);
export const topKKernel = memoKernel(sampling.topKKernel);
export const sampleKernel = memoKernel(sampling.sampleKernel);
export const transposeToF32Kernel = memoKernel(bwd.transposeToF32Kernel);
export const rmsNormBackwardKernel = memoKernel(bwd.rmsNormBackwardKernel);
export const siluMulBackwardKernel = memoKernel(bwd.siluMulBackwardKernel);
export const attentionScoresBackwardKernel = memoKernel(bwd.attentionScoresBackwardKernel);
export const attentionQueryBackwardKernel = memoKernel(bwd.attentionQueryBackwardKernel);
export const attentionKeyValueBackwardKernel = memoKernel(bwd.attentionKeyValueBackwardKernel);
export const scatterRowsKernel = memoKernel(bwd.scatterRowsKernel);
export const columnSumKernel = memoKernel(bwd.columnSumKernel);
export const attendWithWeightsBackwardKernel = memoKernel(bwd.attendWithWeightsBackwardKernel);
export const attendWithValuesBackwardKernel = memoKernel(bwd.attendWithValuesBackwardKernel);
export const linearWeightBackwardKernel = memoKernel(bwd.linearWeightBackwardKernel);

export { GEMV_MAX_M, GEMV_MERGE_MAX_SUMS, GEMV_MERGE_MAX_WEIGHTS } from "./matmul.js";
export { flashBlocks, headDimBucket } from "./attention.js";
export { DECODE_CHUNK } from "./attention-decode.js";
export { MAX_TOP_K } from "./sampling.js";
export { ROPE_MAX_JOBS, flatGrid } from "./elementwise.js";
export type { GemvEpilogue } from "./matmul.js";
