/**
 * Runs the CPU backend's linear layers. Portable path: the JavaScript blocked
 * kernel (lib/tensor/matmul.ts). Fast path (when WebAssembly SIMD and shared
 * memory are there): weights live in shared WebAssembly memories (as many as
 * they need, 4 GiB each at most) and the SIMD kernels widen f16/bf16 or
 * dequantize blocks in registers; large matrices are split by output rows
 * across worker threads sharing those memories (wasm-engine.ts).
 */
import type { DType } from "../../tensor/dtype.js";
import type { QuantType } from "../../tensor/quantized.js";
import { runJobJs } from "./quant-js.js";
import type { AttentionShapes } from "../../tensor/ops.js";
import { addBias } from "./bias.js";
import { DEFAULT_MEMORY_CAP, WasmLinearEngine } from "./wasm-engine.js";
import { LlamaError } from "../../errors.js";

export interface LinearEngineOptions {
  /** Use the WebAssembly SIMD kernels when available (default true; env LLAMA_TS_WASM=0 turns them off;
   *  LLAMA_TS_DEBUG=1 reports why worker threads could not start). */
  wasm?: boolean;
  /** Total threads including the calling one (default: CPU cores, at most 4; env LLAMA_TS_THREADS). */
  threads?: number;
  /**
   * Decode products (one token) on Q4_0 / Q8_0 / Q4_K / Q6_K weights. "exact" (default): every
   * weight dequantized exactly, products and sums in float32 — the same bits as
   * the float32 kernel on the dequantized matrix. "int8" (env LLAMA_TS_QUANT_DOT=int8):
   * llama.cpp's method, about 2–3× faster: x is rounded to Q8_0 (8-bit codes, one
   * f16 scale per 32 values) and each block is an integer dot product. Its error
   * is x's rounding: per output |Δy| ≤ Σ_blocks (max|x_b| / 254 + 2⁻¹¹·max|x_b|)·Σ_b|w|;
   * (test/quant-kernels.test.ts checks it). Measured: about 4e-4 of Σ|x·w| on random
   * 2048-wide rows; the default model quantized all-Q4_0 / all-Q8_0 moves its logits
   * by at most 0.63% / 0.50% of their range over 20 decode steps, so greedy text can
   * differ where two tokens are nearly tied. Prefill and the other types stay exact.
   */
  quantDot?: "exact" | "int8";
  /**
   * MiB of weights and caches one WebAssembly memory takes before the next
   * memory is started (default 3968: a memory addresses 4 GiB, and 128 MiB
   * stay free for the products' workspace; env LLAMA_TS_WASM_MEMORY_MIB).
   * A smaller cap spreads a small model over several memories (tests).
   */
  memoryMiB?: number;
}

/** One weight matrix applied to the shared input. */
export interface LinearJob {
  /** [N, K]: float words, or ggml blocks (bytes) when `quant` is set. */
  w: Float32Array | Uint16Array | Uint8Array;
  dtype: DType;
  /** The block encoding of `w` (lib/tensor/quantized.ts); absent for f32/f16/bf16. */
  quant?: QuantType;
  N: number;
  /** [N] */
  bias?: Float32Array;
  /** [M, N] output */
  y: Float32Array;
}

/** One low-rank term of a runLowRank call: jobs[y] += s·jobs[u]·e (scaleFirst: u scaled first), and xt. */
export interface LowRankEpilogue {
  /** The index of the job whose output gets the term, and of the (rank-r) job giving u. */
  y: number;
  u: number;
  /** [r, N of jobs[y]] */
  e: Float32Array;
  s: number;
  scaleFirst: boolean;
  xt?: { b: Float32Array; out: Float32Array };
}

export interface LinearEngine {
  readonly description: string;
  /** Takes a weight's storage; may move it into the kernels' memory and return the new view. */
  adopt<T extends Float32Array | Uint16Array | Uint8Array>(data: T, dtype: DType): T;
  /** Room in the kernels' memory for a weight to be read into; `adopt` of a view over exactly it copies nothing. */
  hostBytes?(bytes: number): Uint8Array | undefined;
  /** Whether `data` is exactly room from hostBytes not yet adopted. */
  isLent?(data: ArrayBufferView): boolean;
  /** y_j = x [M, K] @ W_j^T + b_j for every job. */
  run(x: Float32Array, M: number, K: number, jobs: readonly LinearJob[]): void;
  /**
   * The jobs on x, then each term's jobs[y] += s·jobs[u]·e (scaleFirst: u = s·u, then y += u·e; e [r, N])
   * before the outputs leave the engine's memory: LoRA layers' forwards over one x, or one layer's input
   * gradient (with xt, xt.out += xᵀ·xt.b: B's gradient from the same g). False (nothing written) when it cannot.
   */
  runLowRank?(x: Float32Array, M: number, K: number, jobs: readonly LinearJob[], terms: readonly LowRankEpilogue[]): boolean;
  /** A float32 buffer the engine's kernels can read in place (KV caches). */
  allocF32(length: number): Float32Array;
  /** Attention on the engine's kernels; false when it cannot (the caller uses the JavaScript kernel). */
  attention?(
    q: Float32Array, kd: Float32Array, vd: Float32Array, s: AttentionShapes, scale: number,
    queryOffset: number, keyMask: Uint8Array | undefined, out: Float32Array, weights: Float32Array | undefined,
  ): boolean;
  /** out = silu(gate) · up on the engine's kernels (float32, as PyTorch); false when it cannot. */
  siluMul?(gate: Float32Array, up: Float32Array, out: Float32Array): boolean;
  /** siluMul's gradients for the output gradient g (dGate, dUp: null when not wanted; dUp may be g); false when it cannot. */
  siluMulBackward?(gate: Float32Array, up: Float32Array, g: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null): boolean;
  /** Softmax statistics of rows of x (SoftmaxRowsKernel's contract, lib/autograd/loss.ts); undefined when it cannot. */
  softmaxRows?(x: Float32Array, V: number, rows: Int32Array, probs: Float32Array | undefined): Float64Array | undefined;
  /** RMSNorm's gradients over rows of H for the output gradient g (dx may be g; dw [H] is added to); false when it cannot. */
  rmsNormBackward?(x: Float32Array, w: Float32Array, g: Float32Array, rstd: Float32Array, H: number,
    dx: Float32Array | null, dw: Float32Array | null): boolean;
  /** RMSNorm of rows of H (rmsNormInto's bits): out, and rstd when given; false when it cannot. */
  rmsNorm?(x: Float32Array, w: Float32Array, eps: number, H: number, out: Float32Array, rstd?: Float32Array): boolean;
  /** splitHeads with RoPE (splitHeadsInto's bits): x [B, T, heads·D] → out [B, heads, T, D]; false when it cannot. */
  ropeForward?(x: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, heads: number, D: number,
    out: Float32Array): boolean;
  /** splitHeads' RoPE gradient: g [B, heads, T, D] → dx [B, T, heads·D] (dx may be g); false when it cannot. */
  ropeBackward?(g: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, heads: number, D: number,
    dx: Float32Array): boolean;
  /**
   * out[M,N] (+)= a[M,K] · b[N,K]ᵀ for small transient matrices (attention's
   * products in training), starting at the given element offsets; false when it cannot.
   */
  gemm?(a: Float32Array, b: Float32Array, out: Float32Array, M: number, N: number, K: number,
    accumulate: boolean, aOff: number, bOff: number, outOff: number): boolean;
  /** out[M,N] += s · a[M,J] · b[J,N] with a small inner J (a LoRA rank); false when it cannot. */
  gemmNN?(a: Float32Array, b: Float32Array, out: Float32Array, M: number, J: number, N: number, s: number): boolean;
  /** out[S,D] += a[R,S]ᵀ · b[R,D] (a weight gradient summed over R rows); false when it cannot. */
  gemmTN?(a: Float32Array, b: Float32Array, out: Float32Array, R: number, S: number, D: number): boolean;
  /**
   * Attention's backward from the forward's weights P (wasm-engine.ts describes the
   * layouts); writes the requested gradients; false when it cannot.
   */
  attentionBackward?(
    P: Float32Array, dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, rowScale: Float32Array,
    s: AttentionShapes, dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null,
  ): boolean;
  dispose(): void;
}

export class JsLinearEngine implements LinearEngine {
  readonly description = "javascript kernels, 1 thread";

  adopt<T extends Float32Array | Uint16Array | Uint8Array>(data: T, _dtype?: DType): T {
    return data;
  }

  run(x: Float32Array, M: number, K: number, jobs: readonly LinearJob[]): void {
    for (const j of jobs) runJobJs(x, M, K, j);
  }

  allocF32(length: number): Float32Array {
    return new Float32Array(length);
  }

  dispose(): void {}
}

export async function createLinearEngine(options: LinearEngineOptions = {}): Promise<LinearEngine> {
  const envWasm = process.env.LLAMA_TS_WASM;
  const wasm = options.wasm ?? (envWasm === undefined ? true : envWasm !== "0");
  if (wasm) {
    const envThreads = Number(process.env.LLAMA_TS_THREADS);
    const quantDot = options.quantDot ?? (process.env.LLAMA_TS_QUANT_DOT === "int8" ? "int8" : "exact");
    const threads = options.threads ?? (Number.isInteger(envThreads) && envThreads > 0 ? envThreads : undefined);
    const engine = await WasmLinearEngine.create(threads, quantDot, memoryCapBytes(options.memoryMiB));
    if (engine) return engine;
  }
  return new JsLinearEngine();
}

/** The per-memory cap in bytes from the option, else LLAMA_TS_WASM_MEMORY_MIB, else the default. */
function memoryCapBytes(option: number | undefined): number {
  const env = process.env.LLAMA_TS_WASM_MEMORY_MIB;
  const [mib, what] = option !== undefined ? [option, "memoryMiB"] : env !== undefined && env !== "" ? [Number(env), "LLAMA_TS_WASM_MEMORY_MIB"] : [undefined, ""];
  if (mib === undefined) return DEFAULT_MEMORY_CAP;
  if (!(Number.isFinite(mib) && mib > 0 && mib <= 4096)) {
    throw new LlamaError(`${what}: ${option ?? JSON.stringify(env)} is not a size in MiB above 0 and at most 4096 (bytes of weights per WebAssembly memory)`);
  }
  return Math.round(mib * 2 ** 20);
}
