/**
 * A differentiable WebGPU backend: the Backend interface the model code calls,
 * run on the GPU, with every op whose input needs a gradient recorded so the
 * backward pass also runs on the GPU (kernels in kernels/backward.ts). Only
 * two things cross to the host per step: the tensor the loss is computed from
 * (logits, read as usual) and the gradient of the uploaded differentiable
 * input (the soft prompt + token embeddings).
 *
 *     const be = await createDifferentiableBackend("webgpu");
 *     const model = await LlamaForCausalLM.fromPretrained(dir, { backend: be });
 *     const out = await model.forward({ inputsEmbeds: be.asTensor(embedsVar), … });
 *     const loss = causalLMLoss(be.varOf(out.logits), labels);
 *     await backprop(be, loss);     // host: loss → logits; GPU: logits → embeds; host: embeds → prompt
 *
 * A weight uploaded from a Var shown by asTensor (LoRA's A and B, a head, the
 * embedding table, RMSNorm weights, biases: full fine-tuning) is a leaf and gets
 * its gradient; other weights are frozen and give input gradients only (dX = dY · W,
 * run as the forward's tiled matmul against Wᵀ, transposed to f32 once per weight;
 * a quantized W is never transposed or widened: ops/quant.ts dequantizes in the kernel).
 * Activations saved for backward stay on the GPU until their last backward use,
 * then go back to the pool; the model's own release() calls are honoured as
 * soon as no recorded op still needs the tensor.
 */
import { LlamaError } from "../lib/errors.js";
import type { AttentionMask, AttentionOptions, AttentionResult, Backend, DeviceTensor } from "../lib/backend/backend.js";
import type { DifferentiableBackend } from "../lib/autograd/differentiable.js";
import { Var, type GradFn } from "../lib/autograd/var.js";
import { VarViews } from "../lib/autograd/var-views.js";
import { Tensor } from "../lib/tensor/tensor.js";
import type { QuantizedTensor } from "../lib/tensor/quantized.js";
import type { GpuTensor } from "./buffers.js";
import { WebGpuBackend, type WebGpuBackendOptions } from "./backend.js";
import * as grad from "./ops/backward.js";
import { quantLinearInputGrad } from "./ops/quant.js";
import { GradTape, GradTensor, type Node } from "./grad-tape.js";

function t(x: DeviceTensor, what: string): GradTensor {
  if (!(x instanceof GradTensor)) throw new LlamaError(`webgpu autograd: ${what} is not a tensor of this backend (mixing backends?)`);
  return x;
}

export class WebGpuTapeBackend implements Backend, DifferentiableBackend {
  readonly device = "webgpu" as const;
  readonly differentiable = true as const;
  /** What the forward recorded for the backward sweep. */
  private readonly graph: GradTape;
  /** Host tensors handed out by read()/asTensor(), back to the Var they show. */
  private readonly views = new VarViews();
  /** Wᵀ in f32 per frozen weight, made on first backward use. */
  private readonly transposed = new WeakMap<GpuTensor, GpuTensor>();

  private constructor(readonly gpu: WebGpuBackend) {
    this.graph = new GradTape(gpu);
  }

  static async create(options: WebGpuBackendOptions = {}): Promise<WebGpuTapeBackend> {
    return new WebGpuTapeBackend(await WebGpuBackend.create(options));
  }

  get description(): string {
    return `autograd tape over ${this.gpu.description}`;
  }

  // ------------------------------------------------------------ autograd glue
  asTensor(v: Var): Tensor {
    return this.views.show(v);
  }

  varOf(x: Tensor): Var {
    const v = this.views.find(x);
    if (!v) throw new LlamaError("webgpu autograd: this tensor was not produced by this backend's read() or asTensor()");
    return v;
  }

  /** Recorded ops awaiting a backward pass (0 after completeBackward or discardTape). */
  get recordedOps(): number {
    return this.graph.size;
  }

  /**
   * The device part of the backward pass: from the gradients the host's
   * `backward(loss)` left at the tensors read from this backend, back through
   * every recorded op to the differentiable uploads, whose gradients then
   * continue on the host (into e.g. the soft prompt's `.grad`).
   */
  completeBackward(): Promise<void> {
    return this.graph.backward();
  }

  /** Drops what was recorded (a forward whose loss will not be backpropagated) and frees what it kept. */
  discardTape(): void {
    this.graph.discard();
  }

  /** Wraps an op's output; records its node when an input needs a gradient. */
  private out(inner: GpuTensor, inputs: readonly GradTensor[], makeNode: () => Omit<Node, "inputs">): GradTensor {
    return this.graph.record(inner, inputs, makeNode);
  }

  private plain(inner: GpuTensor): GradTensor {
    return new GradTensor(inner, false);
  }

  private weightT(w: GpuTensor): GpuTensor {
    let wt = this.transposed.get(w);
    if (!wt) {
      wt = grad.transposeWeight(this.gpu.runtime, w);
      this.transposed.set(w, wt);
    }
    return wt;
  }

  // ------------------------------------------------------------ memory
  upload(x: Tensor): DeviceTensor {
    const v = this.views.find(x);
    if (!v) return this.plain(this.gpu.upload(x) as GpuTensor);
    return this.graph.leaf(grad.fromHost(this.gpu.runtime, x.toFloat32(), x.shape), v);
  }

  /** A frozen weight in its ggml blocks: forward and input gradient dequantize inside the kernels. */
  uploadQuantized(q: QuantizedTensor): DeviceTensor {
    return this.plain(this.gpu.uploadQuantized(q) as GpuTensor);
  }

  async read(x: DeviceTensor): Promise<Tensor> {
    const h = t(x, "read()");
    const host = await this.gpu.read(h.inner);
    if (!h.requiresGrad) return host;
    const values = host.toFloat32();
    // The host's backward stops here and leaves the gradient for completeBackward().
    const fn: GradFn = {
      name: "webgpu",
      inputs: [],
      backward: (g) => {
        this.graph.seed(h, g);
        return [];
      },
    };
    const v = new Var(values, h.shape, true, fn);
    return this.asTensor(v);
  }

  release(x: DeviceTensor): void {
    const h = t(x, "release()");
    if (h.holds > 0) h.releaseAsked = true;
    else this.gpu.release(h.inner);
  }

  dispose(): void {
    this.discardTape();
    this.gpu.dispose();
  }

  // ------------------------------------------------------------ ops
  embedding(table: DeviceTensor, ids: Int32Array, batch: number, seqLen: number): DeviceTensor {
    const tb = t(table, "embedding table");
    const rt = this.gpu.runtime;
    // A trainable table (full fine-tuning): each looked-up row's gradient is summed back into its row.
    return this.out(this.gpu.embedding(tb.inner, ids, batch, seqLen) as GpuTensor, [tb], () => {
      const rows = ids.slice();
      return { name: "embedding", saved: [], backward: (g) => [grad.scatterRows(rt, g, rows, tb.shape[0]!, tb.shape, "embedding")] };
    });
  }

  rmsNorm(x: DeviceTensor, weight: DeviceTensor, eps: number): DeviceTensor {
    const xi = t(x, "rmsNorm input"), w = t(weight, "rmsNorm weight");
    const rt = this.gpu.runtime;
    return this.out(this.gpu.rmsNorm(xi.inner, w.inner, eps) as GpuTensor, [xi, w], () => ({
      name: "rmsNorm",
      saved: [xi, w],
      backward: (g) => [
        xi.requiresGrad ? grad.rmsNormBackward(rt, xi.inner, w.inner, g, eps) : null,
        w.requiresGrad ? this.rmsNormWeightGrad(xi.inner, g, eps) : null,
      ],
    }));
  }

  /** dW = Σ_rows g · (x · rstd), the normalized x being the forward kernel's output with a weight of ones. */
  private rmsNormWeightGrad(x: GpuTensor, g: GpuTensor, eps: number): GpuTensor {
    const H = x.shape[x.shape.length - 1]!;
    const ones = grad.fromHost(this.gpu.runtime, new Float32Array(H).fill(1), [H]);
    const normalized = this.gpu.rmsNorm(x, ones, eps) as GpuTensor;
    this.gpu.release(ones);
    const dw = grad.rmsNormWeightBackward(this.gpu.runtime, normalized, g);
    this.gpu.release(normalized);
    return dw;
  }

  linear(x: DeviceTensor, weight: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const xi = t(x, "linear input"), w = t(weight, "linear weight"), b = bias && t(bias, "linear bias");
    const y = this.gpu.linear(xi.inner, w.inner, b?.inner) as GpuTensor;
    const rt = this.gpu.runtime;
    return this.out(y, b ? [xi, w, b] : [xi, w], () => ({
      name: w.requiresGrad ? "linear (trainable weight)" : "linear",
      // A frozen weight is held by the model; a trainable one and x are kept for dW = gᵀ · x.
      saved: w.requiresGrad ? [xi, w] : [],
      backward: (g) => [
        xi.requiresGrad ? this.linearInputGrad(g, w) : null,
        w.requiresGrad ? grad.linearWeightBackward(rt, xi.inner, g, w.shape[0]!) : null,
        ...(b ? [b.requiresGrad ? grad.biasBackward(rt, g) : null] : []),
      ],
    }));
  }

  /** dX = g · W: against Wᵀ made once per frozen weight, a fresh one for a trainable weight (its values change every step). */
  private linearInputGrad(g: GpuTensor, w: GradTensor): GpuTensor {
    if (w.inner.quant) return quantLinearInputGrad(this.gpu.runtime, g, w.inner);
    if (!w.requiresGrad) return this.gpu.linear(g, this.weightT(w.inner)) as GpuTensor;
    const wt = grad.transposeWeight(this.gpu.runtime, w.inner);
    const dx = this.gpu.linear(g, wt) as GpuTensor;
    this.gpu.release(wt);
    return dx;
  }

  linearMany(x: DeviceTensor, weights: readonly DeviceTensor[], biases?: readonly (DeviceTensor | undefined)[]): DeviceTensor[] {
    return weights.map((w, i) => this.linear(x, w, biases?.[i]));
  }

  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    const ai = t(a, "add input"), bi = t(b, "add input");
    return this.out(this.gpu.add(ai.inner, bi.inner) as GpuTensor, [ai, bi], () => ({
      name: "add",
      saved: [],
      backward: (g) => [g, g],
    }));
  }

  scale(x: DeviceTensor, factor: number): DeviceTensor {
    const xi = t(x, "scale input");
    return this.out(this.gpu.scale(xi.inner, factor) as GpuTensor, [xi], () => ({
      name: "scale",
      saved: [],
      backward: (g) => [this.gpu.scale(g, factor) as GpuTensor],
    }));
  }

  siluMul(gate: DeviceTensor, up: DeviceTensor): DeviceTensor {
    const gi = t(gate, "siluMul gate"), ui = t(up, "siluMul up");
    const rt = this.gpu.runtime;
    return this.out(this.gpu.siluMul(gi.inner, ui.inner) as GpuTensor, [gi, ui], () => ({
      name: "siluMul",
      saved: [gi, ui],
      backward: (g) => grad.siluMulBackward(rt, gi.inner, ui.inner, g),
    }));
  }

  splitHeads(x: DeviceTensor, heads: number, rope?: { cos: Float32Array; sin: Float32Array }): DeviceTensor {
    const xi = t(x, "splitHeads input");
    return this.out(this.gpu.splitHeads(xi.inner, heads, rope) as GpuTensor, [xi], () => ({
      name: "splitHeads",
      saved: [],
      backward: (g) => {
        const merged = this.gpu.mergeHeads(g) as GpuTensor;
        if (!rope) return [merged];
        // RoPE is a rotation by θ per pair; its transpose (the backward) is the rotation by −θ.
        const unrotated = this.gpu.splitHeads(merged, heads, { cos: rope.cos, sin: rope.sin.map((s) => -s) }) as GpuTensor;
        this.gpu.release(merged);
        const dx = this.gpu.mergeHeads(unrotated) as GpuTensor;
        this.gpu.release(unrotated);
        return [dx];
      },
    }));
  }

  mergeHeads(x: DeviceTensor): DeviceTensor {
    const xi = t(x, "mergeHeads input");
    const heads = xi.shape[1]!;
    return this.out(this.gpu.mergeHeads(xi.inner) as GpuTensor, [xi], () => ({
      name: "mergeHeads",
      saved: [],
      backward: (g) => [this.gpu.splitHeads(g, heads) as GpuTensor],
    }));
  }

  kvAppend(cache: DeviceTensor | undefined, x: DeviceTensor, reserve?: number): DeviceTensor {
    const xi = t(x, "kvAppend input"), ci = cache && t(cache, "kvAppend cache");
    if (!xi.requiresGrad && !ci?.requiresGrad) return this.plain(this.gpu.kvAppend(ci?.inner, xi.inner, reserve) as GpuTensor);
    // Recorded: a dense copy (attention's backward reads dense K/V) rather than growing the cache in place.
    const rt = this.gpu.runtime;
    const P = ci ? ci.shape[2]! : 0;
    const out = this.out(grad.kvConcat(rt, ci?.inner, xi.inner), ci ? [ci, xi] : [xi], () => ({
      name: "kvAppend",
      saved: [],
      backward: (g) => (ci ? grad.kvSplit(rt, g, P) : [g]),
    }));
    // kvAppend consumes its cache (the Backend contract); release() waits for recorded ops that still read it.
    if (ci) this.release(ci);
    return out;
  }

  attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, mask: AttentionMask, opts: AttentionOptions): AttentionResult {
    const qi = t(q, "attention queries"), ki = t(k, "attention keys"), vi = t(v, "attention values");
    if (![qi, ki, vi].some((x) => x.requiresGrad)) {
      const r = this.gpu.attention(qi.inner, ki.inner, vi.inner, mask, opts);
      return { out: this.plain(r.out as GpuTensor), weights: r.weights && this.plain(r.weights as GpuTensor) };
    }
    // The backward needs the softmax weights: ask for them even when the caller did not.
    const r = this.gpu.attention(qi.inner, ki.inner, vi.inner, mask, { ...opts, returnWeights: true });
    const probs = new GradTensor(r.weights as GpuTensor, false);
    const rt = this.gpu.runtime;
    const heads = qi.shape[1]!;
    const keptMask: AttentionMask = { queryOffset: mask.queryOffset, keyMask: mask.keyMask && Uint8Array.from(mask.keyMask) };
    const out = this.out(r.out as GpuTensor, [qi, ki, vi], () => ({
      name: "attention",
      saved: [qi, ki, vi, probs],
      backward: (g) => {
        const dO = this.gpu.splitHeads(g, heads) as GpuTensor; // [B, T, heads·D] → [B, heads, T, D]
        const res = grad.attentionBackward(rt, qi.inner, ki.inner, vi.inner, probs.inner, dO, keptMask, opts.scale);
        this.gpu.release(dO);
        return res;
      },
    }));
    // The caller's copy of the weights is released with the caller's release(); ours when backward has run.
    if (!opts.returnWeights) probs.releaseAsked = true;
    return { out, weights: opts.returnWeights ? probs : undefined };
  }

  attendWith(weights: DeviceTensor, v: DeviceTensor): DeviceTensor {
    const wi = t(weights, "attendWith weights"), vi = t(v, "attendWith values");
    const rt = this.gpu.runtime;
    return this.out(this.gpu.attendWith(wi.inner, vi.inner) as GpuTensor, [wi, vi], () => ({
      name: "attendWith",
      saved: [wi, vi],
      backward: (g) => grad.attendWithBackward(rt, wi.inner, vi.inner, g, { weights: wi.requiresGrad, values: vi.requiresGrad }),
    }));
  }

  selectPositions(x: DeviceTensor, index: Int32Array, perRow: number): DeviceTensor {
    const xi = t(x, "selectPositions input");
    const T = xi.shape[1]!;
    const idx = index.slice();
    const rt = this.gpu.runtime;
    return this.out(this.gpu.selectPositions(xi.inner, index, perRow) as GpuTensor, [xi], () => ({
      name: "selectPositions",
      saved: [],
      backward: (g) => [grad.selectPositionsBackward(rt, g, idx, T)],
    }));
  }

  selectBatch(x: DeviceTensor, rows: Int32Array): DeviceTensor {
    const xi = t(x, "selectBatch input");
    const rt = this.gpu.runtime;
    return this.out(this.gpu.selectBatch(xi.inner, rows) as GpuTensor, [xi], () => {
      const picked = rows.slice();
      // A row picked twice gets both gradients, summed.
      return { name: "selectBatch", saved: [], backward: (g) => [grad.scatterRows(rt, g, picked, xi.shape[0]!, xi.shape, "selectBatch")] };
    });
  }
}

/** Acquires a device and returns a differentiable WebGPU backend. Call `dispose()` when done. */
export function createWebGpuTapeBackend(options?: WebGpuBackendOptions): Promise<WebGpuTapeBackend> {
  return WebGpuTapeBackend.create(options);
}
