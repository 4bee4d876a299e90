/**
 * The matrix products autograd's backward passes need, in float32 on the CPU.
 *
 * Every product is C = A · Bᵀ with both operands row-major (`matmulABt`),
 * which is the CPU backend's x · Wᵀ kernel (lib/tensor/matmul.ts) on
 * sub-arrays: the forward products themselves run on the backend's kernels
 * (a `LinearKernel`), never on a copy of them here. The backward of a linear
 * layer (dX = dY · W) is the same product on Wᵀ, which is built once per
 * weight and cached: training a prompt runs thousands of backward passes
 * through the same frozen weights.
 */
import { Tensor } from "../tensor/tensor.js";
import { LlamaError } from "../errors.js";
import { QuantizedTensor, dequantizeRows } from "../tensor/quantized.js";
import { matmulTransposedInto } from "../tensor/matmul.js";
import { runJobJs } from "../backend/cpu/quant-js.js";
import { onBackwardEnd } from "./var.js";

/** A product's result before it is added into `out` (matmulABt with `accumulate`). */
let accScratch = new Float32Array(0);

/**
 * out[M,N] = a[M,K] · b[N,K]ᵀ (+ out when `accumulate`), the CPU backend's
 * JavaScript x · Wᵀ kernel. Offsets let callers multiply sub-blocks of larger
 * arrays without copying. Accumulation adds the float32 product, as the wasm
 * kernel's `gemm` does.
 */
export function matmulABt(
  a: Float32Array, b: Float32Array, out: Float32Array,
  M: number, N: number, K: number,
  accumulate = false, aOff = 0, bOff = 0, outOff = 0,
): void {
  const A = a.subarray(aOff, aOff + M * K), B = b.subarray(bOff, bOff + N * K);
  if (!accumulate) {
    matmulTransposedInto(A, M, K, B, "f32", N, undefined, out.subarray(outOff, outOff + M * N));
    return;
  }
  if (accScratch.length < M * N) accScratch = new Float32Array(M * N);
  const y = matmulTransposedInto(A, M, K, B, "f32", N, undefined, accScratch.subarray(0, M * N));
  for (let i = 0; i < M * N; i++) out[outOff + i] = out[outOff + i]! + y[i]!;
}

/** out[M,N] = a[K,M]ᵀ · b[K,N] (+ out when `accumulate`): the weight-gradient product dW = dYᵀ · X, as Aᵀ · (Bᵀ)ᵀ. */
export function matmulAtB(a: Float32Array, b: Float32Array, out: Float32Array, M: number, N: number, K: number, accumulate = false): void {
  matmulABt(transpose(a, K, M), transpose(b, K, N), out, M, N, K, accumulate);
}

/** out[M,N] += s · a[M,J] · b[J,N]: matmulABt on bᵀ, scaled, then added (the LoRA path's products). */
export function matmulNN(a: Float32Array, b: Float32Array, out: Float32Array, M: number, J: number, N: number, s: number): void {
  const y = new Float32Array(M * N);
  matmulABt(a, transpose(b, J, N), y, M, N, J);
  for (let i = 0; i < M * N; i++) out[i] = out[i]! + Math.fround(y[i]! * s);
}

/** out[S,D] += a[R,S]ᵀ · b[R,D]: a weight gradient summed over the R rows of a batch (matmulAtB, accumulating). */
export function matmulTN(a: Float32Array, b: Float32Array, out: Float32Array, R: number, S: number, D: number): void {
  matmulAtB(a, b, out, S, D, R, true);
}

/** Transpose of a row-major [R,C] matrix into a new [C,R] array. */
export function transpose(src: Float32Array, R: number, C: number): Float32Array {
  const out = new Float32Array(R * C);
  transposeInto(src, 0, R, C, out);
  return out;
}

/** dst[C, R] = src[off .. off + R·C] viewed as [R, C], transposed (tiled to keep reads and writes within a few cache lines). */
export function transposeInto(src: Float32Array, off: number, R: number, C: number, dst: Float32Array): void {
  const T = 32;
  for (let r0 = 0; r0 < R; r0 += T) {
    const r1 = Math.min(R, r0 + T);
    for (let c0 = 0; c0 < C; c0 += T) {
      const c1 = Math.min(C, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * R + r] = src[off + r * C + c]!;
    }
  }
}

// Frozen weights are widened to f32 (and transposed) once, then reused by every step.
const widened = new WeakMap<Tensor, Float32Array>();
const transposed = new WeakMap<Tensor, Float32Array>();

/** A weight's values as float32 (cached per tensor: f16/bf16 weights are widened once). */
export function weightF32(w: Tensor): Float32Array {
  if (w.dtype === "f32") return w.data as Float32Array;
  let f = widened.get(w);
  if (!f) {
    f = w.toFloat32();
    widened.set(w, f);
  }
  return f;
}

/** Wᵀ of a [out,in] weight as float32 [in,out] (cached per tensor). */
export function weightTransposedF32(w: Tensor): Float32Array {
  if (w.rank !== 2) throw new LlamaError(`weightTransposedF32: expected a matrix, got shape [${w.shape.join(", ")}]`);
  let t = transposed.get(w);
  if (!t) {
    t = transpose(weightF32(w), w.shape[0]!, w.shape[1]!);
    transposed.set(w, t);
  }
  return t;
}

/**
 * The forward products of a linear layer, run by a backend's kernels (so the
 * tape's forward gives the bits that backend's inference gives), and the
 * input gradient of a frozen weight. The default, `jsLinearKernel`, is the CPU
 * backend's JavaScript kernels; the CPU tape passes its engine's (wasm SIMD).
 */
/** A LoRA layer's operands for LinearKernel.forwardLowRankMany: frozen w [N, K], a [rows, K], e = Bᵀ [rows, N], the scaling s. */
export interface LowRankLayer {
  w: Tensor | QuantizedTensor;
  a: Float32Array;
  rows: number;
  e: Float32Array;
  s: number;
}

export interface LinearKernel {
  /** y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias[N]) for a frozen weight. */
  forward(x: Float32Array, M: number, K: number, w: Tensor | QuantizedTensor, bias?: Float32Array): Float32Array;
  /** The same product for a trainable float32 weight (its values change every step): the bits `forward` gives that weight frozen. */
  forwardTrainable(x: Float32Array, M: number, K: number, w: Float32Array, N: number, bias?: Float32Array): Float32Array;
  /** dX[M,K] = g[M,N] · W[N,K] for a frozen weight. */
  backwardInput(g: Float32Array, M: number, N: number, w: Tensor | QuantizedTensor): Float32Array;
  /**
   * `forward` and `forwardTrainable(x, M, K, a, rows)` on the same x, as [y, x·aᵀ] (one pass
   * over x where the kernels can: a LoRA layer's base product and its x·Aᵀ); the same bits as the two calls.
   */
  forwardPair(x: Float32Array, M: number, K: number, w: Tensor | QuantizedTensor, bias: Float32Array | undefined,
    a: Float32Array, rows: number): [Float32Array, Float32Array];
  /** `backwardInput` and g·bᵀ for a trainable b [rows, N] on the same g, as [g·W, g·bᵀ] (a LoRA layer's dX and g·B). */
  backwardInputPair(g: Float32Array, M: number, N: number, w: Tensor | QuantizedTensor, b: Float32Array, rows: number): [Float32Array, Float32Array];
  /**
   * LoRA layers over one x, each `forwardPair` with its low-rank term added where the kernels keep y:
   * [y + s·u·e, u] per layer with u = x·aᵀ, e [rows, N]; the bits of forwardPair then gemmNN(u, e, y, s),
   * with x read once for all. Undefined when it cannot (then the caller composes).
   */
  forwardLowRankMany?(x: Float32Array, M: number, K: number, layers: readonly LowRankLayer[]): [Float32Array, Float32Array][] | undefined;
  /**
   * `backwardInputPair` with the low-rank term added where the kernels keep dX: [g·W + G·e, G] with
   * G = s·(g·bᵀ) (rounded to float32), e [rows, K]; with gt also gt.out [N, D] += gᵀ·gt.b (B's gradient
   * from the same g). The bits of backwardInputPair, the scaling, gemmNN(G, e, dX, 1) and gemmTN.
   * Undefined when it cannot (nothing written).
   */
  backwardInputLowRank?(g: Float32Array, M: number, N: number, w: Tensor | QuantizedTensor, b: Float32Array, rows: number,
    e: Float32Array, s: number, gt?: { b: Float32Array; out: Float32Array }): [Float32Array, Float32Array] | undefined;
  /**
   * out[M,N] (+)= a[M,K] · b[N,K]ᵀ on transient host arrays (matmulABt's contract): the backward
   * products of trainable weights (LoRA's A and B, a head) and of attention.
   */
  gemm: typeof matmulABt;
  /** out[M,N] += s · a[M,J] · b[J,N] with a small J (matmulNN's contract). */
  gemmNN: typeof matmulNN;
  /** out[S,D] += a[R,S]ᵀ · b[R,D] (matmulTN's contract). */
  gemmTN: typeof matmulTN;
}

/**
 * Xᵀ [K, M] of an activation X [M, K] for the weight gradient dW = dYᵀ · X on
 * the ABt kernel. The LoRA pairs on q/k/v (and gate/up) read one X and run
 * their backwards close together, so the last few transposes are kept (keyed
 * by the value array and its row width) and their buffers recycled: a step
 * makes no garbage here. Only for op outputs, which are never modified after
 * they are made (a leaf's values change with each optimizer step: `cache` false).
 * The buffers are dropped when the backward pass ends.
 */
const ACTIVATION_T_SLOTS = 4;
const activationT: { src: Float32Array; K: number; buf: Float32Array; t: Float32Array }[] = [];

export function transposedActivation(x: Float32Array, M: number, K: number, cache = true): Float32Array {
  if (!cache) return transpose(x, M, K);
  const hit = activationT.findIndex((e) => e.src === x && e.K === K && e.t.length === M * K);
  if (hit >= 0) {
    const [e] = activationT.splice(hit, 1);
    activationT.unshift(e!); // most recent first
    return e!.t;
  }
  // Evict the oldest slot, reusing its buffer when it is big enough.
  const old = activationT.length >= ACTIVATION_T_SLOTS ? activationT.pop() : undefined;
  const buf = old && old.buf.length >= M * K ? old.buf : new Float32Array(M * K);
  const t = buf.subarray(0, M * K);
  transposeInto(x, 0, M, K, t);
  activationT.unshift({ src: x, K, buf, t });
  return t;
}

/** A reusable buffer for a transpose that one product consumes at once (dYᵀ of a weight gradient). */
let scratchT = new Float32Array(0);

// Between backward passes nothing is kept (a model's activations can be large).
onBackwardEnd(() => {
  activationT.length = 0;
  scratchT = new Float32Array(0);
  accScratch = new Float32Array(0);
});

export function transposedScratch(src: Float32Array, R: number, C: number): Float32Array {
  if (scratchT.length < R * C) scratchT = new Float32Array(Math.max(R * C, Math.ceil(scratchT.length * 1.25)));
  const t = scratchT.subarray(0, R * C);
  transposeInto(src, 0, R, C, t);
  return t;
}

/** Rows of a quantized W dequantized at a time by quantBackwardInput (a few hundred KiB, never the whole matrix). */
const QUANT_CHUNK_ROWS = 64;

/**
 * dX[M,K] = g[M,N] · W for a quantized W [N, K], dequantizing QUANT_CHUNK_ROWS
 * rows at a time with ggml's formulas and multiplying each chunk with `gemm`
 * (C (+)= A · Bᵀ, as matmulABt). The forward product is the backend's (its
 * kernels read the blocks directly).
 */
export function quantBackwardInput(g: Float32Array, M: number, w: QuantizedTensor, gemm: typeof matmulABt): Float32Array {
  const [N, K] = w.shape;
  const S = Math.min(QUANT_CHUNK_ROWS, N);
  const rows = new Float32Array(S * K);
  const rowsT = new Float32Array(K * S);
  const gc = new Float32Array(M * S);
  const out = new Float32Array(M * K);
  for (let n0 = 0; n0 < N; n0 += S) {
    const s = Math.min(S, N - n0);
    dequantizeRows(w.type, w.data, K, n0, n0 + s, rows);
    // dX += g[:, n0:n0+s] · chunk = g_c · (chunkᵀ)ᵀ
    transposeInto(rows, 0, s, K, rowsT);
    for (let m = 0; m < M; m++) gc.set(g.subarray(m * N + n0, m * N + n0 + s), m * s);
    gemm(gc, rowsT, out, M, K, s, n0 > 0);
  }
  return out;
}

/** The CPU backend's JavaScript kernels (lib/tensor/matmul.ts, lib/backend/cpu/quant-js.ts): the tape's products without an engine. */
export const jsLinearKernel: LinearKernel = {
  forward(x, M, K, w, bias) {
    const N = w.shape[0]!;
    const y = new Float32Array(M * N);
    if (w instanceof QuantizedTensor) runJobJs(x, M, K, { w: w.data, dtype: "f32", quant: w.type, N, bias, y });
    else runJobJs(x, M, K, { w: w.data, dtype: w.dtype, N, bias, y });
    return y;
  },
  forwardTrainable(x, M, K, w, N, bias) {
    return matmulTransposedInto(x, M, K, w, "f32", N, bias, new Float32Array(M * N));
  },
  backwardInput(g, M, N, w) {
    if (w instanceof QuantizedTensor) return quantBackwardInput(g, M, w, matmulABt);
    const K = w.shape[1]!;
    const dx = new Float32Array(M * K);
    matmulABt(g, weightTransposedF32(w), dx, M, K, N);
    return dx;
  },
  forwardPair(x, M, K, w, bias, a, rows) {
    return [this.forward(x, M, K, w, bias), this.forwardTrainable(x, M, K, a, rows)];
  },
  backwardInputPair(g, M, N, w, b, rows) {
    const gb = new Float32Array(M * rows);
    matmulABt(g, b, gb, M, rows, N);
    return [this.backwardInput(g, M, N, w), gb];
  },
  gemm: matmulABt,
  gemmNN: matmulNN,
  gemmTN: matmulTN,
};
