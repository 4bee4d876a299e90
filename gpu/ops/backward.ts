/**
 * Backward ops of the WebGPU backend: the input gradients of the forward ops
 * (kernels in ../kernels/backward.ts). Used by the differentiable backend
 * (../tape-backend.ts); shapes are the forward's.
 */
import type { AttentionMask } from "../../lib/backend/backend.js";
import { LlamaError } from "../../lib/errors.js";
import type { GpuTensor } from "../buffers.js";
import {
  attentionKeyValueBackwardKernel, attentionQueryBackwardKernel, attentionScoresBackwardKernel, flatGrid,
  linearWeightBackwardKernel, rmsNormBackwardKernel, scatterPositionsKernel, siluMulBackwardKernel, transposeToF32Kernel,
} from "../kernels/index.js";
import { act, gpu, type GpuRuntime } from "../runtime.js";
import { add, scale } from "./basic.js";

function grid(rt: GpuRuntime, n: number): [number, number] {
  return flatGrid(n, rt.ctx.limits.maxComputeWorkgroupsPerDimension);
}

function sameShape(a: GpuTensor, b: GpuTensor, op: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new LlamaError(`webgpu ${op}: shapes [${a.shape.join(", ")}] and [${b.shape.join(", ")}] differ`);
  }
}

/** a + b into a new tensor, giving both inputs back (gradient accumulation). */
export function addInto(rt: GpuRuntime, a: GpuTensor, b: GpuTensor): GpuTensor {
  const sum = add(rt, a, b);
  rt.release(a);
  rt.release(b);
  return sum;
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

/** The gradient of selectPositions: g [B, K, H] scattered (summed) back to [B, T, H]. */
export function selectPositionsBackward(rt: GpuRuntime, g: GpuTensor, index: Int32Array, T: number): GpuTensor {
  const [B, K, H] = g.shape as [number, number, number];
  if (index.length !== B * K) throw new LlamaError(`selectPositions backward: ${index.length} indices for ${B} rows × ${K}`);
  const out = rt.empty([B, T, H]);
  const idx = rt.hostBuffer(new Uint32Array(index.buffer, index.byteOffset, index.length));
  const n = B * T * H;
  rt.exec.dispatch(scatterPositionsKernel(), [{ buf: idx }, { buf: g.buf }, { buf: out.buf }], [n, T, H, K], grid(rt, n));
  rt.pool.release(idx);
  return out;
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
