/**
 * RMSNorm, linear products, residual adds and SwiGLU, deferred so that a
 * decode step runs them as few GEMV dispatches:
 *
 *   rmsNorm → linearMany(q, k, v)        1/rms per row, then one GEMV that normalizes its input as it reads it
 *   linear(o_proj) → add(residual)       one GEMV with the add in its epilogue
 *   rmsNorm → linearMany(gate, up) → siluMul
 *                                        1/rms per row, then one GEMV with RMSNorm in, SwiGLU out
 *   linear(down_proj) → add(residual)    one GEMV with the add in its epilogue
 *   attention (split-K) → linear(o_proj)  the GEMV merges the attention partials as it reads them
 *
 * `rmsNorm` and the decode-sized (M ≤ GEMV_MAX_M) products return deferred
 * tensors (GpuTensor.pending): a consumer that can fuse reads the recipe;
 * anything else that touches the buffer (a read, a hook, the autograd tape, a
 * prefill matmul) records the plain op first, so results never depend on
 * whether a fusion happened. A fused kernel is the plain GEMV with the
 * RMSNorm reduction / add / silu·mul snippets of the single ops
 * (kernels/matmul.ts), equal to the separate ops bit for bit.
 */
import { LlamaError } from "../../lib/errors.js";
import type { Deferred, GpuTensor, PooledBuffer } from "../buffers.js";
import { GEMV_MAX_M, GEMV_MERGE_MAX_SUMS, GEMV_MERGE_MAX_WEIGHTS, type GemvEpilogue, gemvKernel } from "../kernels/index.js";
import { act, type GpuRuntime } from "../runtime.js";
import { PendingMerge } from "./attention.js";
import * as basic from "./basic.js";
import { type LinearOptions, linear as eagerLinear, useSubgroups } from "./linear.js";

/** RMSNorm not yet recorded: the GEMV that consumes it folds it in. */
class PendingNorm implements Deferred {
  constructor(private readonly rt: GpuRuntime, readonly x: GpuTensor, readonly w: GpuTensor, readonly eps: number) {
    rt.hold(x);
    rt.hold(w);
  }
  materialize(t: GpuTensor): void {
    basic.rmsNormInto(this.rt, this.x, this.w, this.eps, t.storage);
    this.done();
  }
  cancel(): void {
    this.done();
  }
  private done(): void {
    this.rt.unhold(this.x);
    this.rt.unhold(this.w);
  }
}

/** A GEMV's x: a stored row, RMSNorm(x) computed on the fly, or split-K attention partials merged on the fly. */
interface GemvInput {
  x: GpuTensor;
  norm?: { w: GpuTensor; eps: number };
  merge?: PendingMerge;
}

/**
 * One to three products of one decode-sized input (linear, q/k/v, gate/up),
 * not yet recorded. Reading any output records the plain GEMV for every
 * output still wanted; add / siluMul may instead record a fused GEMV into a
 * new tensor (the outputs then stay deferred until read or released).
 */
class PendingGemv implements Deferred {
  private readonly waiting: Set<GpuTensor>;
  constructor(
    private readonly rt: GpuRuntime,
    readonly input: GemvInput,
    readonly weights: readonly GpuTensor[],
    readonly bias: GpuTensor | undefined,
    readonly outs: readonly GpuTensor[],
  ) {
    this.waiting = new Set(outs);
    for (const t of this.held()) rt.hold(t);
  }

  private held(): GpuTensor[] {
    const { x, norm, merge } = this.input;
    return [x, ...(norm ? [norm.w] : []), ...(merge ? merge.inputs : []), ...this.weights, ...(this.bias ? [this.bias] : [])];
  }

  materialize(t: GpuTensor): void {
    const live = this.outs.map((o, i) => ({ o, i })).filter(({ o }) => this.waiting.has(o));
    for (const { o } of live) if (o !== t) o.pending = undefined;
    this.waiting.clear();
    this.emit(live.map(({ o }) => o.storage), "none", live.map(({ i }) => this.weights[i]!));
    this.done();
  }

  cancel(t: GpuTensor): void {
    if (this.waiting.delete(t) && this.waiting.size === 0) this.done();
  }

  private done(): void {
    for (const t of this.held()) this.rt.unhold(t);
  }

  /**
   * Records the GEMV over `weights` (default: all) writing `outs`: one buffer
   * per weight, or one for "residual" (added to `residual`) and "swiglu".
   */
  emit(outs: PooledBuffer[], epilogue: GemvEpilogue, weights = this.weights, residual?: GpuTensor): void {
    const { rt } = this;
    const { x, norm, merge } = this.input;
    const K = x.shape[x.shape.length - 1]!;
    const M = x.size / K;
    const nf = norm ? rt.format(norm.w) : undefined;
    const inv = norm ? basic.rmsInverse(rt, x, norm.w, norm.eps) : undefined;
    const bindings = [
      { buf: merge ? merge.partO.buf : x.buf }, // a merged x is read from the partials; x itself stays deferred
      ...weights.map((w) => ({ buf: w.buf })),
      ...(this.bias ? [{ buf: this.bias.buf }] : []),
      ...(norm && inv ? [{ buf: norm.w.buf }, { buf: inv.buf }] : []),
      ...(residual ? [{ buf: residual.buf }] : []),
      ...(merge ? [{ buf: merge.partML.buf }, { buf: merge.values.buf }] : []),
      ...outs.map((buf) => ({ buf })),
    ];
    const formats = weights.map((w) => w.quant ?? rt.format(w)).join("+");
    const kernel = gemvKernel(formats, K % 4 === 0, this.bias && rt.format(this.bias), useSubgroups(rt), nf, epilogue, !!merge);
    const Ns = weights.map((w) => w.shape[0]!);
    if (epilogue === "swiglu") {
      rt.exec.dispatch(kernel, bindings, [M, K, 0, Ns[0]!, Ns[1]!, 0, 0, 0], [Math.ceil(Ns[0]! / 2)]);
    } else if (weights.length === 1) {
      const m = merge?.shape;
      const mergeFields = m ? [m.heads, m.kvHeads, m.T, m.Tkv, m.cap, m.D, m.nSplit] : [];
      rt.exec.dispatch(kernel, bindings, [M, Ns[0]!, K, Ns[0]!, 0, ...mergeFields], [Math.ceil(Ns[0]! / 4)]);
    } else {
      const groups = Ns.map((N) => Math.ceil(N / 4));
      const g1 = groups[0]!;
      const g2 = g1 + (groups[1] ?? 0);
      const total = groups.reduce((a, b) => a + b, 0);
      rt.exec.dispatch(kernel, bindings, [M, K, 0, Ns[0]!, Ns[1]!, Ns[2] ?? 0, g1, g2], [total]);
    }
    if (inv) rt.release(inv);
  }
}

/** RMSNorm over the last dim, deferred (recorded when read, or folded into the GEMV that consumes it). */
export function rmsNorm(rt: GpuRuntime, x: GpuTensor, weight: GpuTensor, eps: number): GpuTensor {
  basic.rmsNormGrid(rt, x, weight);
  const out = rt.empty(x.shape);
  out.pending = new PendingNorm(rt, x, weight, eps);
  return out;
}

/**
 * The deferred GEMV of `weights` over x, when it can be one: decode-sized x,
 * 1–3 weights [N, K] (dense, or ggml blocks with K a multiple of 4), a bias
 * only with a single weight. Undefined otherwise (the caller runs the plain ops).
 */
function deferGemv(rt: GpuRuntime, xIn: GpuTensor, weights: readonly GpuTensor[], bias?: GpuTensor): GpuTensor[] | undefined {
  const x = act(xIn, "linear input");
  const K = x.shape[x.shape.length - 1]!;
  const M = x.size / K;
  if (weights.length < 1 || weights.length > 3 || M === 0 || M > GEMV_MAX_M || (bias && weights.length > 1)) return undefined;
  if (bias?.quant || (K % 4 !== 0 && weights.some((w) => w.quant))) return undefined;
  const maxBinding = rt.ctx.limits.maxStorageBufferBindingSize;
  for (const w of weights) {
    if (w.shape.length !== 2 || w.shape[1] !== K || w.shape[0] === 0 || w.buf.size > maxBinding) return undefined;
  }
  if (bias && bias.size !== weights[0]!.shape[0]) return undefined;
  const norm = x.pending instanceof PendingNorm && !x.pending.w.quant ? x.pending : undefined;
  const merge = x.pending instanceof PendingMerge && mergeFits(x.pending, M, K, weights.length) ? x.pending : undefined;
  const input: GemvInput = norm ? { x: norm.x, norm: { w: norm.w, eps: norm.eps } } : { x, merge };
  if (!norm && !merge) rt.settle(x);
  const outs = weights.map((w) => rt.empty([...x.shape.slice(0, -1), w.shape[0]!]));
  const pending = new PendingGemv(rt, input, weights, bias, outs);
  for (const o of outs) o.pending = pending;
  return outs;
}

/** Whether one weight's GEMV over x = attention's output can merge the partials as it reads (gemvKernel's `merge`). */
function mergeFits(m: PendingMerge, M: number, K: number, weights: number): boolean {
  const { B, T, heads, D, nSplit } = m.shape;
  return weights === 1 && M === B * T && K === heads * D && D % 4 === 0 &&
    M * heads * nSplit <= GEMV_MERGE_MAX_WEIGHTS && M * heads <= GEMV_MERGE_MAX_SUMS;
}

/** x [..., K] · weight[N, K]ᵀ (+ bias) → [..., N]; deferred for decode-sized x, else recorded now. */
export function linear(rt: GpuRuntime, x: GpuTensor, weight: GpuTensor, bias?: GpuTensor, opts: LinearOptions = {}): GpuTensor {
  if (!opts.kernel) {
    const deferred = deferGemv(rt, x, [weight], bias);
    if (deferred) return deferred[0]!;
  }
  return eagerLinear(rt, act(x, "linear input"), weight, bias, opts);
}

/** Several products of one input (q/k/v, gate/up): one deferred GEMV when it can be, else one `linear` each. */
export function linearMany(rt: GpuRuntime, x: GpuTensor, weights: readonly GpuTensor[], biases?: readonly (GpuTensor | undefined)[]): GpuTensor[] {
  if (!biases?.some((b) => b !== undefined)) {
    const deferred = deferGemv(rt, x, weights);
    if (deferred) return deferred;
  }
  return weights.map((w, i) => linear(rt, x, w, biases?.[i]));
}

function sameShape(a: GpuTensor, b: GpuTensor): boolean {
  return a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

/** `product` + `residual` as the product's GEMV with the add in its epilogue, when the product is a deferred single linear. */
function residualGemv(rt: GpuRuntime, product: GpuTensor, residual: GpuTensor): GpuTensor | undefined {
  if (product === residual || !sameShape(product, residual)) return undefined;
  rt.settle(residual); // first, so that settling it cannot touch `product`'s recipe below
  const p = product.pending;
  if (!(p instanceof PendingGemv) || p.weights.length !== 1) return undefined;
  const out = rt.empty(product.shape);
  p.emit([out.storage], "residual", p.weights, residual);
  return out;
}

/** a + b; when one side is a deferred linear, one GEMV with the add in its epilogue. */
export function add(rt: GpuRuntime, a: GpuTensor, b: GpuTensor): GpuTensor {
  const fused = residualGemv(rt, b, a) ?? residualGemv(rt, a, b);
  return fused ?? basic.add(rt, act(a, "add input"), act(b, "add input"));
}

/** silu(gate) · up; when both are the outputs of one deferred gate/up GEMV, that GEMV with SwiGLU in its epilogue. */
export function siluMul(rt: GpuRuntime, gate: GpuTensor, up: GpuTensor): GpuTensor {
  const p = gate.pending;
  if (p instanceof PendingGemv && up.pending === p && p.outs.length === 2 && p.outs[0] === gate && p.outs[1] === up && sameShape(gate, up)) {
    const out = rt.empty(gate.shape);
    p.emit([out.storage], "swiglu");
    return out;
  }
  if (!sameShape(gate, up)) {
    throw new LlamaError(`webgpu siluMul: shapes [${gate.shape.join(", ")}] and [${up.shape.join(", ")}] differ`);
  }
  return basic.siluMul(rt, act(gate, "siluMul gate"), act(up, "siluMul up"));
}
