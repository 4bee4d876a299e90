/**
 * A differentiable CPU backend: the same Backend interface the model code
 * calls (lib/backend/backend.ts), with every op recorded for reverse-mode
 * autodiff. So the one model definition (lib/model) runs unchanged on it:
 *
 *     const be = await TapeBackend.create();
 *     const model = await LlamaForCausalLM.fromPretrained(dir, { backend: be });
 *     const embeds = be.track(promptAndTokens);        // a Var that needs a gradient
 *     const out = await model.forward({ inputsEmbeds: be.asTensor(embeds), … });
 *     const loss = causalLMLoss(be.varOf(out.logits), labels);
 *     backward(loss);                                  // d loss / d embeds
 *
 * Handles wrap a `Var` (activations) or a frozen weight `Tensor` (uploads).
 * Every forward is the CPU backend's own kernel (WebAssembly SIMD + threads
 * when available, else lib/tensor/ops.ts), so the tape computes the bits
 * inference computes: linear layers (a trainable weight staged where the
 * kernels read it), attention (which also returns the weights backward needs),
 * siluMul, and the JavaScript kernels the autograd ops call directly. The
 * backward products run on the same engine: the input gradient dX = dY · W
 * via Wᵀ uploaded once per weight, the rest on its gemm over host arrays.
 * Gradients flow only where a tracked tensor leads, and each node's
 * activations are released as soon as backward used them.
 */
import { LlamaError } from "../errors.js";
import { Tensor, numel } from "../tensor/tensor.js";
import type { DType } from "../tensor/dtype.js";
import { loraLinearByParts, type AttentionMask, type AttentionOptions, type AttentionResult, type Backend, type DeviceTensor, type LoraLayer } from "../backend/backend.js";
import { CpuBackend, CpuTensor } from "../backend/cpu/cpu-backend.js";
import { Var } from "./var.js";
import { VarViews } from "./var-views.js";
import * as ops from "./ops.js";
import * as attn from "./attention-ops.js";
import { jsLinearKernel, matmulABt, matmulNN, matmulTN, quantBackwardInput, type LinearKernel, type LowRankLayer } from "./matmul.js";
import { QuantizedTensor, dequantizeRows } from "../tensor/quantized.js";
import type { AttentionKernel, AttentionProducts, MatmulABt } from "./attention-sdpa.js";
import type { DifferentiableBackend } from "./differentiable.js";
import { jsSoftmaxRows, type SoftmaxRowsKernel } from "./loss.js";

/** A device tensor of the tape backend. */
export class TapeTensor implements DeviceTensor {
  private constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** An activation (f32), possibly differentiable. */
    private readonly activation?: Var,
    /** A frozen uploaded tensor (weights, constant inputs), or a weight kept in ggml blocks. */
    readonly frozen?: Tensor | QuantizedTensor,
  ) {}

  static ofVar(v: Var): TapeTensor {
    return new TapeTensor(v.shape, "f32", v);
  }

  static ofTensor(t: Tensor): TapeTensor {
    return new TapeTensor(t.shape, t.dtype, undefined, t);
  }

  static ofQuantized(q: QuantizedTensor): TapeTensor {
    return new TapeTensor(q.shape, "f32", undefined, q);
  }

  get quant(): QuantizedTensor["type"] | undefined {
    return this.frozen instanceof QuantizedTensor ? this.frozen.type : undefined;
  }

  /** A frozen tensor's values as a float32 Tensor (a quantized one dequantized). */
  frozenFloat(): Tensor {
    const f = this.frozen!;
    if (!(f instanceof QuantizedTensor)) return f.float();
    return new Tensor(dequantizeRows(f.type, f.data, f.cols, 0, f.rows, new Float32Array(f.size)), f.shape, "f32");
  }

  /** This tensor as a Var (a frozen upload becomes a constant). */
  get var(): Var {
    if (this.activation) return this.activation;
    return Var.constant(this.frozenFloat().data as Float32Array, this.shape);
  }

  /** This tensor as an op's weight: frozen uploads stay Tensors (cached kernels), trainable ones are Vars. */
  get weight(): ops.Weight {
    return this.frozen ?? this.activation!;
  }
}

function tape(t: DeviceTensor, what: string): TapeTensor {
  if (!(t instanceof TapeTensor)) throw new LlamaError(`tape backend: ${what} is not a tape tensor (mixing backends?)`);
  return t;
}

/**
 * Runs a linear layer's products on the CPU backend's linear kernels. A
 * quantized weight stays in its blocks: the forward is the backend's
 * dequantize-in-kernel product, the input gradient dequantizes a few rows of
 * W at a time (quantBackwardInput), so W is never held densely.
 */
class CpuLinearKernel implements LinearKernel {
  private readonly weights = new WeakMap<Tensor | QuantizedTensor, DeviceTensor>();
  private readonly transposed = new WeakMap<Tensor, DeviceTensor>();

  constructor(private readonly cpu: CpuBackend) {}

  /** out[M,N] (+)= a·bᵀ on the wasm SIMD kernel when the backend has one, else blocked JavaScript. */
  readonly gemm: MatmulABt = (a, b, out, M, N, K, accumulate = false, aOff = 0, bOff = 0, outOff = 0) => {
    if (!this.cpu.gemm(a, b, out, M, N, K, accumulate, aOff, bOff, outOff)) matmulABt(a, b, out, M, N, K, accumulate, aOff, bOff, outOff);
  };

  readonly gemmNN: LinearKernel["gemmNN"] = (a, b, out, M, J, N, s) => {
    if (!this.cpu.gemmNN(a, b, out, M, J, N, s)) matmulNN(a, b, out, M, J, N, s);
  };

  readonly gemmTN: LinearKernel["gemmTN"] = (a, b, out, R, S, D) => {
    if (!this.cpu.gemmTN(a, b, out, R, S, D)) matmulTN(a, b, out, R, S, D);
  };

  /** Attention's backward on the CPU backend's kernels (false: the caller's JavaScript runs). */
  readonly attentionBackward: NonNullable<AttentionProducts["attentionBackward"]> = (...args) => this.cpu.attentionBackward(...args);

  /** Hands `w` to the CPU backend now (a weight read into its memory: adopting takes that room, no copy). */
  adopt(w: Tensor | QuantizedTensor): void {
    this.handle(w);
  }

  private handle(w: Tensor | QuantizedTensor): DeviceTensor {
    let h = this.weights.get(w);
    if (!h) {
      h = w instanceof QuantizedTensor ? this.cpu.uploadQuantized(w) : this.cpu.upload(w);
      this.weights.set(w, h);
    }
    return h;
  }

  /** Wᵀ [in, out] in the weight's own storage dtype (an f16 weight stays 16-bit). */
  private handleT(w: Tensor): DeviceTensor {
    let h = this.transposed.get(w);
    if (!h) {
      const [N, K] = w.shape as [number, number];
      const src = w.data;
      const dst = src instanceof Float32Array ? new Float32Array(N * K) : new Uint16Array(N * K);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) dst[k * N + n] = src[n * K + k]!;
      h = this.cpu.upload(new Tensor(dst, [K, N], w.dtype));
      this.transposed.set(w, h);
    }
    return h;
  }

  private run(x: Float32Array, M: number, K: number, w: DeviceTensor, bias?: Float32Array): Float32Array {
    const b = bias && new CpuTensor(bias, [bias.length], "f32");
    const y = this.cpu.linear(new CpuTensor(x, [M, K], "f32"), w, b) as CpuTensor;
    return y.data as Float32Array;
  }

  forward(x: Float32Array, M: number, K: number, w: Tensor | QuantizedTensor, bias?: Float32Array): Float32Array {
    return this.run(x, M, K, this.handle(w), bias);
  }

  /**
   * A trainable weight's forward (LoRA's A and B, a head): the backend's product on the weight
   * staged where its kernels read it (its values change every step, so it is not uploaded).
   * So a trained weight gives the same bits before and after it is saved and loaded.
   */
  forwardTrainable(x: Float32Array, M: number, K: number, w: Float32Array, N: number, bias?: Float32Array): Float32Array {
    return this.run(x, M, K, this.cpu.stage(STAGE_WEIGHT, w, [N, K]), bias);
  }

  backwardInput(g: Float32Array, M: number, N: number, w: Tensor | QuantizedTensor): Float32Array {
    if (w instanceof QuantizedTensor) return quantBackwardInput(g, M, w, this.gemm);
    return this.run(g, M, N, this.handleT(w));
  }

  /** Both products in one call of the backend's linearMany: x is copied to the kernels once. */
  forwardPair(x: Float32Array, M: number, K: number, w: Tensor | QuantizedTensor, bias: Float32Array | undefined,
    a: Float32Array, rows: number): [Float32Array, Float32Array] {
    return this.runPair(x, M, K, this.handle(w), a, rows, bias);
  }

  backwardInputPair(g: Float32Array, M: number, N: number, w: Tensor | QuantizedTensor, b: Float32Array, rows: number): [Float32Array, Float32Array] {
    if (w instanceof QuantizedTensor) return jsLinearKernel.backwardInputPair.call(this, g, M, N, w, b, rows);
    return this.runPair(g, M, N, this.handleT(w), b, rows);
  }

  forwardLowRankMany(x: Float32Array, M: number, K: number, layers: readonly LowRankLayer[]): [Float32Array, Float32Array][] | undefined {
    return this.lowRank(x, M, K, layers.map((l) => ({ ...l, w: this.handle(l.w) })), false);
  }

  backwardInputLowRank(g: Float32Array, M: number, N: number, w: Tensor | QuantizedTensor, b: Float32Array, rows: number,
    e: Float32Array, s: number, gt?: { b: Float32Array; out: Float32Array }): [Float32Array, Float32Array] | undefined {
    if (w instanceof QuantizedTensor) return undefined;
    return this.lowRank(g, M, N, [{ w: this.handleT(w), a: b, rows, e, s, xt: gt }], true)?.[0];
  }

  /** CpuBackend.linearLowRank with each layer's rank-r factor staged in a slot of its own. */
  private lowRank(x: Float32Array, M: number, K: number,
    layers: readonly (Omit<LowRankLayer, "w"> & { w: DeviceTensor; xt?: { b: Float32Array; out: Float32Array } })[], scaleFirst: boolean,
  ): [Float32Array, Float32Array][] | undefined {
    const staged = layers.map((l, i) => ({ ...l, a: this.cpu.stage(STAGE_LOW_RANK + i, l.a, [l.rows, K]) }));
    return this.cpu.linearLowRank(new CpuTensor(x, [M, K], "f32"), staged, scaleFirst)?.map(([y, u]) => [y.data as Float32Array, u.data as Float32Array]);
  }

  private runPair(x: Float32Array, M: number, K: number, w: DeviceTensor, a: Float32Array, rows: number, bias?: Float32Array): [Float32Array, Float32Array] {
    const b = bias && new CpuTensor(bias, [bias.length], "f32");
    const [y, z] = this.cpu.linearMany(new CpuTensor(x, [M, K], "f32"), [w, this.cpu.stage(STAGE_WEIGHT, a, [rows, K])], [b, undefined]) as CpuTensor[];
    return [y!.data as Float32Array, z!.data as Float32Array];
  }
}

/** CpuBackend.stage slots: operands staged for one call each (low-rank factors from STAGE_LOW_RANK on, one slot per layer of a call). */
const STAGE_WEIGHT = 0, STAGE_KEYS = 1, STAGE_VALUES = 2, STAGE_LOW_RANK = 3;

export class TapeBackend implements Backend, DifferentiableBackend {
  readonly device = "cpu" as const;
  readonly differentiable = true as const;
  private readonly cpuKernel: CpuLinearKernel;
  /** Host tensors handed out by read()/asTensor(), back to the Var they show. */
  private readonly views = new VarViews();

  private constructor(private readonly cpu: CpuBackend, private readonly ownsCpu: boolean) {
    this.cpuKernel = new CpuLinearKernel(cpu);
  }

  /** The products the tape's linear layers run on (the CPU backend's kernels). */
  get kernel(): LinearKernel {
    return this.cpuKernel;
  }

  /** The CPU backend's siluMul and its gradients (its wasm kernels when it has them, else JavaScript). */
  private readonly siluMulKernel: ops.SiluMulKernel = {
    forward: (gate, up) => {
      const shape = [gate.length];
      return (this.cpu.siluMul(new CpuTensor(gate, shape, "f32"), new CpuTensor(up, shape, "f32")) as CpuTensor).data as Float32Array;
    },
    backward: (gate, up, g, dGate, dUp) => {
      if (!this.cpu.siluMulBackward(gate, up, g, dGate, dUp)) ops.jsSiluMul.backward(gate, up, g, dGate, dUp);
    },
  };

  /** RMSNorm and its gradients on the CPU backend's wasm kernels when it has them, else JavaScript. */
  private readonly rmsNormKernel: ops.RmsNormKernel = {
    forward: (x, w, eps, H, rstd) => this.cpu.rmsNormValues(x, w, eps, H, rstd),
    backward: (x, w, g, rstd, H, dx, dw) => {
      if (!this.cpu.rmsNormBackward(x, w, g, rstd, H, dx, dw)) ops.jsRmsNorm.backward(x, w, g, rstd, H, dx, dw);
    },
  };

  /** splitHeads and its RoPE gradient on the CPU backend's wasm kernels (the gradient into g itself when owned), else JavaScript. */
  private readonly ropeKernel: attn.RopeKernel = {
    forward: (x, B, T, heads, D, rope) => this.cpu.splitHeadsValues(x, B, T, heads, D, rope),
    backward: (g, cos, sin, B, T, heads, D, owned) => {
      const dx = owned ? g : new Float32Array(g.length);
      return this.cpu.ropeBackward(g, cos, sin, B, T, heads, D, dx) ? dx : attn.jsRope.backward(g, cos, sin, B, T, heads, D, owned);
    },
  };

  /** Softmax statistics of rows on the CPU backend's wasm kernels when it has them, else JavaScript (the same numbers). */
  readonly softmaxRows: SoftmaxRowsKernel = (x, V, rows, probs) => this.cpu.softmaxRows(x, V, rows, probs) ?? jsSoftmaxRows(x, V, rows, probs);

  /** The CPU backend's attention, keys and values staged where its wasm kernels read them. */
  private readonly attentionKernel: AttentionKernel = (q, k, v, s, scale, queryOffset, keyMask) => {
    const kv = [s.B, s.k, s.S, s.D];
    const r = this.cpu.attention(new CpuTensor(q, [s.B, s.n, s.T, s.D], "f32"), this.cpu.stage(STAGE_KEYS, k, kv),
      this.cpu.stage(STAGE_VALUES, v, kv), { queryOffset, keyMask }, { scale, returnWeights: true });
    return { out: (r.out as CpuTensor).data as Float32Array, weights: (r.weights as CpuTensor).data as Float32Array };
  };

  /** A tape backend over a CPU backend (a fresh one unless given). */
  static async create(cpu?: CpuBackend): Promise<TapeBackend> {
    return new TapeBackend(cpu ?? (await CpuBackend.create()), !cpu);
  }

  get description(): string {
    return `autograd tape over ${this.cpu.description}`;
  }

  // ------------------------------------------------------------ autograd glue
  /**
   * A host Tensor that shows `v`'s values and, when uploaded to this backend
   * (e.g. as a model's `inputsEmbeds`), carries `v`'s gradient links.
   */
  asTensor(v: Var): Tensor {
    return this.views.show(v);
  }

  /** The Var behind a tensor returned by read() or asTensor() (e.g. a model output's logits). */
  varOf(t: Tensor): Var {
    const v = this.views.find(t);
    if (!v) throw new LlamaError("tape backend: this tensor was not produced by this backend's read() or asTensor()");
    return v;
  }

  /** The whole graph is host Vars: `backward(loss)` already did everything. */
  async completeBackward(): Promise<void> {}

  // ------------------------------------------------------------ memory
  upload(t: Tensor): DeviceTensor {
    const v = this.views.find(t);
    if (v) return TapeTensor.ofVar(v);
    this.adoptIfLent(t);
    return TapeTensor.ofTensor(t);
  }

  /**
   * Weights are read straight into the CPU kernels' memory, where the frozen
   * products adopt them without a copy (else a loaded model would be held
   * twice: the tape's host copy and the kernels' own). The room is lent
   * until the weight is uploaded; `upload` adopts it there and then (the
   * engine frees lent room once the view it lent is collected, and the
   * tensor's own view of those bytes would outlive it).
   */
  hostBytes(bytes: number): Uint8Array | undefined {
    return this.cpu.hostBytes(bytes);
  }

  /** A weight read into lent room: the kernels take it now. */
  private adoptIfLent(w: Tensor | QuantizedTensor): void {
    if (this.cpu.isLent(w.data)) this.cpuKernel.adopt(w);
  }

  /** A frozen weight kept in its ggml blocks (lib/tensor/quantized.ts). */
  uploadQuantized(q: QuantizedTensor): DeviceTensor {
    this.adoptIfLent(q);
    return TapeTensor.ofQuantized(q);
  }

  async read(t: DeviceTensor): Promise<Tensor> {
    return this.readSync(t);
  }

  readSync(t: DeviceTensor): Tensor {
    const h = tape(t, "read()");
    if (h.frozen) return h.frozenFloat();
    return this.asTensor(h.var);
  }

  /** The graph keeps what backward needs; everything else is garbage-collected. */
  release(_t: DeviceTensor): void {}

  dispose(): void {
    if (this.ownsCpu) this.cpu.dispose();
  }

  // ------------------------------------------------------------ ops
  embedding(table: DeviceTensor, ids: Int32Array, batch: number, seqLen: number): DeviceTensor {
    return TapeTensor.ofVar(ops.embedding(tape(table, "embedding table").weight, ids, batch, seqLen));
  }

  rmsNorm(x: DeviceTensor, weight: DeviceTensor, eps: number): DeviceTensor {
    return TapeTensor.ofVar(ops.rmsNorm(tape(x, "rmsNorm input").var, tape(weight, "rmsNorm weight").weight, eps, this.rmsNormKernel));
  }

  linear(x: DeviceTensor, weight: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const w = tape(weight, "linear weight").weight;
    const b = bias ? tape(bias, "linear bias").weight : undefined;
    return TapeTensor.ofVar(ops.linear(tape(x, "linear input").var, w, b, this.kernel));
  }

  linearMany(x: DeviceTensor, weights: readonly DeviceTensor[], biases?: readonly (DeviceTensor | undefined)[]): DeviceTensor[] {
    return weights.map((w, i) => this.linear(x, w, biases?.[i]));
  }

  /**
   * One tape node per adapted layer (ops.loraLinearMany: the layers' forwards in one kernel call);
   * composed from linear, scale and add when a base weight is trainable.
   */
  loraLinear(x: DeviceTensor, layers: readonly LoraLayer[]): DeviceTensor[] {
    const operands = layers.map(({ weight, bias, lora }) => {
      const w = tape(weight, "linear weight").weight, b = bias && tape(bias, "linear bias").weight;
      const A = tape(lora.A, "lora_A").weight, B = tape(lora.B, "lora_B").weight;
      if (w instanceof Var || b instanceof Var || b instanceof QuantizedTensor || A instanceof QuantizedTensor || B instanceof QuantizedTensor) return undefined;
      return { weight: w, bias: b, A, B, scaling: lora.scaling };
    });
    if (operands.some((o) => o === undefined)) return layers.map(({ weight, bias, lora }) => loraLinearByParts(this, x, weight, bias, lora));
    return ops.loraLinearMany(tape(x, "linear input").var, operands as ops.LoraLayerOperands[], this.kernel).map((v) => TapeTensor.ofVar(v));
  }

  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    return TapeTensor.ofVar(ops.add(tape(a, "add input").var, tape(b, "add input").var));
  }

  scale(x: DeviceTensor, factor: number): DeviceTensor {
    return TapeTensor.ofVar(ops.scale(tape(x, "scale input").var, factor));
  }

  siluMul(gate: DeviceTensor, up: DeviceTensor): DeviceTensor {
    return TapeTensor.ofVar(ops.siluMul(tape(gate, "siluMul gate").var, tape(up, "siluMul up").var, this.siluMulKernel));
  }

  splitHeads(x: DeviceTensor, heads: number, rope?: { cos: Float32Array; sin: Float32Array }): DeviceTensor {
    return TapeTensor.ofVar(attn.splitHeads(tape(x, "splitHeads input").var, heads, rope, this.ropeKernel));
  }

  mergeHeads(x: DeviceTensor): DeviceTensor {
    return TapeTensor.ofVar(attn.mergeHeads(tape(x, "mergeHeads input").var));
  }

  kvAppend(cache: DeviceTensor | undefined, x: DeviceTensor): DeviceTensor {
    return TapeTensor.ofVar(attn.kvAppend(cache ? tape(cache, "kvAppend cache").var : undefined, tape(x, "kvAppend input").var));
  }

  attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, mask: AttentionMask, opts: AttentionOptions): AttentionResult {
    const r = attn.attention(tape(q, "attention queries").var, tape(k, "attention keys").var, tape(v, "attention values").var, mask, opts.scale,
      this.attentionKernel, this.kernel);
    return { out: TapeTensor.ofVar(r.out), weights: opts.returnWeights ? TapeTensor.ofVar(r.weights) : undefined };
  }

  attendWith(weights: DeviceTensor, v: DeviceTensor): DeviceTensor {
    return TapeTensor.ofVar(attn.attendWith(tape(weights, "attendWith weights").var, tape(v, "attendWith values").var));
  }

  selectPositions(x: DeviceTensor, index: Int32Array, perRow: number): DeviceTensor {
    const xv = tape(x, "selectPositions input").var;
    const [B, T, H] = xv.shape as [number, number, number];
    if (index.length !== B * perRow) throw new LlamaError(`selectPositions: ${index.length} indices for ${B} rows × ${perRow}`);
    const rows = Array.from(index, (t, i) => {
      if (!(t >= 0 && t < T)) throw new LlamaError(`selectPositions: position ${t} out of range [0, ${T})`);
      return Math.floor(i / perRow) * T + t;
    });
    return TapeTensor.ofVar(ops.selectRows(xv, rows, [B, perRow, H]));
  }

  selectBatch(x: DeviceTensor, rows: Int32Array): DeviceTensor {
    const xv = tape(x, "selectBatch input").var;
    const rest = xv.shape.slice(1);
    return TapeTensor.ofVar(ops.selectRows(xv, rows, [rows.length, ...rest], numel(rest)));
  }
}
