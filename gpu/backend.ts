/**
 * The WebGPU implementation of lib's Backend interface. Every op records into
 * the executor's command encoder and returns at once; `read()` (or the
 * next-token helpers) submits the whole recorded forward pass as one command
 * buffer and waits for just the bytes asked for. RMSNorm, decode-sized linear
 * products and splitHeads are deferred so that their consumers can fuse them
 * (ops/fused-linear.ts, ops/heads.ts): a decode layer is 6 dispatches.
 */
import type {
  AttentionMask, AttentionOptions, AttentionResult, Backend, DeviceTensor,
} from "../lib/backend/backend.js";
import type { Tensor } from "../lib/tensor/tensor.js";
import type { QuantizedTensor } from "../lib/tensor/quantized.js";
import type { AllocatorStats } from "./buffers.js";
import { limitsRecord, type AdapterSummary, type F16Mode, type GpuOptions } from "./device.js";
import * as attn from "./ops/attention.js";
import * as basic from "./ops/basic.js";
import * as fused from "./ops/fused-linear.js";
import * as headOps from "./ops/heads.js";
import type { LinearOptions } from "./ops/linear.js";
import * as quant from "./ops/quant.js";
import * as sampling from "./ops/sampling.js";
import { createTokenSelector } from "./ops/select.js";
import type { TokenSelectSettings, TokenSelector } from "../lib/backend/token-select.js";
import { GpuRuntime, act, gpu } from "./runtime.js";

export type WebGpuBackendOptions = GpuOptions;

export class WebGpuBackend implements Backend {
  readonly device = "webgpu" as const;

  private constructor(readonly runtime: GpuRuntime) {}

  static async create(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    return new WebGpuBackend(await GpuRuntime.create(options));
  }

  get description(): string {
    const i = this.runtime.ctx.info;
    return `webgpu (${i.description || i.device || i.vendor}; f16 ${this.f16Mode})`;
  }

  /** The adapter Dawn picked. */
  get adapter(): AdapterSummary {
    return this.runtime.ctx.info;
  }

  /** How f16 weights are read: natively (shader-f16) or packed in u32. */
  get f16Mode(): F16Mode {
    return this.runtime.ctx.f16Mode;
  }

  get features(): string[] {
    return [...this.runtime.ctx.device.features].sort();
  }

  get limits(): Record<string, number> {
    return limitsRecord(this.runtime.ctx.device.limits);
  }

  /** Bytes our allocator holds: weights, KV cache, scratch (in use + pooled), and the peak total. */
  memory(): AllocatorStats {
    return this.runtime.pool.stats();
  }

  /** Submits and counts: dispatches and command-buffer submits so far. */
  get counters(): { dispatches: number; submits: number } {
    return { dispatches: this.runtime.exec.dispatches, submits: this.runtime.exec.submits };
  }

  /** Waits for all submitted GPU work (benchmarks). */
  sync(): Promise<void> {
    return this.runtime.exec.sync();
  }

  // ---------------------------------------------------------------- memory
  upload(t: Tensor): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return this.runtime.upload(t);
  }

  /** Keeps a weight in its ggml blocks (gpu/ops/quant.ts): GPU memory = the file's bytes. */
  uploadQuantized(q: QuantizedTensor): DeviceTensor {
    return quant.uploadQuantized(this.runtime, q);
  }

  read(t: DeviceTensor): Promise<Tensor> {
    const g = gpu(t, "read()");
    return g.quant ? quant.readQuantized(this.runtime, g) : this.runtime.read(g);
  }

  release(t: DeviceTensor): void {
    this.runtime.release(gpu(t, "release()"));
  }

  dispose(): void {
    this.runtime.destroy();
  }

  // ---------------------------------------------------------------- ops
  embedding(table: DeviceTensor, ids: Int32Array, batch: number, seqLen: number): DeviceTensor {
    this.runtime.ctx.assertAlive();
    const tb = gpu(table, "embedding table");
    if (tb.quant) return quant.quantEmbedding(this.runtime, tb, ids, batch, seqLen);
    return basic.embedding(this.runtime, tb, ids, batch, seqLen);
  }

  rmsNorm(x: DeviceTensor, weight: DeviceTensor, eps: number): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return fused.rmsNorm(this.runtime, act(x, "rmsNorm input"), gpu(weight, "rmsNorm weight"), eps);
  }

  linear(x: DeviceTensor, weight: DeviceTensor, bias?: DeviceTensor, opts?: LinearOptions): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return fused.linear(this.runtime, act(x, "linear input"), gpu(weight, "linear weight"), bias && gpu(bias, "linear bias"), opts);
  }

  linearMany(x: DeviceTensor, weights: readonly DeviceTensor[], biases?: readonly (DeviceTensor | undefined)[]): DeviceTensor[] {
    this.runtime.ctx.assertAlive();
    return fused.linearMany(this.runtime, act(x, "linear input"), weights.map((w) => gpu(w, "linear weight")),
      biases?.map((b) => b && gpu(b, "linear bias")));
  }

  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return fused.add(this.runtime, act(a, "add input"), act(b, "add input"));
  }

  scale(x: DeviceTensor, factor: number): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return basic.scale(this.runtime, act(x, "scale input"), factor);
  }

  siluMul(gate: DeviceTensor, up: DeviceTensor): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return fused.siluMul(this.runtime, act(gate, "siluMul gate"), act(up, "siluMul up"));
  }

  splitHeads(x: DeviceTensor, heads: number, rope?: { cos: Float32Array; sin: Float32Array }): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return headOps.splitHeads(this.runtime, act(x, "splitHeads input"), heads, rope);
  }

  mergeHeads(x: DeviceTensor): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return basic.mergeHeads(this.runtime, act(x, "mergeHeads input"));
  }

  kvAppend(cache: DeviceTensor | undefined, x: DeviceTensor, reserve = 0): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return headOps.kvAppend(this.runtime, cache && gpu(cache, "kvAppend cache"), gpu(x, "kvAppend input"), reserve);
  }

  attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, mask: AttentionMask,
    opts: AttentionOptions & attn.AttentionKernelChoice): AttentionResult {
    this.runtime.ctx.assertAlive();
    return attn.attention(this.runtime, gpu(q, "attention queries"), gpu(k, "attention keys"), gpu(v, "attention values"), mask, opts);
  }

  attendWith(weights: DeviceTensor, v: DeviceTensor): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return attn.attendWith(this.runtime, gpu(weights, "attendWith weights"), gpu(v, "attendWith values"));
  }

  selectPositions(x: DeviceTensor, index: Int32Array, perRow: number): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return basic.selectPositions(this.runtime, act(x, "selectPositions input"), index, perRow);
  }

  selectBatch(x: DeviceTensor, rows: Int32Array): DeviceTensor {
    this.runtime.ctx.assertAlive();
    return basic.selectBatch(this.runtime, gpu(x, "selectBatch input"), rows);
  }

  /** generate's next-token step on the GPU (gpu/ops/select.ts); undefined for top_k 0 or > 256 when sampling. */
  tokenSelector(settings: TokenSelectSettings): TokenSelector | undefined {
    this.runtime.ctx.assertAlive();
    return createTokenSelector(this.runtime, settings);
  }

  // ---------------------------------------------------------------- next token (GPU-side, beyond the Backend interface)
  /** Greedy next ids from logits [..., V]: one id per row; reads back 4 bytes per row. */
  argmax(logits: DeviceTensor): Promise<Int32Array> {
    this.runtime.ctx.assertAlive();
    return sampling.argmax(this.runtime, gpu(logits, "argmax input"));
  }

  /** The k largest logits per row, sorted, computed on the GPU. */
  topK(logits: DeviceTensor, k: number): Promise<{ values: Float32Array; indices: Int32Array }> {
    this.runtime.ctx.assertAlive();
    return sampling.topK(this.runtime, gpu(logits, "topK input"), k);
  }

  /** Samples one id per row (temperature → top-k → top-p → min-p) with caller-supplied uniforms. */
  sample(logits: DeviceTensor, opts: sampling.SampleOptions): Promise<Int32Array> {
    this.runtime.ctx.assertAlive();
    return sampling.sample(this.runtime, gpu(logits, "sample input"), opts);
  }
}
