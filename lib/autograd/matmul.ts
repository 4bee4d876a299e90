/**
 * The matrix products autograd needs, in float32 on the CPU.
 *
 * Everything is written as one kernel, `matmulABt` (C = A · Bᵀ with both
 * operands row-major, so the inner loop walks two contiguous rows), blocked
 * 4×4 so each loaded value is used four times from registers. The backward
 * of a linear layer (dX = dY · W) is the same kernel on Wᵀ, which is built
 * once per weight and cached: training a prompt runs thousands of backward
 * passes through the same frozen weights.
 */
import { Tensor } from "../tensor/tensor.js";
import { LlamaError } from "../errors.js";
import { QuantizedTensor, dequantizeRows } from "../tensor/quantized.js";
import { onBackwardEnd } from "./var.js";

/**
 * out[M,N] = a[M,K] · b[N,K]ᵀ (+ out when `accumulate`). Offsets let callers
 * multiply sub-blocks of larger arrays without copying.
 */
export function matmulABt(
  a: Float32Array, b: Float32Array, out: Float32Array,
  M: number, N: number, K: number,
  accumulate = false, aOff = 0, bOff = 0, outOff = 0,
): void {
  let i = 0;
  for (; i + 4 <= M; i += 4) {
    const a0 = aOff + i * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
    let j = 0;
    for (; j + 4 <= N; j += 4) {
      const b0 = bOff + j * K, b1 = b0 + K, b2 = b1 + K, b3 = b2 + K;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let k = 0; k < K; k++) {
        const x0 = a[a0 + k]!, x1 = a[a1 + k]!, x2 = a[a2 + k]!, x3 = a[a3 + k]!;
        const w0 = b[b0 + k]!, w1 = b[b1 + k]!, w2 = b[b2 + k]!, w3 = b[b3 + k]!;
        s00 += x0 * w0; s01 += x0 * w1; s02 += x0 * w2; s03 += x0 * w3;
        s10 += x1 * w0; s11 += x1 * w1; s12 += x1 * w2; s13 += x1 * w3;
        s20 += x2 * w0; s21 += x2 * w1; s22 += x2 * w2; s23 += x2 * w3;
        s30 += x3 * w0; s31 += x3 * w1; s32 += x3 * w2; s33 += x3 * w3;
      }
      const o0 = outOff + i * N + j, o1 = o0 + N, o2 = o1 + N, o3 = o2 + N;
      if (accumulate) {
        out[o0] += s00; out[o0 + 1] += s01; out[o0 + 2] += s02; out[o0 + 3] += s03;
        out[o1] += s10; out[o1 + 1] += s11; out[o1 + 2] += s12; out[o1 + 3] += s13;
        out[o2] += s20; out[o2 + 1] += s21; out[o2 + 2] += s22; out[o2 + 3] += s23;
        out[o3] += s30; out[o3 + 1] += s31; out[o3 + 2] += s32; out[o3 + 3] += s33;
      } else {
        out[o0] = s00; out[o0 + 1] = s01; out[o0 + 2] = s02; out[o0 + 3] = s03;
        out[o1] = s10; out[o1 + 1] = s11; out[o1 + 2] = s12; out[o1 + 3] = s13;
        out[o2] = s20; out[o2 + 1] = s21; out[o2 + 2] = s22; out[o2 + 3] = s23;
        out[o3] = s30; out[o3 + 1] = s31; out[o3 + 2] = s32; out[o3 + 3] = s33;
      }
    }
    for (; j < N; j++) {
      for (let r = 0; r < 4; r++) dotInto(a, b, out, aOff + (i + r) * K, bOff + j * K, outOff + (i + r) * N + j, K, accumulate);
    }
  }
  for (; i < M; i++) {
    for (let j = 0; j < N; j++) dotInto(a, b, out, aOff + i * K, bOff + j * K, outOff + i * N + j, K, accumulate);
  }
}

function dotInto(a: Float32Array, b: Float32Array, out: Float32Array, ao: number, bo: number, oo: number, K: number, acc: boolean): void {
  let s = 0;
  for (let k = 0; k < K; k++) s += a[ao + k]! * b[bo + k]!;
  out[oo] = acc ? out[oo]! + s : s;
}

/** out[M,N] = a[K,M]ᵀ · b[K,N] (+ out when `accumulate`): the weight-gradient product dW = dYᵀ · X. */
export function matmulAtB(a: Float32Array, b: Float32Array, out: Float32Array, M: number, N: number, K: number, accumulate = false): void {
  if (!accumulate) out.fill(0, 0, M * N);
  // Row-axpy form: for each k, out[m,:] += a[k,m] · b[k,:] — contiguous in the inner loop.
  for (let k = 0; k < K; k++) {
    const ak = k * M, bk = k * N;
    for (let m = 0; m < M; m++) {
      const x = a[ak + m]!;
      if (x === 0) continue;
      const om = m * N;
      for (let n = 0; n < N; n++) out[om + n] += x * b[bk + n]!;
    }
  }
}

/** Transpose of a row-major [R,C] matrix into a new [C,R] array. */
export function transpose(src: Float32Array, R: number, C: number): Float32Array {
  const out = new Float32Array(R * C);
  // Tiled to keep both reads and writes within a few cache lines.
  const T = 32;
  for (let r0 = 0; r0 < R; r0 += T) {
    const r1 = Math.min(R, r0 + T);
    for (let c0 = 0; c0 < C; c0 += T) {
      const c1 = Math.min(C, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * R + r] = src[r * C + c]!;
    }
  }
  return out;
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
 * The two products of a frozen linear layer: the forward y = x · Wᵀ and the
 * input gradient dX = dY · W. Pluggable so the tape backend can run them on
 * the CPU backend's fast kernels; the default is the JavaScript kernel above.
 */
export interface LinearKernel {
  /** y[M,N] = x[M,K] · W[N,K]ᵀ */
  forward(x: Float32Array, M: number, K: number, w: Tensor | QuantizedTensor): Float32Array;
  /** dX[M,K] = g[M,N] · W[N,K] */
  backwardInput(g: Float32Array, M: number, N: number, w: Tensor | QuantizedTensor): Float32Array;
  /**
   * out[M,N] (+)= a[M,K] · b[N,K]ᵀ on transient host arrays (matmulABt's contract), for the
   * products of trainable weights (LoRA's A and B, a head) and attention. Absent: the JavaScript kernels.
   */
  gemm?: typeof matmulABt;
  /** y[M,N] = x[M,K] · w[N,K]ᵀ for a trainable float32 weight, with the bits `forward` gives that weight frozen. */
  forwardF32?(x: Float32Array, M: number, K: number, w: Float32Array, N: number): Float32Array;
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
  transposeInto(x, M, K, t);
  activationT.unshift({ src: x, K, buf, t });
  return t;
}

/** A reusable buffer for a transpose that one product consumes at once (dYᵀ of a weight gradient). */
let scratchT = new Float32Array(0);

// Between backward passes nothing is kept (a model's activations can be large).
onBackwardEnd(() => {
  activationT.length = 0;
  scratchT = new Float32Array(0);
});

export function transposedScratch(src: Float32Array, R: number, C: number): Float32Array {
  if (scratchT.length < R * C) scratchT = new Float32Array(Math.max(R * C, Math.ceil(scratchT.length * 1.25)));
  const t = scratchT.subarray(0, R * C);
  transposeInto(src, R, C, t);
  return t;
}

/** dst[C, R] = src[R, C]ᵀ (tiled, as `transpose`). */
function transposeInto(src: Float32Array, R: number, C: number, dst: Float32Array): void {
  const T = 32;
  for (let r0 = 0; r0 < R; r0 += T) {
    const r1 = Math.min(R, r0 + T);
    for (let c0 = 0; c0 < C; c0 += T) {
      const c1 = Math.min(C, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * R + r] = src[r * C + c]!;
    }
  }
}

/** Rows of a quantized W dequantized at a time by the products below (a few hundred KiB, never the whole matrix). */
const QUANT_CHUNK_ROWS = 64;

/**
 * y[M,N] = x · Wᵀ (forward) or dX[M,K] = g · W (backward) for a quantized W [N, K],
 * dequantizing QUANT_CHUNK_ROWS rows at a time with ggml's formulas and
 * multiplying each chunk with `gemm` (C (+)= A · Bᵀ, as matmulABt).
 */
export function quantLinearProduct(
  a: Float32Array, M: number, w: QuantizedTensor, transposeW: boolean,
  gemm: (a: Float32Array, b: Float32Array, out: Float32Array, M: number, N: number, K: number, accumulate: boolean) => void,
): Float32Array {
  const [N, K] = w.shape;
  const S = Math.min(QUANT_CHUNK_ROWS, N);
  const rows = new Float32Array(S * K);
  const out = new Float32Array(M * (transposeW ? K : N));
  const part = new Float32Array(M * S);
  const ac = new Float32Array(M * S);
  const rowsT = transposeW ? new Float32Array(K * S) : rows;
  for (let n0 = 0; n0 < N; n0 += S) {
    const s = Math.min(S, N - n0);
    dequantizeRows(w.type, w.data, K, n0, n0 + s, rows);
    if (!transposeW) {
      // y[:, n0:n0+s] = x · chunkᵀ
      gemm(a, rows, part, M, s, K, false);
      for (let m = 0; m < M; m++) out.set(part.subarray(m * s, m * s + s), m * N + n0);
    } else {
      // dX += g[:, n0:n0+s] · chunk = g_c · (chunkᵀ)ᵀ
      for (let r = 0; r < s; r++) for (let k = 0; k < K; k++) rowsT[k * s + r] = rows[r * K + k]!;
      for (let m = 0; m < M; m++) ac.set(a.subarray(m * N + n0, m * N + n0 + s), m * s);
      gemm(ac, rowsT, out, M, K, s, n0 > 0);
    }
  }
  return out;
}

const jsGemm = (a: Float32Array, b: Float32Array, out: Float32Array, M: number, N: number, K: number, acc: boolean) =>
  matmulABt(a, b, out, M, N, K, acc);

export const jsLinearKernel: LinearKernel = {
  forward(x, M, K, w) {
    if (w instanceof QuantizedTensor) return quantLinearProduct(x, M, w, false, jsGemm);
    const N = w.shape[0]!;
    const y = new Float32Array(M * N);
    matmulABt(x, weightF32(w), y, M, N, K);
    return y;
  },
  backwardInput(g, M, N, w) {
    if (w instanceof QuantizedTensor) return quantLinearProduct(g, M, w, true, jsGemm);
    const K = w.shape[1]!;
    const dx = new Float32Array(M * K);
    matmulABt(g, weightTransposedF32(w), dx, M, K, N);
    return dx;
  },
};
