/**
 * Backend registry: `getBackend("cpu" | "webgpu")`. The CPU backend is part of
 * lib; the WebGPU backend lives in gpu/ and is imported on demand through a
 * computed path, so lib never imports Dawn and bundlers leave it external.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
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

/**
 * Where gpu/index.js is: next to lib/ in the ESM tree (dist/lib → dist/gpu),
 * or one folder up from the CommonJS bundle (dist/cjs → dist/gpu). The path
 * is computed at run time so bundlers never follow it.
 */
function gpuEntryCandidates(): string[] {
  const rel = ["..", "..", "gpu", "index"].join("/");
  const metaUrl = (import.meta as { url?: string }).url;
  if (typeof metaUrl === "string" && metaUrl) {
    // From TypeScript sources (vitest, tsx) the module is gpu/index.ts.
    return [new URL(`${rel}.js`, metaUrl).href, new URL(`${rel}.ts`, metaUrl).href];
  }
  return [pathToFileURL(path.join(__dirname, "..", "gpu", "index.js")).href];
}

/** What gpu/index.js exports that lib uses (typed loosely: lib never imports gpu/ statically). */
export interface GpuModule {
  createWebGpuBackend?: (o?: Record<string, unknown>) => Promise<Backend>;
  createWebGpuTapeBackend?: (o?: Record<string, unknown>) => Promise<Backend>;
}

let gpuModule: Promise<GpuModule> | undefined;

/** Imports the WebGPU backend module (once per process). */
export function loadGpuModule(): Promise<GpuModule> {
  gpuModule ??= (async () => {
    let lastError: unknown;
    for (const url of gpuEntryCandidates()) {
      if (url.startsWith("file:") && !fs.existsSync(fileURLToPath(url))) continue;
      try {
        return (await import(url)) as GpuModule;
      } catch (err) {
        lastError = err;
      }
    }
    const why = lastError ? (lastError as Error).message : "gpu/index.js not found (is the project built?)";
    throw new LlamaError(`device "webgpu": cannot load the WebGPU backend (${why})`, { cause: lastError });
  })().catch((err: unknown) => {
    gpuModule = undefined; // let a later call retry
    throw err;
  });
  return gpuModule;
}

async function loadWebGpu(options?: Record<string, unknown>): Promise<Backend> {
  const mod = await loadGpuModule();
  if (typeof mod.createWebGpuBackend !== "function") {
    throw new LlamaError(`device "webgpu": gpu/index.js does not export createWebGpuBackend`);
  }
  return mod.createWebGpuBackend(options);
}

/**
 * Makes disposing a shared backend also forget it, so the next getBackend()
 * creates a fresh one instead of handing out a dead instance.
 */
function forgetOnDispose(backend: Promise<Backend>, forget: () => void): Promise<Backend> {
  return backend.then((b) => {
    const dispose = b.dispose.bind(b);
    b.dispose = () => {
      forget();
      dispose();
    };
    return b;
  });
}

/**
 * The shared backend for a device (created once per process for default
 * options; pass options to get a fresh one). Disposing the shared backend
 * makes the next call create a new one.
 */
export function getBackend(device: Device = "cpu", options?: BackendOptions): Promise<Backend> {
  if (device === "cpu") {
    if (options) return CpuBackend.create(options as CpuBackendOptions);
    defaultCpu ??= forgetOnDispose(CpuBackend.create(), () => (defaultCpu = undefined));
    return defaultCpu;
  }
  if (device === "webgpu") {
    if (options?.webgpu) return loadWebGpu(options.webgpu);
    defaultGpu ??= forgetOnDispose(
      loadWebGpu().catch((err: unknown) => {
        defaultGpu = undefined; // let a later call retry
        throw err;
      }),
      () => (defaultGpu = undefined),
    );
    return defaultGpu;
  }
  throw new LlamaError(`unknown device ${JSON.stringify(device)} (expected "cpu" or "webgpu")`);
}
