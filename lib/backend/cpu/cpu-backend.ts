/**
 * The CPU backend: eager float32 compute over contiguous typed arrays.
 * Weights keep their storage dtype (f16/bf16 are widened inside the matmul
 * kernels). Linear layers run on the WebAssembly SIMD kernels when the runtime
 * has them (lib/backend/cpu/wasm-*.ts), split across worker threads for large
 * matrices; everything else is plain JavaScript in lib/tensor/ops.ts.
 */
import { LlamaError } from "../../errors.js";
import { Tensor, numel } from "../../tensor/tensor.js";
import { bf16ToF32, f16ToF32, type DType } from "../../tensor/dtype.js";
import {
  addInto, attendWithInto, attentionInto, embeddingInto, mergeHeadsInto, rmsNormInto, scaleInto, siluMulInto, splitHeadsInto, type AttentionShapes,
} from "../../tensor/ops.js";
import type { AttentionMask, AttentionOptions, AttentionResult, Backend, DeviceTensor } from "../backend.js";
import { createLinearEngine, type LinearEngine, type LinearEngineOptions } from "./linear-engine.js";
import { dequantizeRows, type QuantizedTensor, type QuantType } from "../../tensor/quantized.js";

/**
 * A CPU tensor: a typed array plus shape. KV-cache tensors may have spare
 * capacity along dim 2. A quantized weight (`quant` set) holds its ggml blocks
 * as bytes in `data` (dtype "f32": what it computes and reads back as).
 */
export class CpuTensor implements DeviceTensor {
  constructor(
    readonly data: Float32Array | Uint16Array | Uint8Array,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** For 4-D [B, heads, S, D] cache tensors: allocated rows per head (>= S). */
    readonly capacity: number = shape.length === 4 ? shape[2]! : 0,
    readonly quant?: QuantType,
  ) {}

  get dense(): boolean {
    return this.shape.length !== 4 || this.capacity === this.shape[2];
  }
}

export type CpuBackendOptions = LinearEngineOptions;

function cpu(t: DeviceTensor, what: string): CpuTensor {
  if (!(t instanceof CpuTensor)) throw new LlamaError(`cpu backend: ${what} is not a CPU tensor (mixing devices?)`);
  return t;
}

function f32(t: DeviceTensor, what: string): Float32Array {
  const c = cpu(t, what);
  if (c.quant) throw new LlamaError(`cpu backend: ${what} must be float32, got a ${c.quant} weight`);
  if (c.dtype !== "f32") throw new LlamaError(`cpu backend: ${what} must be float32, got ${c.dtype}`);
  if (!c.dense) throw new LlamaError(`cpu backend: ${what} must be dense (a KV-cache view is not)`);
  return c.data as Float32Array;
}

function asF32(c: CpuTensor): Float32Array {
  if (c.quant) return dequantizeRows(c.quant, c.data as Uint8Array, c.shape[1]!, 0, c.shape[0]!, new Float32Array(numel(c.shape)));
  if (c.dtype === "f32") return c.data as Float32Array;
  return c.dtype === "f16" ? f16ToF32(c.data as Uint16Array) : bf16ToF32(c.data as Uint16Array);
}

function sameShape(a: DeviceTensor, b: DeviceTensor, op: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new LlamaError(`cpu backend ${op}: shapes [${a.shape.join(", ")}] and [${b.shape.join(", ")}] differ`);
  }
}

export class CpuBackend implements Backend {
  readonly device = "cpu" as const;
  private scores = new Float64Array(0);
  /** float32 copies of small f16/bf16 vectors (norm weights, biases), keyed by tensor. */
  private readonly widened = new WeakMap<CpuTensor, Float32Array>();

  private constructor(private readonly engine: LinearEngine) {}

  static async create(options: CpuBackendOptions = {}): Promise<CpuBackend> {
    return new CpuBackend(await createLinearEngine(options));
  }

  get description(): string {
    return `cpu (${this.engine.description})`;
  }

  upload(t: Tensor): DeviceTensor {
    return new CpuTensor(this.engine.adopt(t.data, t.dtype), t.shape, t.dtype);
  }

  hostBytes(bytes: number): Uint8Array | undefined {
    return this.engine.hostBytes?.(bytes);
  }

  /** Whether `data` is room from hostBytes that no upload has adopted yet. */
  isLent(data: ArrayBufferView): boolean {
    return this.engine.isLent?.(data) ?? false;
  }

  uploadQuantized(q: QuantizedTensor): DeviceTensor {
    return new CpuTensor(this.engine.adopt(q.data, "f32"), q.shape, "f32", 0, q.type);
  }

  async read(t: DeviceTensor): Promise<Tensor> {
    return this.readSync(t);
  }

  /** Synchronous read (the CPU backend computes eagerly). */
  readSync(t: DeviceTensor): Tensor {
    const c = cpu(t, "read()");
    if (!c.dense) {
      const [B, H, S, D] = c.shape as [number, number, number, number];
      const out = new Float32Array(B * H * S * D);
      const src = asF32(c);
      for (let bh = 0; bh < B * H; bh++) out.set(src.subarray(bh * c.capacity * D, bh * c.capacity * D + S * D), bh * S * D);
      return new Tensor(out, c.shape, "f32");
    }
    const data = c.dtype === "f32" && !c.quant ? (c.data as Float32Array).slice() : asF32(c);
    return new Tensor(data, c.shape, "f32");
  }

  release(t: DeviceTensor): void {
    // Garbage collection frees CPU tensors (weights in the wasm memory too, via a
    // FinalizationRegistry); releasing early is not needed.
    cpu(t, "release()");
  }

  dispose(): void {
    this.engine.dispose();
  }

  /** f32 view of a small vector weight (norm weight, bias), widened once. */
  private vector(t: DeviceTensor, what: string): Float32Array {
    const c = cpu(t, what);
    if (c.dtype === "f32" && !c.quant) return c.data as Float32Array;
    let w = this.widened.get(c);
    if (!w) {
      w = asF32(c);
      this.widened.set(c, w);
    }
    return w;
  }

  embedding(table: DeviceTensor, ids: Int32Array, batch: number, seqLen: number): DeviceTensor {
    const t = cpu(table, "embedding table");
    const [V, H] = t.shape as [number, number];
    if (ids.length !== batch * seqLen) throw new LlamaError(`cpu backend embedding: ${ids.length} ids for [${batch}, ${seqLen}]`);
    const out = embeddingInto(t.data, t.dtype, t.quant, V, H, ids, new Float32Array(ids.length * H));
    return new CpuTensor(out, [batch, seqLen, H], "f32");
  }

  rmsNorm(x: DeviceTensor, weight: DeviceTensor, eps: number): DeviceTensor {
    const H = x.shape[x.shape.length - 1]!;
    return new CpuTensor(this.rmsNormValues(f32(x, "rmsNorm input"), this.vector(weight, "rmsNorm weight"), eps, H), x.shape, "f32");
  }

  /** RMSNorm on host arrays (rstd [rows] filled when given): the engine's kernel when it has one (the same bits), else rmsNormInto. */
  rmsNormValues(x: Float32Array, w: Float32Array, eps: number, H: number, rstd?: Float32Array): Float32Array {
    const out = new Float32Array(x.length);
    if (!this.engine.rmsNorm?.(x, w, eps, H, out, rstd)) rmsNormInto(x, w, eps, H, out, rstd);
    return out;
  }

  linear(x: DeviceTensor, weight: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    return this.linearMany(x, [weight], [bias])[0]!;
  }

  linearMany(x: DeviceTensor, weights: readonly DeviceTensor[], biases?: readonly (DeviceTensor | undefined)[]): DeviceTensor[] {
    const { xd, M, K, lead, jobs } = this.linearJobs(x, weights, biases);
    this.engine.run(xd, M, K, jobs);
    return jobs.map((j) => new CpuTensor(j.y, [...lead, j.N], "f32"));
  }

  /**
   * LoRA layers' products over one x in one call where the engine can: for each layer y = x·wᵀ and
   * u = x·aᵀ (a of rank r), then y += s·u·e, or with scaleFirst u = s·u and y += u·e (e [r, N]); with
   * xt also xt.out += xᵀ·xt.b. The bits of linearMany, then gemmNN (and gemmTN) per layer. [y, u] per
   * layer, or undefined when the engine cannot (nothing computed).
   */
  linearLowRank(x: DeviceTensor, layers: readonly { w: DeviceTensor; a: DeviceTensor; e: Float32Array; s: number; xt?: { b: Float32Array; out: Float32Array } }[],
    scaleFirst: boolean): [CpuTensor, CpuTensor][] | undefined {
    const { xd, M, K, lead, jobs } = this.linearJobs(x, layers.flatMap((l) => [l.w, l.a]));
    const terms = layers.map(({ e, s, xt }, i) => ({ y: 2 * i, u: 2 * i + 1, e, s, scaleFirst, xt }));
    if (!this.engine.runLowRank?.(xd, M, K, jobs, terms)) return undefined;
    const out = jobs.map((j) => new CpuTensor(j.y, [...lead, j.N], "f32"));
    return layers.map((_, i) => [out[2 * i]!, out[2 * i + 1]!]);
  }

  /** The engine's jobs for x·wᵢᵀ (+ bᵢ): each weight checked against x, its output allocated. */
  private linearJobs(x: DeviceTensor, weights: readonly DeviceTensor[], biases?: readonly (DeviceTensor | undefined)[]) {
    const xd = f32(x, "linear input");
    const K = x.shape[x.shape.length - 1]!;
    const M = xd.length / K;
    const lead = x.shape.slice(0, -1);
    const jobs = weights.map((w, i) => {
      const c = cpu(w, "linear weight");
      const [N, Kw] = c.shape as [number, number];
      if (c.shape.length !== 2 || Kw !== K) {
        throw new LlamaError(`cpu backend linear: input [${x.shape.join(", ")}] does not match weight [${c.shape.join(", ")}]`);
      }
      const b = biases?.[i];
      return {
        w: c.data, dtype: c.dtype, quant: c.quant, N,
        bias: b ? this.vector(b, "linear bias") : undefined,
        y: new Float32Array(M * N),
      };
    });
    return { xd, M, K, lead, jobs };
  }

  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    sameShape(a, b, "add");
    const ad = f32(a, "add input");
    return new CpuTensor(addInto(ad, f32(b, "add input"), new Float32Array(ad.length)), a.shape, "f32");
  }

  scale(x: DeviceTensor, factor: number): DeviceTensor {
    const xd = f32(x, "scale input");
    return new CpuTensor(scaleInto(xd, factor, new Float32Array(xd.length)), x.shape, "f32");
  }

  /** Staging buffers (see `stage`), keyed by slot and length, least recently used first. */
  private readonly stages = new Map<number, Float32Array>();

  /**
   * A tensor over a copy of `data` in memory the engine's kernels read in place, for an
   * operand that is new on every call (a trained weight, the autograd tape's keys and
   * values): the product or attention it feeds runs as on an uploaded tensor, with the
   * same bits, without an allocation per call. The buffer is reused by the next `stage`
   * with the same slot and length: use the tensor before staging into that slot again.
   */
  stage(slot: number, data: Float32Array, shape: readonly number[]): CpuTensor {
    const key = slot * 2 ** 32 + data.length;
    let buf = this.stages.get(key);
    if (buf) this.stages.delete(key); // re-inserted below as the most recent
    else {
      if (this.stages.size >= 32) this.stages.delete(this.stages.keys().next().value!);
      buf = this.engine.allocF32(data.length);
    }
    this.stages.set(key, buf);
    buf.set(data);
    return new CpuTensor(buf, shape, "f32");
  }

  /**
   * out[M,N] (+)= a[M,K]·b[N,K]ᵀ on host arrays (the autograd tape's attention
   * products) on the wasm SIMD kernel; false when the engine has none (the caller
   * then uses its JavaScript kernel).
   */
  gemm(a: Float32Array, b: Float32Array, out: Float32Array, M: number, N: number, K: number,
    accumulate: boolean, aOff: number, bOff: number, outOff: number): boolean {
    return this.engine.gemm?.(a, b, out, M, N, K, accumulate, aOff, bOff, outOff) ?? false;
  }

  /** out[M,N] += s · a[M,J] · b[J,N] (the engine's gemm_nn); false when the engine cannot. */
  gemmNN(a: Float32Array, b: Float32Array, out: Float32Array, M: number, J: number, N: number, s: number): boolean {
    return this.engine.gemmNN?.(a, b, out, M, J, N, s) ?? false;
  }

  /** out[S,D] += a[R,S]ᵀ · b[R,D] (the engine's gemm_tn); false when the engine cannot. */
  gemmTN(a: Float32Array, b: Float32Array, out: Float32Array, R: number, S: number, D: number): boolean {
    return this.engine.gemmTN?.(a, b, out, R, S, D) ?? false;
  }

  /** Attention's backward on the engine's kernels (the autograd tape's); false when the engine cannot. */
  attentionBackward(
    P: Float32Array, dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, rowScale: Float32Array,
    s: AttentionShapes, dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null,
  ): boolean {
    return this.engine.attentionBackward?.(P, dOut, q, k, v, rowScale, s, dq, dk, dv) ?? false;
  }

  /**
   * The gradients of silu(gate) · up for the output gradient g on the engine's
   * kernel (the training tape's backward): dGate, dUp null when not wanted, dUp
   * may be g itself. False when the engine has no such kernel (nothing written).
   */
  siluMulBackward(gate: Float32Array, up: Float32Array, g: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null): boolean {
    return this.engine.siluMulBackward?.(gate, up, g, dGate, dUp) ?? false;
  }

  /**
   * Softmax statistics of rows of x [*, V] on the engine's kernels (SoftmaxRowsKernel's contract,
   * lib/autograd/loss.ts: the same numbers as jsSoftmaxRows). Undefined when it cannot.
   */
  softmaxRows(x: Float32Array, V: number, rows: Int32Array, probs: Float32Array | undefined): Float64Array | undefined {
    return this.engine.softmaxRows?.(x, V, rows, probs);
  }

  /**
   * RMSNorm's gradients (rows of H, rstd per row as rmsNormInto gives it) for the output gradient g
   * on the engine's kernel: dx (may be g itself) written, dw [H] added to. False when it cannot.
   */
  rmsNormBackward(x: Float32Array, w: Float32Array, g: Float32Array, rstd: Float32Array, H: number,
    dx: Float32Array | null, dw: Float32Array | null): boolean {
    return this.engine.rmsNormBackward?.(x, w, g, rstd, H, dx, dw) ?? false;
  }

  /**
   * The gradient of splitHeads with RoPE (cos, sin [B, T, D/2]) for the output gradient g [B, heads, T, D]
   * on the engine's kernel: dx [B, T, heads·D] written (may be g itself). False when it cannot.
   */
  ropeBackward(g: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, heads: number, D: number,
    dx: Float32Array): boolean {
    return this.engine.ropeBackward?.(g, cos, sin, B, T, heads, D, dx) ?? false;
  }

  siluMul(gate: DeviceTensor, up: DeviceTensor): DeviceTensor {
    sameShape(gate, up, "siluMul");
    const g = f32(gate, "siluMul gate");
    const u = f32(up, "siluMul up");
    const out = new Float32Array(g.length);
    if (!this.engine.siluMul?.(g, u, out)) siluMulInto(g, u, out);
    return new CpuTensor(out, gate.shape, "f32");
  }

  splitHeads(x: DeviceTensor, heads: number, rope?: { cos: Float32Array; sin: Float32Array }): DeviceTensor {
    const [B, T, HD] = x.shape as [number, number, number];
    const D = HD / heads;
    if (x.shape.length !== 3 || !Number.isInteger(D)) throw new LlamaError(`splitHeads: cannot split [${x.shape.join(", ")}] into ${heads} heads`);
    if (rope && rope.cos.length !== B * T * (D / 2)) {
      throw new LlamaError(`splitHeads: rope tables have ${rope.cos.length} entries, expected ${B}*${T}*${D / 2}`);
    }
    return new CpuTensor(this.splitHeadsValues(f32(x, "splitHeads input"), B, T, heads, D, rope), [B, heads, T, D], "f32");
  }

  /** splitHeads on host arrays: the engine's kernel when it has one (the same bits), else splitHeadsInto. */
  splitHeadsValues(x: Float32Array, B: number, T: number, heads: number, D: number, rope?: { cos: Float32Array; sin: Float32Array }): Float32Array {
    const out = new Float32Array(x.length);
    if (!rope || !this.engine.ropeForward?.(x, rope.cos, rope.sin, B, T, heads, D, out)) splitHeadsInto(x, B, T, heads, D, rope?.cos, rope?.sin, out);
    return out;
  }

  mergeHeads(x: DeviceTensor): DeviceTensor {
    const [B, H, T, D] = x.shape as [number, number, number, number];
    const out = new Float32Array(B * H * T * D);
    mergeHeadsInto(f32(x, "mergeHeads input"), B, H, T, D, out);
    return new CpuTensor(out, [B, T, H * D], "f32");
  }

  kvAppend(cache: DeviceTensor | undefined, x: DeviceTensor, reserve = 0): DeviceTensor {
    const xd = f32(x, "kvAppend input");
    const [B, H, T, D] = x.shape as [number, number, number, number];
    const c = cache ? cpu(cache, "kvAppend cache") : undefined;
    const P = c ? c.shape[2]! : 0;
    const S = P + T;
    let data: Float32Array;
    let capacity: number;
    if (c && c.capacity >= S) {
      data = c.data as Float32Array;
      capacity = c.capacity;
    } else {
      // Grow geometrically so a token-by-token decode copies the cache O(log T) times.
      capacity = Math.max(S, c ? c.capacity * 2 : 0, 16, reserve);
      data = this.engine.allocF32(B * H * capacity * D);
      if (c) {
        for (let bh = 0; bh < B * H; bh++) {
          data.set((c.data as Float32Array).subarray(bh * c.capacity * D, bh * c.capacity * D + P * D), bh * capacity * D);
        }
      }
    }
    for (let bh = 0; bh < B * H; bh++) {
      data.set(xd.subarray(bh * T * D, (bh + 1) * T * D), (bh * capacity + P) * D);
    }
    return new CpuTensor(data, [B, H, S, D], "f32", capacity);
  }

  attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, mask: AttentionMask, opts: AttentionOptions): AttentionResult {
    const [B, n, T, D] = q.shape as [number, number, number, number];
    const kc = cpu(k, "attention keys");
    const vc = cpu(v, "attention values");
    const [, kh, S] = kc.shape as [number, number, number, number];
    if (kc.capacity !== vc.capacity || vc.shape[2] !== S) throw new LlamaError("attention: keys and values differ in length");
    if (n % kh !== 0) throw new LlamaError(`attention: ${n} query heads are not a multiple of ${kh} kv heads`);
    if (mask.keyMask && mask.keyMask.length !== B * S) {
      throw new LlamaError(`attention: key mask has ${mask.keyMask.length} entries, expected ${B}*${S}`);
    }
    if (this.scores.length < S) this.scores = new Float64Array(Math.max(S, this.scores.length * 2));
    const out = new Float32Array(B * T * n * D);
    const weights = opts.returnWeights ? new Float32Array(B * n * T * S) : undefined;
    const qd = f32(q, "attention queries");
    const shapes = { B, n, k: kh, T, S, D, kvHeadStride: kc.capacity * D };
    const kd = kc.data as Float32Array;
    const vd = vc.data as Float32Array;
    const done = this.engine.attention?.(qd, kd, vd, shapes, opts.scale, mask.queryOffset, mask.keyMask, out, weights);
    if (!done) attentionInto(qd, kd, vd, shapes, opts.scale, mask.queryOffset, mask.keyMask, out, weights, this.scores);
    return {
      out: new CpuTensor(out, [B, T, n * D], "f32"),
      weights: weights && new CpuTensor(weights, [B, n, T, S], "f32"),
    };
  }

  attendWith(weights: DeviceTensor, v: DeviceTensor): DeviceTensor {
    const [B, n, T, S] = weights.shape as [number, number, number, number];
    const vc = cpu(v, "attendWith values");
    const [, kh, Sv, D] = vc.shape as [number, number, number, number];
    if (Sv !== S || n % kh !== 0) {
      throw new LlamaError(`attendWith: weights [${weights.shape.join(", ")}] do not match values [${vc.shape.join(", ")}]`);
    }
    const shapes = { B, n, k: kh, T, S, D, kvHeadStride: vc.capacity * D };
    const out = attendWithInto(f32(weights, "attendWith weights"), vc.data as Float32Array, shapes, new Float32Array(B * T * n * D));
    return new CpuTensor(out, [B, T, n * D], "f32");
  }

  selectPositions(x: DeviceTensor, index: Int32Array, perRow: number): DeviceTensor {
    const [B, T, H] = x.shape as [number, number, number];
    const xd = f32(x, "selectPositions input");
    if (index.length !== B * perRow) throw new LlamaError(`selectPositions: ${index.length} indices for ${B} rows x ${perRow}`);
    const out = new Float32Array(B * perRow * H);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < perRow; j++) {
        const t = index[b * perRow + j]!;
        if (!(t >= 0 && t < T)) throw new LlamaError(`selectPositions: position ${t} out of range [0, ${T})`);
        out.set(xd.subarray((b * T + t) * H, (b * T + t + 1) * H), (b * perRow + j) * H);
      }
    }
    return new CpuTensor(out, [B, perRow, H], "f32");
  }

  selectBatch(x: DeviceTensor, rows: Int32Array): DeviceTensor {
    const c = cpu(x, "selectBatch input");
    const B = c.shape[0]!;
    const rest = c.shape.slice(1);
    // A cache view keeps its capacity layout: copy whole per-row blocks.
    const rowSize = c.dense ? numel(rest) : c.shape[1]! * c.capacity * c.shape[3]!;
    const out = c.data instanceof Float32Array ? this.engine.allocF32(rows.length * rowSize) : new Uint16Array(rows.length * rowSize);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (!(r >= 0 && r < B)) throw new LlamaError(`selectBatch: row ${r} out of range [0, ${B})`);
      out.set(c.data.subarray(r * rowSize, (r + 1) * rowSize) as never, i * rowSize);
    }
    return new CpuTensor(out, [rows.length, ...rest], c.dtype, c.capacity);
  }
}
