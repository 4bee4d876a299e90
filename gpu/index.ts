/**
 * The WebGPU backend (Dawn through npm `webgpu`). Importing this module loads
 * Dawn; gpu/register.ts imports it on demand, when a model first asks for
 * `device: "webgpu"`.
 */
import { WebGpuBackend, type WebGpuBackendOptions } from "./backend.js";

export { WebGpuBackend, type WebGpuBackendOptions } from "./backend.js";
export {
  GpuContext, VULKAN_SETUP_HINT, classifyAdapter, limitsRecord, type AdapterKind, type AdapterSummary, type F16Mode, type GpuOptions,
} from "./device.js";
export type { AllocatorStats } from "./buffers.js";

/** Acquires a device and returns a Backend for it. Call `dispose()` when done so node can exit. */
export function createWebGpuBackend(options?: WebGpuBackendOptions): Promise<WebGpuBackend> {
  return WebGpuBackend.create(options);
}

export { WebGpuTapeBackend, createWebGpuTapeBackend } from "./tape-backend.js";
export { GradTensor } from "./grad-tape.js";
