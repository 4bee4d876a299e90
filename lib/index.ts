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
