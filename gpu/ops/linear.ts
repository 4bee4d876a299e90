/**
 * Linear layers on the GPU: GEMV for decode-sized inputs (M ≤ 8 rows), the
 * tiled kernel otherwise, over dense or ggml-block weights. See
 * kernels/matmul.ts for the tiling.
 */
import { LlamaError } from "../../lib/errors.js";
import type { GpuTensor } from "../buffers.js";
import { GEMV_MAX_M, gemvKernel, tiledMatmulKernel } from "../kernels/index.js";
import type { GpuRuntime } from "../runtime.js";

export interface LinearOptions {
  /** Force a kernel (tests use this to cover both on any shape). */
  kernel?: "gemv" | "tiled";
}

/** x [..., K] · weight[N, K]ᵀ (+ bias[N]) → [..., N]. */
export function linear(rt: GpuRuntime, x: GpuTensor, weight: GpuTensor, bias?: GpuTensor, opts: LinearOptions = {}): GpuTensor {
  const K = x.shape[x.shape.length - 1]!;
  const [N, Kw] = weight.shape as [number, number];
  if (weight.shape.length !== 2 || Kw !== K) {
    throw new LlamaError(`webgpu linear: input [${x.shape.join(", ")}] does not match weight [${weight.shape.join(", ")}]`);
  }
  if (bias && bias.size !== N) throw new LlamaError(`webgpu linear: bias [${bias.shape.join(", ")}] does not match ${N} outputs`);
  const maxBinding = rt.ctx.limits.maxStorageBufferBindingSize;
  if (weight.buf.size > maxBinding) {
    throw new LlamaError(
      `webgpu linear: weight [${weight.shape.join(", ")}] (${weight.buf.size} bytes) exceeds this device's ` +
        `maxStorageBufferBindingSize (${maxBinding})`,
    );
  }
  const M = x.size / K;
  const out = rt.empty([...x.shape.slice(0, -1), N]);
  if (M === 0 || N === 0) return out;
  const wf = weight.quant ?? rt.format(weight); // ggml blocks are read (and dequantized) by the same kernels
  const bf = bias ? rt.format(bias) : undefined;
  const vec4 = K % 4 === 0;
  const bindings = bias
    ? [{ buf: x.buf }, { buf: weight.buf }, { buf: bias.buf }, { buf: out.buf }]
    : [{ buf: x.buf }, { buf: weight.buf }, { buf: out.buf }];
  const kind = opts.kernel ?? (M <= GEMV_MAX_M ? "gemv" : "tiled");
  if (kind === "gemv") {
    // Several GEMV launches when M exceeds the kernel's per-thread accumulator count.
    for (let m0 = 0; m0 < M; m0 += GEMV_MAX_M) {
      rt.exec.dispatch(gemvKernel(wf, vec4, bf, useSubgroups(rt)), bindings, [Math.min(GEMV_MAX_M, M - m0), N, K, N, m0], [Math.ceil(N / 4)]);
    }
  } else {
    rt.exec.dispatch(tiledMatmulKernel(wf, vec4, bf), bindings, [M, N, K, N], [Math.ceil(N / 64), Math.ceil(M / 64)]);
  }
  return out;
}

/** Subgroup reductions need each 64-thread row group to be whole subgroups (size ≤ 64, a power of two). */
export function useSubgroups(rt: GpuRuntime): boolean {
  const { useSubgroups: on, info } = rt.ctx;
  return on && info.subgroupMaxSize > 0 && info.subgroupMaxSize <= 64 && (info.subgroupMinSize & (info.subgroupMinSize - 1)) === 0;
}
