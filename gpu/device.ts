/**
 * Adapter and device acquisition on Dawn (npm `webgpu`), and its teardown.
 *
 * Dawn's `create()` object owns the native instance; while it (or a device)
 * is alive, pending callbacks can keep node running. `GpuContext.destroy()`
 * destroys the device, drops every reference and then waits until Dawn's
 * wrappers are finalized, so a program exits by itself and nothing of Dawn's
 * is left to node's own exit (gpu/teardown.ts says why that matters).
 *
 * The Vulkan device under Dawn owns driver threads (Mesa lavapipe: two
 * `llvmpipe-N` rasterizer threads and a `disk$0` shader-cache thread); they
 * stop when the last wrapper holding the device is finalized, which
 * `closed` waits for.
 */
import { LlamaError } from "../lib/errors.js";
import { DawnObjects, nextTurn, trackTeardown } from "./teardown.js";

/** How f16 weights are read by the shaders. */
export type F16Mode = "native" | "packed";

export interface GpuOptions {
  /**
   * "native": f16 weights bound as `array<f16>` (needs `shader-f16`);
   * "packed": bound as `array<u32>` and widened with `unpack2x16float` (the path
   * of adapters without `shader-f16`, e.g. the H100 through Dawn/Vulkan).
   * Default: env LLAMA_TS_WEBGPU_F16, else native when the adapter has it.
   */
  f16?: F16Mode;
  /** Use `subgroups` for reductions when the adapter has it (default true; env LLAMA_TS_WEBGPU_SUBGROUPS=0 turns it off). */
  subgroups?: boolean;
  /** Adapter power preference (default "high-performance"). */
  powerPreference?: "high-performance" | "low-power";
  /** Extra Dawn toggles passed to `create()` (e.g. "backend=vulkan"). */
  dawnFlags?: string[];
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Dawn marks CPU-type Vulkan devices (lavapipe) as "fallback" adapters. */
  isFallbackAdapter: boolean;
  subgroupMinSize: number;
  subgroupMaxSize: number;
}

/** The limits we raise to the adapter's maxima (the defaults are far too small for LLM weights). */
const RAISED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

/** The step that installs a Vulkan driver Dawn can use on a machine without a GPU (or without its driver). */
export const VULKAN_SETUP_HINT =
  "install a Vulkan driver: on Debian 12 run `bash scripts/setup-system.sh` (Mesa lavapipe: " +
  "`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`), or your GPU vendor's Vulkan driver; " +
  "`vulkaninfo --summary` should then list a device";

// Dawn's node module is loaded lazily so that importing gpu/ costs nothing until a device is asked for.
interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}
let dawn: DawnModule | undefined;
async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  try {
    const mod = (await import("webgpu")) as unknown as DawnModule;
    // WebGPU's constants (GPUBufferUsage, GPUMapMode, …) are globals in a browser; Dawn ships them separately.
    for (const [k, v] of Object.entries(mod.globals)) {
      if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    }
    dawn = mod;
    return mod;
  } catch (err) {
    throw new LlamaError(`WebGPU: cannot load Dawn (npm package "webgpu"): ${(err as Error).message}; run \`npm ci\``, { cause: err });
  }
}

/** An acquired device plus what we learned about it. */
export class GpuContext {
  /** Set when Dawn reports the device lost; every later GPU call throws this. */
  lostError: LlamaError | undefined;
  /** First uncaptured validation/out-of-memory error (reported on the next read). */
  uncapturedError: string | undefined;
  /** The Dawn objects made for this device (instance, adapter, device, buffers, pipelines, bind groups). */
  readonly objects = new DawnObjects();
  private destroyed = false;

  private constructor(
    private instance: GPU | undefined,
    private adapterRef: GPUAdapter | undefined,
    private deviceRef: GPUDevice | undefined,
    readonly info: AdapterSummary,
    readonly hasShaderF16: boolean,
    readonly f16Mode: F16Mode,
    readonly useSubgroups: boolean,
  ) {
    const device = deviceRef!;
    this.objects.track(instance!);
    this.objects.track(adapterRef!);
    this.objects.track(device);
    device.lost.then((info) => {
      if (this.destroyed) return;
      this.lostError = new LlamaError(`WebGPU device lost (${info.reason}): ${info.message}`);
    });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.uncapturedError ??= ev.error.message;
    };
  }

  static async acquire(options: GpuOptions = {}): Promise<GpuContext> {
    const { create } = await loadDawn();
    const flags = options.dawnFlags ?? [];
    let instance: GPU | undefined = create(flags);
    let adapter: GPUAdapter | null = null;
    try {
      adapter = await instance.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
    } catch (err) {
      instance = undefined;
      throw new LlamaError(`WebGPU: no adapter (${(err as Error).message}); ${VULKAN_SETUP_HINT}`, { cause: err });
    }
    if (!adapter) {
      instance = undefined;
      throw new LlamaError(`WebGPU: Dawn found no GPU adapter; ${VULKAN_SETUP_HINT}`);
    }
    const info = summarizeAdapter(adapter);
    const hasShaderF16 = adapter.features.has("shader-f16");
    const requested = options.f16 ?? envF16Mode();
    if (requested === "native" && !hasShaderF16) {
      throw new LlamaError(`WebGPU: f16 mode "native" needs the shader-f16 feature, which ${info.description || info.device} lacks; use "packed"`);
    }
    const f16Mode: F16Mode = requested ?? (hasShaderF16 ? "native" : "packed");
    const wantSubgroups = (options.subgroups ?? process.env["LLAMA_TS_WEBGPU_SUBGROUPS"] !== "0") && adapter.features.has("subgroups");

    const requiredFeatures: GPUFeatureName[] = [];
    if (hasShaderF16) requiredFeatures.push("shader-f16");
    if (wantSubgroups) requiredFeatures.push("subgroups" as GPUFeatureName);
    const requiredLimits: Record<string, number> = {};
    const adapterLimits = adapter.limits as unknown as Record<string, number>;
    for (const name of RAISED_LIMITS) {
      const v = adapterLimits[name];
      if (typeof v === "number") requiredLimits[name] = v;
    }
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    } catch (err) {
      // Some drivers refuse their own maxima; retry with defaults before giving up.
      try {
        device = await adapter.requestDevice({ requiredFeatures });
      } catch {
        throw new LlamaError(`WebGPU: requestDevice failed on ${info.description || info.device}: ${(err as Error).message}`, { cause: err });
      }
    }
    return new GpuContext(instance, adapter, device, info, hasShaderF16, f16Mode, wantSubgroups);
  }

  get adapter(): GPUAdapter {
    this.assertAlive();
    return this.adapterRef!;
  }

  get device(): GPUDevice {
    this.assertAlive();
    return this.deviceRef!;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Throws when the device is lost or destroyed (called before recording work). */
  assertAlive(): void {
    if (this.destroyed) throw new LlamaError("WebGPU: the backend was released; create a new one");
    if (this.lostError) throw this.lostError;
  }

  /**
   * Destroys the device, drops the device, adapter and instance, and collects
   * them once Dawn lets go (see gpu/teardown.ts): when `closed` settles,
   * Dawn's objects are finalized and its driver threads have stopped. Call
   * after the buffers are destroyed and dropped (GpuRuntime.destroy). Idempotent.
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    // Held until Dawn has delivered the device-lost event of destroy(): the binding's event pump
    // uses the instance until then (gpu/teardown.ts). One turn later all may be collected.
    let held: unknown[] | undefined = [this.instance, this.adapterRef, this.deviceRef];
    const device = this.deviceRef!;
    const lost = device.lost;
    this.deviceRef = undefined;
    this.adapterRef = undefined;
    this.instance = undefined;
    device.onuncapturederror = null;
    device.destroy();
    this.closed = lost
      .then(() => nextTurn())
      .then(() => {
        held = undefined;
        return this.objects.collect();
      });
    trackTeardown(this.closed);
    void held;
  }

  /**
   * Settles when destroy() has finished, with the number of Dawn objects
   * still alive: 0, unless code outside the backend kept one.
   */
  closed: Promise<number> | undefined;
}

function envF16Mode(): F16Mode | undefined {
  const v = process.env["LLAMA_TS_WEBGPU_F16"];
  if (v === undefined || v === "") return undefined;
  if (v === "native" || v === "packed") return v;
  throw new LlamaError(`LLAMA_TS_WEBGPU_F16: expected "native" or "packed", got "${v}"`);
}

export function summarizeAdapter(adapter: GPUAdapter): AdapterSummary {
  const i = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean; subgroupMinSize?: number; subgroupMaxSize?: number };
  return {
    vendor: i.vendor ?? "",
    architecture: i.architecture ?? "",
    device: i.device ?? "",
    description: i.description ?? "",
    isFallbackAdapter: Boolean(i.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    subgroupMinSize: i.subgroupMinSize ?? 0,
    subgroupMaxSize: i.subgroupMaxSize ?? 0,
  };
}

/**
 * What kind of adapter Dawn gave us: a hardware GPU, Mesa's lavapipe (Vulkan
 * on the CPU: the CI path), or one of the silent fallbacks we refuse to count
 * as "the GPU path" (SwiftShader, Dawn's null backend).
 */
export type AdapterKind = "gpu" | "lavapipe" | "swiftshader" | "null";

export function classifyAdapter(info: AdapterSummary): AdapterKind {
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  if (text.includes("null-backend") || text.trim() === "") return "null";
  if (text.includes("swiftshader")) return "swiftshader";
  if (text.includes("llvmpipe") || text.includes("lavapipe")) return "lavapipe";
  return "gpu";
}

/** Every numeric limit of a limits object, by name (Dawn's limits are getters, not own properties). */
export function limitsRecord(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key in limits) {
    const v = (limits as unknown as Record<string, unknown>)[key];
    if (typeof v === "number") out[key] = v;
  }
  return out;
}
