/**
 * Weights kept in their ggml blocks on the GPU (lib/tensor/quantized.ts):
 * the upload (the file's bytes as they are, the tail padded to 4 bytes), its
 * input gradient
 * (g·W, dequantizing in the kernel: no dense copy of W is ever made), the
 * embedding gather and the read-back. Kernels: kernels/quant-matmul.ts. The
 * Linear forward is ops/linear.ts's (its GEMV and tiled kernels read blocks too).
 */
import { LlamaError } from "../../lib/errors.js";
import { QUANT_LAYOUT, type QuantizedTensor, type QuantType, dequantizeRows } from "../../lib/tensor/quantized.js";
import { Tensor } from "../../lib/tensor/tensor.js";
import type { GpuTensor } from "../buffers.js";
import { flatGrid } from "../kernels/index.js";
import { quantGatherKernel, quantMatmulTKernel } from "../kernels/quant-matmul.js";
import type { GpuRuntime } from "../runtime.js";

/** Bytes of one row of a quantized [N, K] weight. */
function rowBytes(type: QuantType, K: number): number {
  return (K / QUANT_LAYOUT[type].elems) * QUANT_LAYOUT[type].bytes;
}

function quantOf(w: GpuTensor, what: string): QuantType {
  if (!w.quant) throw new LlamaError(`webgpu ${what}: expected a quantized weight, got ${w.dtype}`);
  return w.quant;
}

/** Copies the blocks into one exact-size storage buffer (counted as weights). */
export function uploadQuantized(rt: GpuRuntime, q: QuantizedTensor): GpuTensor {
  rt.ctx.assertAlive();
  const buf = rt.pool.createExact(q.data.byteLength, "weights", true, `${q.type} [${q.shape.join(", ")}]`);
  new Uint8Array(buf.buffer.getMappedRange()).set(q.data);
  buf.buffer.unmap();
  const t = rt.adopt(buf, q.shape, "f32");
  t.quant = q.type;
  return t;
}

/** The dequantized values (host side, bit-exact: lib/io/gguf-dequant.ts). */
export async function readQuantized(rt: GpuRuntime, w: GpuTensor): Promise<Tensor> {
  if (w.consumed) throw new LlamaError("WebGPU read(): the tensor was released");
  const type = quantOf(w, "read");
  const [N, K] = w.shape as [number, number];
  const raw = new Uint8Array(await rt.exec.read({ buf: w.buf }, N * rowBytes(type, K)));
  return new Tensor(dequantizeRows(type, raw, K, 0, N, new Float32Array(N * K)), w.shape, "f32");
}

/** The input gradient of a frozen quantized Linear: g [..., N] · W[N, K] → [..., K]. */
export function quantLinearInputGrad(rt: GpuRuntime, g: GpuTensor, w: GpuTensor): GpuTensor {
  const type = quantOf(w, "linear backward");
  const [N, K] = w.shape as [number, number];
  if (g.shape[g.shape.length - 1] !== N) {
    throw new LlamaError(`webgpu linear backward: gradient [${g.shape.join(", ")}] does not match ${type} weight [${w.shape.join(", ")}]`);
  }
  checkBinding(rt, w);
  const M = g.size / N;
  const out = rt.empty([...g.shape.slice(0, -1), K]);
  if (M === 0) return out;
  rt.exec.dispatch(quantMatmulTKernel(type), [{ buf: g.buf }, { buf: w.buf }, { buf: out.buf }], [M, N, K, rowBytes(type, K)],
    [Math.ceil(K / 64), Math.ceil(M / 64)]);
  return out;
}

/** Rows `ids` of a quantized table [V, H] → [batch, seqLen, H] f32. */
export function quantEmbedding(rt: GpuRuntime, table: GpuTensor, ids: Int32Array, batch: number, seqLen: number): GpuTensor {
  const type = quantOf(table, "embedding");
  const [V, H] = table.shape as [number, number];
  if (ids.length !== batch * seqLen) throw new LlamaError(`webgpu embedding: ${ids.length} ids for [${batch}, ${seqLen}]`);
  for (const id of ids) if (!(id >= 0 && id < V)) throw new LlamaError(`embedding: token id ${id} out of range [0, ${V})`);
  checkBinding(rt, table);
  const out = rt.empty([batch, seqLen, H]);
  const idBuf = rt.hostBuffer(new Uint32Array(ids.buffer, ids.byteOffset, ids.length));
  const n = ids.length * (H / 4);
  rt.exec.dispatch(quantGatherKernel(type), [{ buf: idBuf }, { buf: table.buf }, { buf: out.buf }], [n, H / 4, rowBytes(type, H)],
    flatGrid(n, rt.ctx.limits.maxComputeWorkgroupsPerDimension));
  rt.pool.release(idBuf);
  return out;
}

function checkBinding(rt: GpuRuntime, w: GpuTensor): void {
  const max = rt.ctx.limits.maxStorageBufferBindingSize;
  if (w.buf.size > max) {
    throw new LlamaError(`webgpu: ${w.quant} weight [${w.shape.join(", ")}] (${w.buf.size} bytes) exceeds this device's maxStorageBufferBindingSize (${max})`);
  }
}
