/**
 * Differentiable ops of the LLaMA forward, except attention (attention-ops.ts)
 * and the loss (loss.ts). Each op computes its value eagerly on the CPU
 * backend's kernels (lib/tensor/ops.ts, or the engine a kernel object brings:
 * the forward math is written there once) and, only when an input requires a
 * gradient, records a backward closure holding exactly the activations that
 * backward needs.
 *
 * Frozen weights are plain `Tensor`s (f32/f16/bf16, never differentiated);
 * trainable ones (a soft prompt, a LoRA matrix, a classification head) are
 * `Var`s made with `Var.param`.
 */
import { Tensor, numel } from "../tensor/tensor.js";
import { LlamaError } from "../errors.js";
import { Var, result, expectShape } from "./var.js";
import { QuantizedTensor } from "../tensor/quantized.js";
import { addInto, embeddingInto, rmsNormInto, scaleInto, siluF32, siluMulInto } from "../tensor/ops.js";
import { type LinearKernel, jsLinearKernel, transpose, transposedActivation, transposedScratch, weightF32 } from "./matmul.js";

/** A weight: frozen (`Tensor`, or a `QuantizedTensor` matrix in ggml blocks) or trainable (`Var`). */
export type Weight = Tensor | Var | QuantizedTensor;

function weightValues(w: Weight): Float32Array {
  if (w instanceof QuantizedTensor) throw new LlamaError(`a ${w.type} weight [${w.shape.join(", ")}] can only be a linear or embedding matrix`);
  return w instanceof Var ? w.value : weightF32(w);
}

function lastDim(op: string, x: Var): number {
  const d = x.shape[x.shape.length - 1];
  if (d === undefined) throw new LlamaError(`${op}: expected at least one dimension, got a scalar`);
  return d;
}

/** Elementwise a + b (same shapes): residual connections. */
export function add(a: Var, b: Var): Var {
  expectShape("add", "b", b.shape, a.shape);
  const out = addInto(a.value, b.value, new Float32Array(a.size));
  return result(out, a.shape, [a, b], () => ({
    name: "add",
    inputs: [a, b],
    backward: (g) => [a.requiresGrad ? g : null, b.requiresGrad ? g : null],
  }));
}

/** Elementwise x · factor (factor rounded to float32, as PyTorch's scalar multiply). */
export function scale(x: Var, factor: number): Var {
  const f = Math.fround(factor);
  const out = scaleInto(x.value, f, new Float32Array(x.size));
  return result(out, x.shape, [x], () => ({
    name: "scale",
    inputs: [x],
    backward: (g, owned) => {
      const dx = owned ? g : new Float32Array(g.length);
      for (let i = 0; i < g.length; i++) dx[i] = g[i]! * f;
      return [dx];
    },
  }));
}

/**
 * Embedding gather: table [V, H], ids [B*T] → [B, T, H]. The backward
 * scatter-adds into the table only when the table is a trainable Var.
 */
export function embedding(table: Weight, ids: ArrayLike<number>, batch: number, seqLen: number): Var {
  expectShape("embedding", "table", table.shape, [null, null]);
  const [V, H] = table.shape as [number, number];
  if (ids.length !== batch * seqLen) throw new LlamaError(`embedding: ${ids.length} ids for batch ${batch} × length ${seqLen}`);
  const out = new Float32Array(ids.length * H);
  if (table instanceof Var) embeddingInto(table.value, "f32", undefined, V, H, ids, out);
  else if (table instanceof QuantizedTensor) embeddingInto(table.data, "f32", table.type, V, H, ids, out);
  else embeddingInto(table.data, table.dtype, undefined, V, H, ids, out);
  const inputs = table instanceof Var ? [table] : [];
  const idsCopy = Int32Array.from(ids);
  return result(out, [batch, seqLen, H], inputs, () => ({
    name: "embedding",
    inputs,
    backward: (g) => {
      const dw = new Float32Array(V * H);
      for (let i = 0; i < idsCopy.length; i++) {
        const o = idsCopy[i]! * H;
        for (let h = 0; h < H; h++) dw[o + h] = dw[o + h]! + g[i * H + h]!;
      }
      return [dw];
    },
  }));
}

/** RMSNorm on a backend's kernel, forward (rmsNormInto's numbers) and backward. */
export interface RmsNormKernel {
  /** y = w · x · rstd over rows of H; fills rstd [rows]. */
  forward(x: Float32Array, w: Float32Array, eps: number, H: number, rstd: Float32Array): Float32Array;
  /**
   * For the output gradient g of y = w · x · rstd over rows of H (x, g [rows, H], rstd [rows]):
   * writes dx (null: not wanted) and adds Σ_rows g·x·rstd to dw [H] (null: not wanted).
   * dx may be g itself: each g[i] is read before dx[i] is written.
   */
  backward(x: Float32Array, w: Float32Array, g: Float32Array, rstd: Float32Array, H: number,
    dx: Float32Array | null, dw: Float32Array | null): void;
}

/** RMSNorm in JavaScript: the CPU backend's forward, the backward with float64 sums. */
export const jsRmsNorm: RmsNormKernel = {
  forward: (x, w, eps, H, rstd) => rmsNormInto(x, w, eps, H, new Float32Array(x.length), rstd),
  backward(x, w, g, rstd, H, dx, dw) {
    // With n = x·r: dn = g·w; dx = r·(dn − n·mean(dn·n)); dw = Σ_rows g·n.
    for (let r = 0; r < rstd.length; r++) {
      const o = r * H, rs = rstd[r]!;
      let dot = 0;
      for (let h = 0; h < H; h++) dot += g[o + h]! * w[h]! * x[o + h]! * rs;
      const m = dot / H;
      for (let h = 0; h < H; h++) {
        const n = x[o + h]! * rs;
        if (dw) dw[h] = dw[h]! + g[o + h]! * n;
        if (dx) dx[o + h] = rs * (g[o + h]! * w[h]! - n * m);
      }
    }
  },
};

/**
 * RMSNorm over the last dim, as HF's LlamaRMSNorm in float32:
 * y = weight · x · rsqrt(mean(x²) + eps). x [..., H], weight [H].
 * It runs on `kernel` (the CPU tape passes the wasm SIMD one).
 */
export function rmsNorm(x: Var, weight: Weight, eps: number, kernel: RmsNormKernel = jsRmsNorm): Var {
  const H = lastDim("rmsNorm", x);
  expectShape("rmsNorm", "weight", weight.shape, [H]);
  const w = weightValues(weight);
  const xv = x.value;
  const rstd = new Float32Array(x.size / H); // rsqrt(mean(x²) + eps) per row, saved for backward
  const out = kernel.forward(xv, w, eps, H, rstd);
  const inputs = weight instanceof Var ? [x, weight] : [x];
  return result(out, x.shape, inputs, () => ({
    name: "rmsNorm",
    inputs,
    backward: (g, owned) => {
      const dx = x.requiresGrad ? (owned ? g : new Float32Array(x.size)) : null;
      const dw = weight instanceof Var && weight.requiresGrad ? new Float32Array(H) : null;
      kernel.backward(xv, w, g, rstd, H, dx, dw);
      return weight instanceof Var ? [dx, dw] : [dx];
    },
  }));
}

/**
 * torch.nn.functional.linear: x [..., in] · weight[out, in]ᵀ (+ bias [out]) → [..., out].
 * dX = dY · W always (when x needs it); dW = dYᵀ · X and db = Σ dY only for trainable weights.
 * `kernel` runs the products (default: the CPU backend's JavaScript kernels).
 */
export function linear(x: Var, weight: Weight, bias?: Weight, kernel: LinearKernel = jsLinearKernel): Var {
  const K = lastDim("linear", x);
  expectShape("linear", "weight", weight.shape, [null, K]);
  const N = weight.shape[0]!;
  if (bias) expectShape("linear", "bias", bias.shape, [N]);
  const M = x.size / K;
  const b = bias && weightValues(bias);
  const out = weight instanceof Var
    ? kernel.forwardTrainable(x.value, M, K, weight.value, N, b)
    : kernel.forward(x.value, M, K, weight, b);
  const mm = kernel.gemm;
  const shape = [...x.shape.slice(0, -1), N];
  const xIsOpOutput = !x.isLeaf; // its values never change (a leaf's may, between steps)
  const inputs: Var[] = [x];
  if (weight instanceof Var) inputs.push(weight);
  if (bias instanceof Var) inputs.push(bias);
  return result(out, shape, inputs, () => ({
    name: "linear",
    inputs,
    backward: (g) => {
      const grads: (Float32Array | null)[] = [];
      if (x.requiresGrad) {
        // dX[M,K] = dY[M,N] · W[N,K] = dY · (Wᵀ[K,N])ᵀ
        if (weight instanceof Var) {
          const dx = new Float32Array(M * K);
          mm(g, transpose(weight.value, N, K), dx, M, K, N);
          grads.push(dx);
        } else {
          grads.push(kernel.backwardInput(g, M, N, weight));
        }
      } else grads.push(null);
      if (weight instanceof Var) {
        if (weight.requiresGrad) {
          const dw = new Float32Array(N * K);
          // dW[N,K] = dYᵀ[N,M] · X[M,K] = dYᵀ · (Xᵀ[K,M])ᵀ, Xᵀ shared by the weights that read X.
          mm(transposedScratch(g, M, N), transposedActivation(x.value, M, K, xIsOpOutput), dw, N, K, M);
          grads.push(dw);
        } else grads.push(null);
      }
      if (bias instanceof Var) {
        if (bias.requiresGrad) {
          const db = new Float32Array(N);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) db[n] = db[n]! + g[m * N + n]!;
          grads.push(db);
        } else grads.push(null);
      }
      return grads;
    },
  }));
}

/** A LoRA matrix's values: a trainable Var's, or a frozen tensor's as float32. */
function linearValues(w: Var | Tensor): Float32Array {
  return w instanceof Var ? w.value : weightF32(w);
}

/**
 * A frozen linear layer with PEFT's LoRA path as one tape node:
 * y = x·Wᵀ (+ bias) + s·((x·Aᵀ)·Bᵀ), A [r, K], B [N, r], s = scaling rounded to
 * float32: the low-rank product is scaled and rounded, then added, in PEFT's
 * order (on the rank-r kernel, gemmNN, so its sums run in another order than
 * composing linear + scale + add would: the same numbers to float32 rounding). The backward
 * writes x's gradient once, with U = x·Aᵀ and G = s·(g·B) [M, r]:
 *
 *   dX = g·W + G·A      dA = Gᵀ·X      dB = s·gᵀ·U
 *
 * (PEFT scales g before the product with B; here the [M, r] result is scaled,
 * which is the same number when s is a power of two, as alpha = 2r makes it).
 * A and B are Vars while trained, frozen tensors under no_grad.
 */
export function loraLinear(
  x: Var, weight: Tensor | QuantizedTensor, bias: Tensor | undefined, A: Var | Tensor, B: Var | Tensor, scaling: number,
  kernel: LinearKernel = jsLinearKernel,
): Var {
  return loraLinearMany(x, [{ weight, bias, A, B, scaling }], kernel)[0]!;
}

/** One LoRA layer of loraLinearMany. */
export interface LoraLayerOperands {
  weight: Tensor | QuantizedTensor;
  bias: Tensor | undefined;
  A: Var | Tensor;
  B: Var | Tensor;
  scaling: number;
}

/**
 * loraLinear for several layers over one x (q/k/v, gate/up): the forwards in
 * one kernel call where the kernels can (x read once; the same numbers as
 * each layer on its own), one tape node per layer.
 */
export function loraLinearMany(x: Var, layers: readonly LoraLayerOperands[], kernel: LinearKernel = jsLinearKernel): Var[] {
  const K = lastDim("loraLinear", x);
  const M = x.size / K;
  const prepared = layers.map(({ weight, bias, A, B, scaling }) => {
    expectShape("loraLinear", "weight", weight.shape, [null, K]);
    const N = weight.shape[0]!;
    expectShape("loraLinear", "lora_A", A.shape, [null, K]);
    const r = A.shape[0]!;
    expectShape("loraLinear", "lora_B", B.shape, [N, r]);
    if (bias) expectShape("loraLinear", "bias", bias.shape, [N]);
    const av = linearValues(A);
    return { N, r, s: Math.fround(scaling), av, bt: transpose(linearValues(B), N, r) }; // Bᵀ [r, N]
  });
  // y = x·Wᵀ (+ bias) + s·U·Bᵀ with U = x·Aᵀ [M, r]: every layer in one call where the kernels can, else each composed
  const fused = layers.every((l) => !l.bias)
    ? kernel.forwardLowRankMany?.(x.value, M, K, layers.map((l, i) => ({ w: l.weight, a: prepared[i]!.av, rows: prepared[i]!.r, e: prepared[i]!.bt, s: prepared[i]!.s })))
    : undefined;
  return layers.map((layer, i) => {
    const { N, r, s, av, bt } = prepared[i]!;
    const [y, u] = fused?.[i] ?? (() => {
      const pair = kernel.forwardPair(x.value, M, K, layer.weight, layer.bias && weightF32(layer.bias), av, r);
      kernel.gemmNN(pair[1], bt, pair[0], M, r, N, s);
      return pair;
    })();
    return loraNode(x, layer, { M, K, N, r, s, av, bt }, y, u, kernel);
  });
}

/** A LoRA layer's tape node: its output y (with U = x·Aᵀ from the forward) and the backward of loraLinear's comment. */
function loraNode(x: Var, { weight, A, B }: LoraLayerOperands, dims: { M: number; K: number; N: number; r: number; s: number; av: Float32Array; bt: Float32Array },
  y: Float32Array, u: Float32Array, kernel: LinearKernel): Var {
  const { M, K, N, r, s, av, bt } = dims;
  const mm = kernel.gemm;
  const inputs = [x, ...[A, B].filter((w): w is Var => w instanceof Var)];
  return result(y, [...x.shape.slice(0, -1), N], inputs, () => ({
    name: "loraLinear",
    inputs,
    backward: (g) => {
      // G = s·(g·B) [M, r], and dX = g·W + G·A when x needs it, from the same pass over g;
      // B's gradient s·gᵀ·U [N, r] from g too. All in one call where the kernels can, else composed.
      const dB = B instanceof Var && B.requiresGrad ? new Float32Array(N * r) : null;
      const su = dB && u.map((v) => v * s);
      let dx: Float32Array | null = null, G: Float32Array;
      const fused = x.requiresGrad ? kernel.backwardInputLowRank?.(g, M, N, weight, bt, r, av, s, dB ? { b: su!, out: dB } : undefined) : undefined;
      if (fused) [dx, G] = fused;
      else {
        if (dB) kernel.gemmTN(g, su!, dB, M, N, r);
        if (x.requiresGrad) [dx, G] = kernel.backwardInputPair(g, M, N, weight, bt, r);
        else mm(g, bt, (G = new Float32Array(M * r)), M, r, N);
        for (let i = 0; i < G.length; i++) G[i] = G[i]! * s;
        if (dx) kernel.gemmNN(G, av, dx, M, r, K, 1);
      }
      const grads: (Float32Array | null)[] = [dx];
      if (A instanceof Var) {
        const dA = A.requiresGrad ? new Float32Array(r * K) : null;
        if (dA) kernel.gemmTN(G, x.value, dA, M, r, K);
        grads.push(dA);
      }
      if (B instanceof Var) grads.push(dB);
      return grads;
    },
  }));
}

/** A backend's siluMul: out = silu(gate) · up elementwise, silu rounded to float32 first, and its gradients. */
export interface SiluMulKernel {
  forward(gate: Float32Array, up: Float32Array): Float32Array;
  /**
   * For the output gradient g: writes dGate = g·up·silu'(gate) and dUp = g·silu(gate)
   * (either null: not wanted). dUp may be g itself: each g[i] is read before either is written.
   */
  backward(gate: Float32Array, up: Float32Array, g: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null): void;
}

/** The CPU backend's JavaScript siluMul (lib/tensor/ops.ts) and its gradients in JavaScript. */
export const jsSiluMul: SiluMulKernel = {
  forward: (gate, up) => siluMulInto(gate, up, new Float32Array(gate.length)),
  backward(gate, up, g, dGate, dUp) {
    for (let i = 0; i < g.length; i++) {
      const x = gate[i]!, gi = g[i]!;
      const si = siluF32(x); // silu(x) rounded as the forward rounds it
      if (dGate) {
        // d silu(x)/dx = s + x·s·(1 − s) = s + silu(x)·(1 − s), s = sigmoid(x) (= 1/2 at x = 0).
        const s = x === 0 ? 0.5 : si / x;
        dGate[i] = gi * up[i]! * (s + si * (1 - s));
      }
      if (dUp) dUp[i] = gi * si;
    }
  },
};

/**
 * SwiGLU gate: silu(gate) · up, elementwise, same shapes [..., I], on `kernel`
 * (the CPU tape passes the wasm SIMD kernels, the forward the CPU backend's).
 * The backward recomputes silu(gate) from gate rather than keeping it from the forward.
 */
export function siluMul(gate: Var, up: Var, kernel: SiluMulKernel = jsSiluMul): Var {
  expectShape("siluMul", "up", up.shape, gate.shape);
  const n = gate.size;
  const gv = gate.value, uv = up.value;
  const out = kernel.forward(gv, uv);
  return result(out, gate.shape, [gate, up], () => ({
    name: "siluMul",
    inputs: [gate, up],
    backward: (g, owned) => {
      const dg = gate.requiresGrad ? new Float32Array(n) : null;
      const du = up.requiresGrad ? (owned ? g : new Float32Array(n)) : null;
      kernel.backward(gv, uv, g, dg, du);
      return [dg, du];
    },
  }));
}

/** Concatenates along dim 1: a [B, Ta, ...], b [B, Tb, ...] → [B, Ta+Tb, ...] (prepending a soft prompt). */
export function concatSeq(a: Var, b: Var): Var {
  if (a.shape.length < 2 || b.shape.length !== a.shape.length) {
    throw new LlamaError(`concatSeq: shapes [${a.shape.join(", ")}] and [${b.shape.join(", ")}] do not concatenate on dim 1`);
  }
  expectShape("concatSeq", "b", b.shape, [a.shape[0]!, null, ...a.shape.slice(2)]);
  const B = a.shape[0]!, inner = numel(a.shape.slice(2));
  const ra = a.shape[1]! * inner, rb = b.shape[1]! * inner;
  const out = new Float32Array(B * (ra + rb));
  for (let i = 0; i < B; i++) {
    out.set(a.value.subarray(i * ra, (i + 1) * ra), i * (ra + rb));
    out.set(b.value.subarray(i * rb, (i + 1) * rb), i * (ra + rb) + ra);
  }
  const shape = [B, a.shape[1]! + b.shape[1]!, ...a.shape.slice(2)];
  return result(out, shape, [a, b], () => ({
    name: "concatSeq",
    inputs: [a, b],
    backward: (g) => {
      const da = a.requiresGrad ? new Float32Array(B * ra) : null;
      const db = b.requiresGrad ? new Float32Array(B * rb) : null;
      for (let i = 0; i < B; i++) {
        if (da) da.set(g.subarray(i * (ra + rb), i * (ra + rb) + ra), i * ra);
        if (db) db.set(g.subarray(i * (ra + rb) + ra, (i + 1) * (ra + rb)), i * rb);
      }
      return [da, db];
    },
  }));
}

/** Repeats x [...] along a new leading batch dim → [B, ...]; the backward sums over the batch. */
export function expandBatch(x: Var, batch: number): Var {
  const n = x.size;
  const out = new Float32Array(batch * n);
  for (let b = 0; b < batch; b++) out.set(x.value, b * n);
  return result(out, [batch, ...x.shape], [x], () => ({
    name: "expandBatch",
    inputs: [x],
    backward: (g) => {
      const dx = new Float32Array(n);
      for (let b = 0; b < batch; b++) for (let i = 0; i < n; i++) dx[i] = dx[i]! + g[b * n + i]!;
      return [dx];
    },
  }));
}

/**
 * Gathers rows of x viewed as [R, C] (C = `rowSize`, default the last dim):
 * rows [N] → [N, C] (or `outShape`). Backward scatter-adds (a row may be picked twice).
 */
export function selectRows(x: Var, rows: ArrayLike<number>, outShape?: readonly number[], rowSize?: number): Var {
  const C = rowSize ?? lastDim("selectRows", x);
  const R = x.size / C;
  if (!Number.isInteger(R)) throw new LlamaError(`selectRows: ${x.size} elements do not split into rows of ${C}`);
  const idx = Int32Array.from(rows);
  const out = new Float32Array(idx.length * C);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    if (!(r >= 0 && r < R)) throw new LlamaError(`selectRows: row ${r} out of range 0..${R - 1}`);
    out.set(x.value.subarray(r * C, r * C + C), i * C);
  }
  const shape = outShape ?? [idx.length, C];
  if (numel(shape) !== out.length) throw new LlamaError(`selectRows: output shape [${shape.join(", ")}] does not hold ${out.length} elements`);
  return result(out, shape, [x], () => ({
    name: "selectRows",
    inputs: [x],
    backward: (g) => {
      const dx = new Float32Array(x.size);
      for (let i = 0; i < idx.length; i++) {
        const o = idx[i]! * C;
        for (let c = 0; c < C; c++) dx[o + c] = dx[o + c]! + g[i * C + c]!;
      }
      return [dx];
    },
  }));
}

/** Same values, new shape (a view in spirit; the gradient passes through unchanged). */
export function reshape(x: Var, shape: readonly number[]): Var {
  if (numel(shape) !== x.size) throw new LlamaError(`reshape: cannot view [${x.shape.join(", ")}] as [${shape.join(", ")}]`);
  return result(x.value, shape, [x], () => ({ name: "reshape", inputs: [x], backward: (g) => [g] }));
}
