/**
 * Element-wise and layout ops of the WebGPU backend (shapes as in lib/backend/backend.ts).
 */
import { LlamaError } from "../../lib/errors.js";
import { numel } from "../../lib/tensor/tensor.js";
import type { GpuTensor, PooledBuffer } from "../buffers.js";
import {
  addKernel, embeddingKernel, flatGrid, permute0213Kernel, rmsInverseKernel, rmsNormKernel, scaleKernel, siluMulKernel,
} from "../kernels/index.js";
import type { WeightFormat } from "../kernels/weights.js";
import { act, type GpuRuntime } from "../runtime.js";

function sameShape(a: GpuTensor, b: GpuTensor, op: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new LlamaError(`webgpu ${op}: shapes [${a.shape.join(", ")}] and [${b.shape.join(", ")}] differ`);
  }
}

/** Dispatches a flat element-wise kernel over n elements. */
function flat(rt: GpuRuntime, kernel: Parameters<GpuRuntime["exec"]["dispatch"]>[0], bindings: Parameters<GpuRuntime["exec"]["dispatch"]>[1],
  params: Parameters<GpuRuntime["exec"]["dispatch"]>[2], n: number): void {
  rt.exec.dispatch(kernel, bindings, params, flatGrid(n, rt.ctx.limits.maxComputeWorkgroupsPerDimension));
}

/** Rows of a table [*, H] (a weight in any format, or f32 activations), ids [N] → [N, H] f32. */
export function gatherRows(rt: GpuRuntime, table: PooledBuffer, format: WeightFormat, H: number, rowIds: Uint32Array,
  outShape: readonly number[]): GpuTensor {
  const out = rt.empty(outShape);
  const ids = rt.hostBuffer(rowIds);
  const n = rowIds.length * H;
  flat(rt, embeddingKernel(format), [{ buf: ids }, { buf: table }, { buf: out.buf }], [n, H], n);
  rt.pool.release(ids);
  return out;
}

export function embedding(rt: GpuRuntime, table: GpuTensor, ids: Int32Array, batch: number, seqLen: number): GpuTensor {
  const [V, H] = table.shape as [number, number];
  if (table.shape.length !== 2) throw new LlamaError(`webgpu embedding: table must be [V, H], got [${table.shape.join(", ")}]`);
  if (ids.length !== batch * seqLen) throw new LlamaError(`webgpu embedding: ${ids.length} ids for [${batch}, ${seqLen}]`);
  for (const id of ids) if (!(id >= 0 && id < V)) throw new LlamaError(`embedding: token id ${id} out of range [0, ${V})`);
  return gatherRows(rt, table.buf, rt.format(table), H, new Uint32Array(ids.buffer, ids.byteOffset, ids.length), [batch, seqLen, H]);
}

/** Checks an RMSNorm's operands; returns the workgroup grid of its rows. */
export function rmsNormGrid(rt: GpuRuntime, x: GpuTensor, weight: GpuTensor): [number, number] {
  const H = x.shape[x.shape.length - 1]!;
  if (weight.size !== H) throw new LlamaError(`webgpu rmsNorm: weight [${weight.shape.join(", ")}] does not match hidden size ${H}`);
  rt.format(weight);
  const rows = x.size / H;
  const maxWg = rt.ctx.limits.maxComputeWorkgroupsPerDimension;
  const grid: [number, number] = rows <= maxWg ? [rows, 1] : [maxWg, Math.ceil(rows / maxWg)];
  if (grid[0] * grid[1] !== rows) {
    throw new LlamaError(`webgpu rmsNorm: ${rows} rows cannot be laid out on the workgroup grid (limit ${maxWg})`);
  }
  return grid;
}

/** Records RMSNorm of x into `out` (a buffer of x's size). */
export function rmsNormInto(rt: GpuRuntime, x: GpuTensor, weight: GpuTensor, eps: number, out: PooledBuffer): void {
  const grid = rmsNormGrid(rt, x, weight);
  const H = x.shape[x.shape.length - 1]!;
  rt.exec.dispatch(rmsNormKernel(rt.format(weight)), [{ buf: x.buf }, { buf: weight.buf }, { buf: out }], [H, { f32: eps }], grid);
}

/** Records each row's 1/rms of x (RMSNorm's reduction) into a new [rows] tensor: the input of a GEMV with RMSNorm folded in. */
export function rmsInverse(rt: GpuRuntime, x: GpuTensor, weight: GpuTensor, eps: number): GpuTensor {
  const grid = rmsNormGrid(rt, x, weight);
  const H = x.shape[x.shape.length - 1]!;
  const out = rt.empty([x.size / H]);
  rt.exec.dispatch(rmsInverseKernel(), [{ buf: x.buf }, { buf: out.buf }], [H, { f32: eps }], grid);
  return out;
}

export function add(rt: GpuRuntime, a: GpuTensor, b: GpuTensor): GpuTensor {
  sameShape(a, b, "add");
  const out = rt.empty(a.shape);
  flat(rt, addKernel(), [{ buf: a.buf }, { buf: b.buf }, { buf: out.buf }], [a.size], a.size);
  return out;
}

export function scale(rt: GpuRuntime, x: GpuTensor, factor: number): GpuTensor {
  const out = rt.empty(x.shape);
  flat(rt, scaleKernel(), [{ buf: x.buf }, { buf: out.buf }], [x.size, { f32: factor }], x.size);
  return out;
}

export function siluMul(rt: GpuRuntime, gate: GpuTensor, up: GpuTensor): GpuTensor {
  sameShape(gate, up, "siluMul");
  const out = rt.empty(gate.shape);
  flat(rt, siluMulKernel(), [{ buf: gate.buf }, { buf: up.buf }, { buf: out.buf }], [gate.size], gate.size);
  return out;
}

/** [A, B, C, D] → [A, C, B, D] (a dense copy). */
export function permute0213(rt: GpuRuntime, x: GpuTensor, outShape: readonly number[]): GpuTensor {
  const [, B, C, D] = x.shape as [number, number, number, number];
  const out = rt.empty(outShape);
  flat(rt, permute0213Kernel(), [{ buf: x.buf }, { buf: out.buf }], [x.size, B, C, D], x.size);
  return out;
}

/** [B, heads, T, D] → [B, T, heads*D]. */
export function mergeHeads(rt: GpuRuntime, x: GpuTensor): GpuTensor {
  const [B, H, T, D] = x.shape as [number, number, number, number];
  if (x.shape.length !== 4) throw new LlamaError(`mergeHeads: expected [B, heads, T, D], got [${x.shape.join(", ")}]`);
  return permute0213(rt, x, [B, T, H * D]);
}

/** x [B, T, H], index [B*K] positions per row → [B, K, H]. */
export function selectPositions(rt: GpuRuntime, x: GpuTensor, index: Int32Array, perRow: number): GpuTensor {
  const [B, T, H] = x.shape as [number, number, number];
  if (x.shape.length !== 3) throw new LlamaError(`selectPositions: expected [B, T, H], got [${x.shape.join(", ")}]`);
  if (index.length !== B * perRow) throw new LlamaError(`selectPositions: ${index.length} indices for ${B} rows x ${perRow}`);
  const rows = new Uint32Array(index.length);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < perRow; j++) {
      const t = index[b * perRow + j]!;
      if (!(t >= 0 && t < T)) throw new LlamaError(`selectPositions: position ${t} out of range [0, ${T})`);
      rows[b * perRow + j] = b * T + t;
    }
  }
  // Gather rows of x viewed as a [B*T, H] table.
  return gatherRows(rt, act(x, "selectPositions input").buf, "f32", H, rows, [B, perRow, H]);
}

/** Gathers batch rows of a dense tensor or a KV view (copying whole per-row blocks, capacity kept). */
export function selectBatch(rt: GpuRuntime, x: GpuTensor, rows: Int32Array): GpuTensor {
  const B = x.shape[0]!;
  const rest = x.shape.slice(1);
  const elemBytes = x.dtype === "f32" ? 4 : 2;
  const rowElems = x.dense ? numel(rest) : x.shape[1]! * x.capacity * x.shape[3]!;
  const rowBytes = rowElems * elemBytes;
  const shape = [rows.length, ...rest];
  const total = rows.length * rowElems;
  const buf = x.dense ? rt.pool.acquire(Math.max(4, total * elemBytes)) : rt.pool.createExact(total * 4, "kv");
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (!(r >= 0 && r < B)) throw new LlamaError(`selectBatch: row ${r} out of range [0, ${B})`);
    if (rowBytes % 4 !== 0) throw new LlamaError(`selectBatch: rows of ${rowBytes} bytes are not 4-byte aligned`);
    if (rowBytes > 0) rt.exec.copy({ buf: x.buf, offset: r * rowBytes }, { buf, offset: i * rowBytes }, rowBytes);
  }
  return rt.adopt(buf, shape, x.dtype, x.dense ? undefined : x.capacity);
}
