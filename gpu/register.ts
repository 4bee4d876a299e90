/**
 * Registers the WebGPU backend with lib's registry. Cheap to import: the
 * factory imports gpu/index.js (and with it Dawn) only when the first
 * "webgpu" backend is asked for. The package entry (index.ts), the CLI and
 * the test setup import this module; lib itself never imports gpu/.
 */
import { LlamaError } from "../lib/errors.js";
import { registerDevice, type WebGpuOptions } from "../lib/backend/registry.js";
import type { GpuOptions } from "./device.js";

// lib declares the WebGPU options (it cannot import gpu/); this fails to compile if gpu's drift from them.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const optionsAgree: Same<WebGpuOptions, GpuOptions> & Same<keyof WebGpuOptions, keyof GpuOptions> = true;
void optionsAgree;

type GpuModule = typeof import("./index.js");
let gpu: Promise<GpuModule> | undefined;

/** gpu/index.js, imported once per process (a failed import is retried on the next call). */
function loadGpu(): Promise<GpuModule> {
  gpu ??= import("./index.js").catch((err: unknown) => {
    gpu = undefined;
    throw new LlamaError(`device "webgpu": cannot load the WebGPU backend (${(err as Error).message})`, { cause: err });
  });
  return gpu;
}

registerDevice("webgpu", {
  backend: async (options) => (await loadGpu()).createWebGpuBackend(options),
  differentiable: async (options) => (await loadGpu()).createWebGpuTapeBackend(options),
});
