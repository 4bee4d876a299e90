/**
 * The backend interface: the model says *what* to compute (linear, rmsNorm,
 * rope, attention…), a backend says *how*. The CPU backend (lib/backend/cpu/)
 * computes eagerly; the WebGPU backend (gpu/) records every op into one
 * command encoder and submits only when something is read. Hence:
 *
 *  - every op returns a DeviceTensor handle synchronously;
 *  - only `read()` is async (it is the one place a GPU backend submits and waits);
 *  - host-side arguments (token ids, masks, rope tables, indices) are plain
 *    typed arrays, copied by the backend at call time (the caller may reuse them);
 *  - ops never mutate their inputs, except `kvAppend`, which consumes its
 *    `cache` argument (see there).
 *
 * Shapes use these letters: B batch, T new tokens in this call, P tokens already
 * in the KV cache, S = P + T key length, H hidden size, V vocab, n query heads,
 * k kv heads (n % k == 0), D head dim, I intermediate size, N rows.
 * Activations are float32. Weights uploaded as f16/bf16 stay 16-bit on the device.
 */
import type { DType } from "../tensor/dtype.js";
import type { Tensor } from "../tensor/tensor.js";
import type { QuantizedTensor, QuantType } from "../tensor/quantized.js";
import type { TokenSelectSettings, TokenSelector } from "./token-select.js";

export type Device = "cpu" | "webgpu";

/** An opaque tensor owned by one backend. Shapes are row-major and dense unless an op says otherwise. */
export interface DeviceTensor {
  readonly shape: readonly number[];
  /** Storage dtype: "f32" for every activation; weights may be "f16" / "bf16". */
  readonly dtype: DType;
  /**
   * Set on a weight kept in a ggml block encoding (uploadQuantized): its storage
   * is those blocks and `dtype` is "f32", the dtype it computes and reads back as.
   */
  readonly quant?: QuantType;
}

/** Which keys each query may attend to, for `attention`. */
export interface AttentionMask {
  /**
   * Absolute position in the key sequence of query row 0 (= P, the cached length).
   * Causal rule: query i attends key j iff j <= queryOffset + i.
   */
  readonly queryOffset: number;
  /**
   * Optional padding mask [B, S] (row-major, 1 = real token, 0 = padding), over
   * all keys (cached + new), as HF's 2-D `attention_mask`. Absent = no padding.
   * A query row that may attend to no key at all (a left-padding position) gets
   * uniform weights over all S keys, as HF's eager attention does (its additive
   * mask is the same finite minimum everywhere in such a row).
   */
  readonly keyMask?: Uint8Array;
}

export interface AttentionOptions {
  /** Multiplies q·k (HF: head_dim ** -0.5). */
  readonly scale: number;
  /** Also return the post-softmax weights [B, n, T, S] (for output_attentions / hooks). */
  readonly returnWeights?: boolean;
}

export interface AttentionResult {
  /** [B, T, n*D]: heads already merged, ready for o_proj. */
  readonly out: DeviceTensor;
  /** [B, n, T, S] post-softmax weights, only when `returnWeights`. */
  readonly weights?: DeviceTensor;
}

/** A LoRA path beside a linear layer: y += scaling · (x · Aᵀ) · Bᵀ, A [r, in], B [out, r]. */
export interface LowRankPath {
  readonly A: DeviceTensor;
  readonly B: DeviceTensor;
  readonly scaling: number;
}

/** A linear layer with its LoRA path (Backend.loraLinear). */
export interface LoraLayer {
  readonly weight: DeviceTensor;
  readonly bias: DeviceTensor | undefined;
  readonly lora: LowRankPath;
}

export interface Backend {
  readonly device: Device;
  /** Human-readable description ("cpu (wasm simd, 2 threads)", adapter name…). */
  readonly description: string;

  // ---------------------------------------------------------------- memory
  /** Copies a host tensor to the device. f16/bf16 stay 16-bit (weights); f32 stays f32. */
  upload(t: Tensor): DeviceTensor;
  /**
   * Keeps a weight matrix [out, in] in its ggml block encoding on the device
   * (lib/tensor/quantized.ts): `linear`/`linearMany` and `embedding` take the
   * result like any weight and dequantize inside their kernels; `read` gives
   * the dequantized values. Absent on a backend without such kernels: the
   * loader then dequantizes to float32 itself.
   */
  uploadQuantized?(q: QuantizedTensor): DeviceTensor;
  /**
   * Room for `bytes` in the memory the backend keeps weights in, for a loader
   * to read a weight straight into: `upload`/`uploadQuantized` of a tensor
   * over exactly these bytes takes them without a copy. Absent, or undefined
   * when there is no room: the loader reads into a buffer of its own.
   */
  hostBytes?(bytes: number): Uint8Array | undefined;
  /** Reads a tensor back as a dense host float32 Tensor (flushes pending work on a GPU). */
  read(t: DeviceTensor): Promise<Tensor>;
  /** Frees device memory early (optional to call; a released tensor must not be used again). */
  release(t: DeviceTensor): void;
  /** Frees everything this backend holds (worker threads, GPU device). */
  dispose(): void;

  // ---------------------------------------------------------------- ops
  /**
   * Embedding gather: table [V, H] (any dtype), ids [B*T] (row-major over B, T;
   * every id in 0..V-1, already validated by the caller) → [B, T, H] f32.
   */
  embedding(table: DeviceTensor, ids: Int32Array, batch: number, seqLen: number): DeviceTensor;

  /** RMSNorm over the last dim: x [..., H], weight [H] → [..., H]; y = x / sqrt(mean(x²) + eps) * weight. */
  rmsNorm(x: DeviceTensor, weight: DeviceTensor, eps: number): DeviceTensor;

  /**
   * Linear layer as torch.nn.functional.linear: x [..., in], weight [out, in]
   * (f32, f16 or bf16), optional bias [out] → [..., out] = x @ weight^T + bias.
   */
  linear(x: DeviceTensor, weight: DeviceTensor, bias?: DeviceTensor): DeviceTensor;

  /**
   * Several linear layers on the same input (q/k/v, gate/up): the same result as
   * calling `linear` for each weight in turn; a backend may fuse them (one pass
   * over x, one dispatch). weights[i] [out_i, in], biases[i] [out_i] or undefined.
   */
  linearMany(x: DeviceTensor, weights: readonly DeviceTensor[], biases?: readonly (DeviceTensor | undefined)[]): DeviceTensor[];

  /**
   * Linear layers with PEFT's LoRA paths over one x (one layer, or q/k/v,
   * gate/up), each as one op: linear(x, weight, bias) + scaling · (x · Aᵀ) ·
   * Bᵀ, the same numbers as composing it from `linear`, `scale` and `add`
   * (what the model does where this is absent). A backend that records a tape
   * implements it to keep one node, and one gradient of x, per adapted layer
   * instead of five; one output per layer, in order.
   */
  loraLinear?(x: DeviceTensor, layers: readonly LoraLayer[]): DeviceTensor[];

  /** Elementwise a + b, same shapes. */
  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor;

  /** Elementwise x * factor. */
  scale(x: DeviceTensor, factor: number): DeviceTensor;

  /** SwiGLU gate: silu(gate) * up, same shapes [..., I]. */
  siluMul(gate: DeviceTensor, up: DeviceTensor): DeviceTensor;

  /**
   * Splits heads and optionally applies rotary embedding (HF's rotate_half
   * convention: pairs (i, i + D/2)): x [B, T, heads*D] → [B, heads, T, D].
   * cos/sin [B, T, D/2] f32 (already including any attention scaling factor),
   * host arrays; omit both for no rotation (values).
   */
  splitHeads(x: DeviceTensor, heads: number, rope?: { cos: Float32Array; sin: Float32Array }): DeviceTensor;

  /** The inverse of splitHeads without rope: x [B, heads, T, D] → [B, T, heads*D]. */
  mergeHeads(x: DeviceTensor): DeviceTensor;

  /**
   * KV-cache append along the sequence dim: cache [B, k, P, D] (or undefined
   * for P = 0), x [B, k, T, D] → [B, k, P+T, D]. The backend may grow `cache`'s
   * storage in place (amortized O(T) per call), so the `cache` handle must not
   * be used after this call; use only the returned one. The result may be a
   * strided view (capacity > P+T): only `attention`, `kvAppend`, `selectBatch`
   * and `read` are guaranteed to accept it. `reserve` (rows per head): when
   * this call allocates storage, room for at least that many positions, so a
   * generate that knows its final length allocates the cache once (HF's
   * StaticCache max_cache_len) instead of growing it, with a copy, O(log T) times.
   */
  kvAppend(cache: DeviceTensor | undefined, x: DeviceTensor, reserve?: number): DeviceTensor;

  /**
   * Scaled dot-product attention with causal + padding mask and GQA (query head
   * h reads kv head floor(h / (n/k)); K/V are never copied per query head):
   * q [B, n, T, D], k/v [B, k, S, D] (may be kvAppend results) → out [B, T, n*D],
   * plus weights [B, n, T, S] when asked. Softmax in float32.
   */
  attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, mask: AttentionMask, opts: AttentionOptions): AttentionResult;

  /**
   * The second half of attention with given weights (for a hook that replaces
   * the attention pattern): weights [B, n, T, S], v [B, k, S, D] (may be a
   * kvAppend result) → [B, T, n*D] = weights @ V per head (GQA as in `attention`).
   */
  attendWith(weights: DeviceTensor, v: DeviceTensor): DeviceTensor;

  /**
   * Picks positions per batch row: x [B, T, H], index [B*K] (row b's K positions,
   * each in 0..T-1) → [B, K, H]. Used for logits_to_keep and seq-cls pooling.
   */
  selectPositions(x: DeviceTensor, index: Int32Array, perRow: number): DeviceTensor;

  /**
   * Gathers batch rows: x [B, ...] (dense or a kvAppend result), rows [B'] with
   * entries in 0..B-1 → [B', ...]. Used to reorder / expand KV caches for beam search.
   */
  selectBatch(x: DeviceTensor, rows: Int32Array): DeviceTensor;

  /**
   * Next-token selection on the device for generate (lib/backend/token-select.ts):
   * a selector for these settings, or undefined when this backend cannot do
   * them (generate then reads the logits and selects on the host). Absent on the CPU.
   */
  tokenSelector?(settings: TokenSelectSettings): TokenSelector | undefined;
}

/**
 * A LoRA layer composed from a backend's ops in PEFT's order: the base output
 * first, then scaling · B(A(x)) added to it (for a backend without `loraLinear`).
 */
export function loraLinearByParts(be: Backend, x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor | undefined, lora: LowRankPath): DeviceTensor {
  const y = be.linear(x, weight, bias); // [..., out]
  return be.add(y, be.scale(be.linear(be.linear(x, lora.A), lora.B), lora.scaling)); // A [r, in], B [out, r]
}
