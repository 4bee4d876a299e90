/**
 * Backward ops of the WebGPU backend: the input and weight gradients of the
 * forward ops (kernels in ../kernels/backward.ts). Used by the differentiable
 * backend (../tape-backend.ts); shapes are the forward's.
 */
import type { AttentionMask } from "../../lib/backend/backend.js";
import { LlamaError } from "../../lib/errors.js";
import type { GpuTensor } from "../buffers.js";
import {
  attendWithValuesBackwardKernel, attendWithWeightsBackwardKernel, attentionKeyValueBackwardKernel, attentionQueryBackwardKernel,
  attentionScoresBackwardKernel, columnSumKernel, flatGrid, kvCopyKernel, linearWeightBackwardKernel, rmsNormBackwardKernel,
  scatterRowsKernel, siluMulBackwardKernel, transposeToF32Kernel,
} from "../kernels/index.js";
import { act, gpu, type GpuRuntime } from "../runtime.js";
import { scale } from "./basic.js";

function grid(rt: GpuRuntime, n: number): [number, number] {
  return flatGrid(n, rt.ctx.limits.maxComputeWorkgroupsPerDimension);
}

function sameShape(a: GpuTensor, b: GpuTensor, op: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new LlamaError(`webgpu ${op}: shapes [${a.shape.join(", ")}] and [${b.shape.join(", ")}] differ`);
  }
}

/** A copy (one gradient handed to two inputs needs two owners). */
export function copy(rt: GpuRuntime, x: GpuTensor): GpuTensor {
  return scale(rt, x, 1);
}

/** Host float32 values in a new device tensor (a gradient handed over by the host). */
export function fromHost(rt: GpuRuntime, values: Float32Array, shape: readonly number[]): GpuTensor {
  return rt.adopt(rt.hostBuffer(values), shape, "f32");
}

/** W [N, K] (any weight dtype) → Wᵀ [K, N] in f32, in its own buffer (kept while the weight is). */
export function transposeWeight(rt: GpuRuntime, w: GpuTensor): GpuTensor {
  const [N, K] = w.shape as [number, number];
  if (w.shape.length !== 2) throw new LlamaError(`webgpu transposeWeight: expected a 2-D weight, got [${w.shape.join(", ")}]`);
  const out = rt.emptyExact([K, N], "weights");
  const n = N * K;
  rt.exec.dispatch(transposeToF32Kernel(rt.format(w)), [{ buf: w.buf }, { buf: out.buf }], [n, N, K], grid(rt, n));
  return out;
}

/** d(rmsNorm(x, w))/dx applied to g: x, g [..., H] → [..., H]. */
export function rmsNormBackward(rt: GpuRuntime, x: GpuTensor, weight: GpuTensor, g: GpuTensor, eps: number): GpuTensor {
  sameShape(act(x, "rmsNorm backward input"), act(g, "rmsNorm backward gradient"), "rmsNorm backward");
  const H = x.shape[x.shape.length - 1]!;
  if (weight.size !== H) throw new LlamaError(`webgpu rmsNorm backward: weight [${weight.shape.join(", ")}] does not match ${H}`);
  const rows = x.size / H;
  const out = rt.empty(x.shape);
  const maxWg = rt.ctx.limits.maxComputeWorkgroupsPerDimension;
  const wg: [number, number] = rows <= maxWg ? [rows, 1] : [maxWg, Math.ceil(rows / maxWg)];
  if (wg[0] * wg[1] !== rows) throw new LlamaError(`webgpu rmsNorm backward: ${rows} rows do not fit the workgroup grid (limit ${maxWg})`);
  rt.exec.dispatch(rmsNormBackwardKernel(rt.format(weight)),
    [{ buf: x.buf }, { buf: weight.buf }, { buf: g.buf }, { buf: out.buf }], [H, { f32: eps }], wg);
  return out;
}

/** d(silu(gate)·up) for gradient g: → [dGate, dUp]. */
export function siluMulBackward(rt: GpuRuntime, gate: GpuTensor, up: GpuTensor, g: GpuTensor): [GpuTensor, GpuTensor] {
  sameShape(gate, up, "siluMul backward");
  sameShape(gate, g, "siluMul backward");
  const dGate = rt.empty(gate.shape);
  const dUp = rt.empty(gate.shape);
  rt.exec.dispatch(siluMulBackwardKernel(),
    [{ buf: gate.buf }, { buf: up.buf }, { buf: g.buf }, { buf: dGate.buf }, { buf: dUp.buf }], [gate.size], grid(rt, gate.size));
  return [dGate, dUp];
}

/**
 * Attention's input gradients from dO [B, heads, T, D] (the output gradient,
 * split into heads), given the forward's q [B, heads, T, D], dense K, V
 * [B, kvHeads, S, D] and softmax weights P [B, heads, T, S]: → [dQ, dK, dV].
 */
export function attentionBackward(rt: GpuRuntime, q: GpuTensor, kIn: GpuTensor, vIn: GpuTensor, probs: GpuTensor, dO: GpuTensor,
  mask: AttentionMask, scale: number): [GpuTensor, GpuTensor, GpuTensor] {
  const k = gpu(kIn, "attention backward keys");
  const v = gpu(vIn, "attention backward values");
  if (!k.dense || !v.dense) throw new LlamaError("webgpu attention backward: keys and values must be dense (training runs without a KV cache)");
  const [B, heads, T, D] = q.shape as [number, number, number, number];
  const [, kvHeads, S] = k.shape as [number, number, number, number];
  sameShape(q, dO, "attention backward");
  if (probs.shape.join() !== [B, heads, T, S].join()) {
    throw new LlamaError(`webgpu attention backward: weights [${probs.shape.join(", ")}], expected [${[B, heads, T, S].join(", ")}]`);
  }
  if (mask.keyMask && mask.keyMask.length !== B * S) {
    throw new LlamaError(`webgpu attention backward: key mask has ${mask.keyMask.length} entries, expected ${B}*${S}`);
  }
  const params = [heads, kvHeads, T, S, D, { f32: scale }];
  const dS = rt.empty(probs.shape);
  const maskBuf = mask.keyMask ? rt.hostBuffer(Uint32Array.from(mask.keyMask)) : rt.dummy;
  rt.exec.dispatch(attentionScoresBackwardKernel(), [{ buf: probs.buf }, { buf: dO.buf }, { buf: v.buf }, { buf: maskBuf }, { buf: dS.buf }],
    [...params, mask.queryOffset, mask.keyMask ? 1 : 0], [T, heads, B]);
  if (mask.keyMask) rt.pool.release(maskBuf);
  const dQ = rt.empty(q.shape);
  rt.exec.dispatch(attentionQueryBackwardKernel(), [{ buf: dS.buf }, { buf: k.buf }, { buf: dQ.buf }], [q.size, ...params], grid(rt, q.size));
  const dK = rt.empty(k.shape);
  const dV = rt.empty(v.shape);
  rt.exec.dispatch(attentionKeyValueBackwardKernel(),
    [{ buf: dS.buf }, { buf: q.buf }, { buf: probs.buf }, { buf: dO.buf }, { buf: dK.buf }, { buf: dV.buf }],
    [k.size, ...params], grid(rt, k.size));
  rt.release(dS);
  return [dQ, dK, dV];
}

/**
 * Row reads grouped by the row they read, for the scatter kernel: row r of
 * [0, R) was read at positions[offsets[r] .. offsets[r+1]) of `rows`, ascending
 * (a counting sort, so the GPU sums each row's gradients in read order).
 */
export function rowIndex(rows: ArrayLike<number>, R: number, op: string): { offsets: Uint32Array; positions: Uint32Array } {
  const offsets = new Uint32Array(R + 1);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (!(Number.isInteger(r) && r >= 0 && r < R)) throw new LlamaError(`${op} backward: row ${r} at position ${i} is outside 0..${R - 1}`);
    offsets[r + 1]!++;
  }
  for (let r = 0; r < R; r++) offsets[r + 1]! += offsets[r]!;
  const next = offsets.slice(0, R);
  const positions = new Uint32Array(rows.length);
  for (let i = 0; i < rows.length; i++) positions[next[rows[i]!]!++] = i;
  return { offsets, positions };
}

/**
 * The gradient of a row gather: g [N, C] (row i was read from row rows[i] of
 * an input of R rows) summed back into [R, C], shaped `shape`. Serves embedding
 * (R = vocab), selectBatch (R = batch) and selectPositions (R = B·T).
 */
export function scatterRows(rt: GpuRuntime, g: GpuTensor, rows: ArrayLike<number>, R: number, shape: readonly number[], op: string): GpuTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const C = n / R;
  if (!Number.isInteger(C) || g.size !== rows.length * C) {
    throw new LlamaError(`${op} backward: gradient [${g.shape.join(", ")}] is not ${rows.length} rows of [${shape.join(", ")}] / ${R}`);
  }
  const { offsets, positions } = rowIndex(rows, R, op);
  const out = rt.empty(shape);
  const offBuf = rt.hostBuffer(offsets), posBuf = rt.hostBuffer(positions);
  if (n > 0) rt.exec.dispatch(scatterRowsKernel(), [{ buf: offBuf }, { buf: posBuf }, { buf: g.buf }, { buf: out.buf }], [n, C], grid(rt, n));
  rt.pool.release(offBuf);
  rt.pool.release(posBuf);
  return out;
}

/** The gradient of selectPositions: g [B, K, H] scattered (summed) back to [B, T, H]. */
export function selectPositionsBackward(rt: GpuRuntime, g: GpuTensor, index: Int32Array, T: number): GpuTensor {
  const [B, K, H] = g.shape as [number, number, number];
  if (index.length !== B * K) throw new LlamaError(`selectPositions backward: ${index.length} indices for ${B} rows × ${K}`);
  const rows = Array.from(index, (t, i) => Math.floor(i / K) * T + t);
  return scatterRows(rt, g, rows, B * T, [B, T, H], "selectPositions");
}

/** Σ over rows of g [..., C] (and of g·n when `n` is given, same shape) → [C]. */
function columnSum(rt: GpuRuntime, g: GpuTensor, n?: GpuTensor): GpuTensor {
  const C = g.shape[g.shape.length - 1]!;
  const R = g.size / C;
  const out = rt.empty([C]);
  const ins = n ? [{ buf: g.buf }, { buf: n.buf }] : [{ buf: g.buf }];
  rt.exec.dispatch(columnSumKernel(!!n), [...ins, { buf: out.buf }], [C, R], grid(rt, C));
  return out;
}

/** A bias's gradient: db[n] = Σ_m g[m, n] for g [..., N]. */
export function biasBackward(rt: GpuRuntime, g: GpuTensor): GpuTensor {
  return columnSum(rt, act(g, "bias backward gradient"));
}

/**
 * An RMSNorm weight's gradient: dW[h] = Σ_rows g[r, h] · n[r, h], where n = x · rsqrt(mean(x²) + eps)
 * is the normalized input (the caller runs the forward kernel with a weight of ones, so n is rounded as the forward rounds it).
 */
export function rmsNormWeightBackward(rt: GpuRuntime, normalized: GpuTensor, g: GpuTensor): GpuTensor {
  sameShape(act(normalized, "rmsNorm backward input"), act(g, "rmsNorm backward gradient"), "rmsNorm weight backward");
  return columnSum(rt, g, normalized);
}

/**
 * The differentiable kvAppend: cache [B, k, P, D] (any capacity, or none) and
 * x [B, k, T, D] copied into a new dense [B, k, P+T, D]. Unlike the inference
 * kvAppend it never grows the cache in place (the old values may be saved for
 * a backward) and its result is dense (attention's backward reads dense K/V).
 */
export function kvConcat(rt: GpuRuntime, cacheIn: GpuTensor | undefined, xIn: GpuTensor): GpuTensor {
  const x = act(xIn, "kvAppend input");
  if (x.shape.length !== 4) throw new LlamaError(`kvAppend: expected [B, heads, T, D], got [${x.shape.join(", ")}]`);
  const [B, k, T, D] = x.shape as [number, number, number, number];
  const cache = cacheIn && gpu(cacheIn, "kvAppend cache");
  if (cache && (cache.shape[0] !== B || cache.shape[1] !== k || cache.shape[3] !== D || cache.dtype !== "f32")) {
    throw new LlamaError(`kvAppend: cache [${cache.shape.join(", ")}] cannot take [${x.shape.join(", ")}]`);
  }
  const P = cache ? cache.shape[2]! : 0;
  const S = P + T;
  const out = rt.empty([B, k, S, D]);
  if (cache) copyRows(rt, cache, cache.capacity, 0, out, S, 0, P);
  copyRows(rt, x, T, 0, out, S, P, T);
  return out;
}

/** kvAppend's gradient: g [B, k, P+T, D] split along dim 2 into the cache's [B, k, P, D] and x's [B, k, T, D]. */
export function kvSplit(rt: GpuRuntime, g: GpuTensor, P: number): [GpuTensor, GpuTensor] {
  const [B, k, S, D] = act(g, "kvAppend backward gradient").shape as [number, number, number, number];
  const T = S - P;
  const dCache = rt.empty([B, k, P, D]);
  const dx = rt.empty([B, k, T, D]);
  copyRows(rt, g, S, 0, dCache, P, 0, P);
  copyRows(rt, g, S, P, dx, T, 0, T);
  return [dCache, dx];
}

/** Copies `len` sequence rows per (batch, head) from src (rows [offS, offS+len) of capS) to dst (from offD, of capD). */
function copyRows(rt: GpuRuntime, src: GpuTensor, capS: number, offS: number, dst: GpuTensor, capD: number, offD: number, len: number): void {
  const [B, k, , D] = src.shape as [number, number, number, number];
  const n = B * k * len * D;
  if (n > 0) rt.exec.dispatch(kvCopyKernel(), [{ buf: src.buf }, { buf: dst.buf }], [n, k, len, D, capS, offS, capD, offD], grid(rt, n));
}

/**
 * attendWith's gradients for out [B, T, n·D] = W [B, n, T, S] · V [B, k, S, D]
 * (V may be a KV-cache view), from dO [B, T, n·D]: dW [B, n, T, S] and/or dense dV [B, k, S, D].
 */
export function attendWithBackward(rt: GpuRuntime, w: GpuTensor, vIn: GpuTensor, dO: GpuTensor, want: { weights: boolean; values: boolean }):
  [GpuTensor | null, GpuTensor | null] {
  const v = gpu(vIn, "attendWith backward values");
  const [B, n, T, S] = w.shape as [number, number, number, number];
  const [, k, , D] = v.shape as [number, number, number, number];
  if (dO.size !== B * T * n * D) throw new LlamaError(`webgpu attendWith backward: gradient [${dO.shape.join(", ")}] does not match [${B}, ${T}, ${n * D}]`);
  const params = [n, k, T, S, D, v.capacity];
  let dW: GpuTensor | null = null, dV: GpuTensor | null = null;
  if (want.weights) {
    dW = rt.empty(w.shape);
    rt.exec.dispatch(attendWithWeightsBackwardKernel(), [{ buf: dO.buf }, { buf: v.buf }, { buf: dW.buf }], [dW.size, ...params], grid(rt, dW.size));
  }
  if (want.values) {
    dV = rt.empty(v.shape);
    rt.exec.dispatch(attendWithValuesBackwardKernel(), [{ buf: dO.buf }, { buf: w.buf }, { buf: dV.buf }], [dV.size, ...params], grid(rt, dV.size));
  }
  return [dW, dV];
}

/** The gradient of a trainable f32 weight W [N, K] of y = x · Wᵀ, from x [..., K] and g [..., N]. */
export function linearWeightBackward(rt: GpuRuntime, x: GpuTensor, g: GpuTensor, N: number): GpuTensor {
  const K = x.shape[x.shape.length - 1]!;
  const M = x.size / K;
  if (g.size !== M * N) throw new LlamaError(`webgpu linear weight backward: gradient [${g.shape.join(", ")}] does not match ${M} rows × ${N}`);
  const out = rt.empty([N, K]);
  const n = N * K;
  rt.exec.dispatch(linearWeightBackwardKernel(), [{ buf: g.buf }, { buf: x.buf }, { buf: out.buf }], [n, M, N, K], grid(rt, n));
  return out;
}
