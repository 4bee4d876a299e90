/**
 * Differentiable backends: the Backend the model code runs on, plus the glue
 * that links its inputs and outputs to host `Var`s, so a loss computed on the
 * host backpropagates through the model into a host parameter (a soft prompt).
 *
 *   - `TapeBackend` (CPU): the whole graph is host Vars; `backward(loss)` does everything.
 *   - the WebGPU one (gpu/tape-backend.ts): the model's graph stays on the GPU;
 *     `backward(loss)` runs the host part (the loss) and hands the logits'
 *     gradient to the device, and `completeBackward()` runs the device part
 *     and continues on the host into the parameters.
 *
 * `backprop(backend, loss)` does both steps on either.
 */
import { LlamaError } from "../errors.js";
import type { Backend } from "../backend/backend.js";
import { deviceFactory, type WebGpuOptions } from "../backend/registry.js";
import type { Tensor } from "../tensor/tensor.js";
import { TapeBackend } from "./tape-backend.js";
import { type Var, backward } from "./var.js";
import type { SoftmaxRowsKernel } from "./loss.js";

export interface DifferentiableBackend extends Backend {
  readonly differentiable: true;
  /** A host Tensor showing `v`'s values that, uploaded to this backend (e.g. as `inputsEmbeds`), carries `v`'s gradient. */
  asTensor(v: Var): Tensor;
  /** The Var behind a tensor this backend's read() returned (e.g. a model's logits). */
  varOf(t: Tensor): Var;
  /** Runs the part of a backward pass that `backward(loss)` left on the device (a no-op on the CPU tape). */
  completeBackward(): Promise<void>;
  /** Forgets ops recorded for a backward that will not happen (device tapes free their saved activations). */
  discardTape?(): void;
  /** Softmax statistics of host rows on this backend's faster kernels (the CPU tape's wasm), with jsSoftmaxRows' numbers. */
  softmaxRows?: SoftmaxRowsKernel;
}

export function isDifferentiable(be: Backend): be is DifferentiableBackend {
  return (be as Partial<DifferentiableBackend>).differentiable === true;
}

/** `backward(loss)` through host and device: gradients land in the leaves' `.grad`. */
export async function backprop(be: DifferentiableBackend, loss: Var): Promise<void> {
  backward(loss);
  await be.completeBackward();
}

/**
 * A differentiable backend for a device: the CPU tape, or the WebGPU one
 * (gradients computed by WGSL kernels, only the loss's inputs and the
 * parameter's gradient cross to the host), made by the factory gpu/ registered.
 */
export async function createDifferentiableBackend(device: "cpu" | "webgpu" = "cpu", options: WebGpuOptions = {}): Promise<DifferentiableBackend> {
  if (device === "cpu") return TapeBackend.create();
  if (device !== "webgpu") throw new LlamaError(`createDifferentiableBackend: unknown device "${String(device)}" (expected "cpu" or "webgpu")`);
  return deviceFactory(device).differentiable(options);
}
