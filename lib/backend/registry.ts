/**
 * Backend registry: `getBackend("cpu" | "webgpu")`. The CPU backend is part of
 * lib. Other devices plug in from outside with `registerDevice`: gpu/register.ts
 * registers "webgpu" when the package entry ("llama-ts") or the CLI loads, and
 * its factory imports Dawn only when the first webgpu backend is asked for.
 * lib never imports gpu/: it only knows the typed factory below.
 */
import { LlamaError } from "../errors.js";
import type { DifferentiableBackend } from "../autograd/differentiable.js";
import type { Backend, Device } from "./backend.js";
import { CpuBackend } from "./cpu/cpu-backend.js";

/** Options of the WebGPU backend (gpu/ implements them; declared here so lib code can pass them typed). */
export interface WebGpuOptions {
  /** How f16 weights are bound: "native" `array<f16>` (needs `shader-f16`) or "packed" in `array<u32>` (default: env LLAMA_TS_WEBGPU_F16, else native when the adapter has it). */
  f16?: "native" | "packed";
  /** Use `subgroups` for reductions when the adapter has it (default true; env LLAMA_TS_WEBGPU_SUBGROUPS=0 turns it off). */
  subgroups?: boolean;
  /** Adapter power preference (default "high-performance"). */
  powerPreference?: "high-performance" | "low-power";
  /** Extra Dawn toggles (e.g. "backend=vulkan"). */
  dawnFlags?: string[];
}

export interface BackendOptions {
  /** CPU: total threads including the calling one (default: CPU cores, at most 4). */
  threads?: number;
  /** CPU: use the WebAssembly SIMD kernels when the runtime supports them (default true). */
  wasm?: boolean;
  /** WebGPU: adapter and shader options. */
  webgpu?: WebGpuOptions;
}

/** A device that lives outside lib (only "webgpu" today). */
export type PluggableDevice = Exclude<Device, "cpu">;

/** How a device outside lib makes its backends (gpu/register.ts registers one for "webgpu"). */
export interface DeviceFactory {
  /** A backend for inference. */
  backend(options?: WebGpuOptions): Promise<Backend>;
  /** A differentiable backend for training (gradients computed on the device). */
  differentiable(options?: WebGpuOptions): Promise<DifferentiableBackend>;
}

const factories = new Map<PluggableDevice, DeviceFactory>();

/** Makes `device` available to getBackend and createDifferentiableBackend (a later registration replaces an earlier one). */
export function registerDevice(device: PluggableDevice, factory: DeviceFactory): void {
  factories.set(device, factory);
}

/** The registered factory for `device`, or a one-line error saying how to register it. */
export function deviceFactory(device: PluggableDevice): DeviceFactory {
  const f = factories.get(device);
  if (!f) {
    throw new LlamaError(
      `device "${device}" is not registered: import "llama-ts" (its entry registers the WebGPU backend), ` +
        `or import gpu/register.js before using lib/ files directly`,
    );
  }
  return f;
}

let defaultCpu: Promise<Backend> | undefined;
let defaultGpu: Promise<Backend> | undefined;

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
    if (options) return CpuBackend.create({ threads: options.threads, wasm: options.wasm });
    defaultCpu ??= forgetOnDispose(CpuBackend.create(), () => (defaultCpu = undefined));
    return defaultCpu;
  }
  if (device === "webgpu") {
    const factory = deviceFactory(device);
    if (options?.webgpu) return factory.backend(options.webgpu);
    defaultGpu ??= forgetOnDispose(
      factory.backend().catch((err: unknown) => {
        defaultGpu = undefined; // let a later call retry
        throw err;
      }),
      () => (defaultGpu = undefined),
    );
    return defaultGpu;
  }
  throw new LlamaError(`unknown device ${JSON.stringify(device)} (expected "cpu" or "webgpu")`);
}
