/** Reverse-mode autograd (exported from llama-ts as the `autograd` namespace). */
export { Var, backward, result, expectShape, type GradFn } from "./var.js";
export { add, scale, embedding, rmsNorm, linear, siluMul, concatSeq, expandBatch, selectRows, reshape, type Weight } from "./ops.js";
export { splitHeads, mergeHeads, kvAppend, attendWith, attention, type AttentionMaskSpec, type RopeTables } from "./attention-ops.js";
export { crossEntropy, causalLMLoss, shiftedTargets, IGNORE_INDEX } from "./loss.js";
export { gradCheck, uniformStream, type GradCheckResult } from "./gradcheck.js";
export { matmulABt, matmulAtB, transpose, jsLinearKernel, type LinearKernel } from "./matmul.js";
export { TapeBackend, TapeTensor } from "./tape-backend.js";
