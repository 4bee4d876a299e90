/**
 * Backend registry: `getBackend("cpu" | "webgpu")`. The CPU backend is part of
 * lib; the WebGPU backend lives in gpu/ and is imported on demand through a
 * computed path, so lib never imports Dawn and bundlers leave it external.
 */
import { LlamaError } from "../errors.js";
import type { Backend, Device } from "./backend.js";
import { CpuBackend, type CpuBackendOptions } from "./cpu/cpu-backend.js";

export interface BackendOptions {
  /** CPU: worker threads to use (default: all cores, at most 2 extra workers are useful here). */
  threads?: number;
  /** CPU: use the WebAssembly SIMD kernels when the runtime supports them (default true). */
  wasm?: boolean;
  /** WebGPU: options passed to `createWebGpuBackend`. */
  webgpu?: Record<string, unknown>;
}

let defaultCpu: Promise<Backend> | undefined;
let defaultGpu: Promise<Backend> | undefined;

/** Loads gpu/index.js lazily; the specifier is computed so no bundler follows it. */
async function loadWebGpu(options?: Record<string, unknown>): Promise<Backend> {
  const specifier = ["..", "..", "gpu", "index.js"].join("/");
  let mod: { createWebGpuBackend?: (o?: Record<string, unknown>) => Promise<Backend> };
  try {
    mod = (await import(new URL(specifier, import.meta.url).href)) as typeof mod;
  } catch (err) {
    throw new LlamaError(`device "webgpu": cannot load the WebGPU backend (${(err as Error).message})`, { cause: err });
  }
  if (typeof mod.createWebGpuBackend !== "function") {
    throw new LlamaError(`device "webgpu": gpu/index.js does not export createWebGpuBackend`);
  }
  return mod.createWebGpuBackend(options);
}

/**
 * The shared backend for a device (created once per process for default
 * options; pass options to get a fresh one).
 */
export function getBackend(device: Device = "cpu", options?: BackendOptions): Promise<Backend> {
  if (device === "cpu") {
    if (options) return CpuBackend.create(options as CpuBackendOptions);
    defaultCpu ??= CpuBackend.create();
    return defaultCpu;
  }
  if (device === "webgpu") {
    if (options?.webgpu) return loadWebGpu(options.webgpu);
    defaultGpu ??= loadWebGpu().catch((err: unknown) => {
      defaultGpu = undefined; // let a later call retry
      throw err;
    });
    return defaultGpu;
  }
  throw new LlamaError(`unknown device ${JSON.stringify(device)} (expected "cpu" or "webgpu")`);
}
