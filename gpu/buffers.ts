/**
 * GPU memory: device tensors and the allocator that recycles activation
 * buffers between ops and tokens.
 *
 * Three kinds of allocation, counted separately for the bench's memory line:
 *  - weights: exact-size buffers uploaded once;
 *  - kv: the KV cache, allocated at its capacity;
 *  - scratch: activations, taken from size buckets and returned on release.
 *
 * Hazard rule: a buffer written with `queue.writeBuffer` must not be
 * referenced by commands recorded but not yet submitted (the write would land
 * before them). Every buffer carries the epoch (submit count) of its last use,
 * and `acquireForWrite` only hands out buffers not touched since the last submit.
 */
import type { DeviceTensor } from "../lib/backend/backend.js";
import { LlamaError } from "../lib/errors.js";
import { numel } from "../lib/tensor/tensor.js";
import type { DType } from "../lib/tensor/dtype.js";
import type { QuantType } from "../lib/tensor/quantized.js";
import type { DawnObjects } from "./teardown.js";

/** Element formats of GPU buffers: tensors are f32 activations or f32/f16/bf16 weights; u32 is for ids and masks. */
export type GpuDType = DType | "u32";

export type AllocKind = "weights" | "kv" | "scratch";

export const GPU_BYTES: Record<GpuDType, number> = { f32: 4, f16: 2, bf16: 2, u32: 4 };

/** A tracked GPU buffer. */
export interface PooledBuffer {
  /** Unique per GPUBuffer (bind-group cache key). */
  readonly id: number;
  /** Dawn's buffer; detached (undefined at runtime) once the pool is torn down, so GC can finalize it. */
  buffer: GPUBuffer;
  readonly size: number;
  readonly kind: AllocKind;
  /** Submit epoch of the last command that referenced it. */
  lastEpoch: number;
}

/**
 * Work recorded for a tensor later than the op that made it (gpu/ops/fused-linear.ts, gpu/ops/heads.ts):
 * a consumer that can fuse it reads its recipe instead of its values; anything
 * else that touches the buffer makes it run first.
 */
export interface Deferred {
  /** Records the dispatch that writes the tensor (it may write others of the same recipe too). */
  materialize(t: GpuTensor): void;
  /** The tensor was released unread: drop its part of the recipe and what the recipe holds. */
  cancel(t: GpuTensor): void;
}

/**
 * A tensor resident on the GPU: dense and row-major, except KV-cache tensors
 * [B, heads, S, D], which may hold `capacity` ≥ S rows per head (kvAppend grows them in place).
 *
 * A tensor may be deferred (`pending`): its buffer is allocated but not yet
 * written. Reading `buf` records the pending work first, so code that does not
 * know about fusion (the tape, backward kernels, reads) always sees values.
 */
export class GpuTensor implements DeviceTensor {
  readonly shape: readonly number[];
  /** Set when the tensor was released or handed its buffer to another handle. */
  consumed = false;
  /** A weight kept in this ggml block encoding (ops/quant.ts); `dtype` is then "f32", what it computes as. */
  quant?: QuantType;
  /** The work that will write this tensor, until it is recorded. */
  pending?: Deferred;
  /** Deferred work that still reads this tensor: release() waits for it (runtime.hold). */
  holds = 0;
  /** release() was called while held: the buffer goes back when the last hold ends. */
  releaseWhenFree = false;
  constructor(
    /** The buffer, whether or not its values are written yet (fused ops write deferred outputs here). */
    readonly storage: PooledBuffer,
    shape: readonly number[],
    readonly dtype: DType,
    readonly capacity: number = shape.length === 4 ? shape[2]! : 0,
  ) {
    this.shape = Object.freeze([...shape]);
  }
  /** The buffer with its values written: records the deferred work first, if any. */
  get buf(): PooledBuffer {
    const p = this.pending;
    if (p) {
      this.pending = undefined;
      p.materialize(this);
    }
    return this.storage;
  }
  get size(): number {
    return numel(this.shape);
  }
  /** True unless this is a KV-cache view with spare capacity. */
  get dense(): boolean {
    return this.shape.length !== 4 || this.capacity === this.shape[2];
  }
  get buffer(): GPUBuffer {
    if (this.consumed) throw new LlamaError("WebGPU: a released device tensor was used");
    return this.buf.buffer;
  }
}

let nextBufferId = 1;
/** A fresh id for a new GPUBuffer. */
export function newBufferId(): number {
  return nextBufferId++;
}

export function align4(n: number): number {
  return (n + 3) & ~3;
}

const STORAGE_USAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Rounds a scratch size up to its bucket: 256-byte granules, then steps of 1/8 of the power of two (≤ 12.5% waste). */
export function bucketSize(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  const p = 2 ** Math.floor(Math.log2(b));
  const step = Math.max(256, p / 8);
  return Math.ceil(b / step) * step;
}

export interface AllocatorStats {
  weights: number;
  kv: number;
  /** Scratch bytes held (in use + free in the pool). */
  scratch: number;
  scratchInUse: number;
  total: number;
  peak: number;
}

export class BufferPool {
  private readonly free = new Map<number, PooledBuffer[]>();
  private pendingDestroy: PooledBuffer[] = [];
  private bytes: Record<AllocKind, number> = { weights: 0, kv: 0, scratch: 0 };
  private scratchInUse = 0;
  /** Scratch buffers of each bucket size taken now, and the most taken at once since the last trim. */
  private readonly taken = new Map<number, { now: number; peak: number }>();
  private peak = 0;
  /** Incremented by the executor on each submit. */
  epoch = 0;

  /** Every GPUBuffer this pool created and has not destroyed (teardown detaches them all). */
  private readonly live = new Set<PooledBuffer>();

  /** `objects` counts each GPUBuffer made until it is finalized (GpuContext.objects). */
  constructor(
    private device: GPUDevice,
    private readonly maxBufferSize: number,
    private readonly objects: DawnObjects,
  ) {}

  /** A new exact-size buffer (weights, KV cache), optionally mapped for filling. */
  createExact(bytes: number, kind: AllocKind, mapped = false, label?: string): PooledBuffer {
    const size = Math.max(4, align4(bytes));
    this.checkSize(size, label);
    const buffer = this.objects.track(this.device.createBuffer({ size, usage: STORAGE_USAGE(), mappedAtCreation: mapped, label }));
    this.count(kind, size);
    return this.track({ id: newBufferId(), buffer, size, kind, lastEpoch: -1 });
  }

  /** A scratch buffer of at least `bytes` (for outputs of GPU ops). */
  acquire(bytes: number): PooledBuffer {
    const size = bucketSize(bytes);
    const list = this.free.get(size);
    const got = list?.pop();
    if (got) return this.take(got);
    return this.newScratch(size);
  }

  /** A scratch buffer safe to fill with `queue.writeBuffer` (unused since the last submit). */
  acquireForWrite(bytes: number): PooledBuffer {
    const size = bucketSize(bytes);
    const list = this.free.get(size);
    if (list) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i]!.lastEpoch < this.epoch) {
          const [got] = list.splice(i, 1);
          return this.take(got!);
        }
      }
    }
    return this.newScratch(size);
  }

  private newScratch(size: number): PooledBuffer {
    this.checkSize(size);
    const buffer = this.objects.track(this.device.createBuffer({ size, usage: STORAGE_USAGE() }));
    this.count("scratch", size);
    return this.take(this.track({ id: newBufferId(), buffer, size, kind: "scratch", lastEpoch: -1 }));
  }

  private take(b: PooledBuffer): PooledBuffer {
    this.scratchInUse += b.size;
    let n = this.taken.get(b.size);
    if (!n) this.taken.set(b.size, (n = { now: 0, peak: 0 }));
    n.now++;
    if (n.now > n.peak) n.peak = n.now;
    return b;
  }

  private track(b: PooledBuffer): PooledBuffer {
    this.live.add(b);
    return b;
  }

  private destroyBuffer(b: PooledBuffer): void {
    this.live.delete(b);
    b.buffer.destroy();
  }

  /** Gives a buffer back: scratch returns to its bucket, weights/KV are destroyed (after pending submits, as WebGPU allows). */
  release(b: PooledBuffer): void {
    if (b.kind === "scratch") {
      this.scratchInUse -= b.size;
      this.taken.get(b.size)!.now--;
      let list = this.free.get(b.size);
      if (!list) this.free.set(b.size, (list = []));
      list.push(b);
    } else if (b.lastEpoch >= this.epoch) {
      this.pendingDestroy.push(b); // still referenced by recorded, unsubmitted commands
    } else {
      this.bytes[b.kind] -= b.size;
      this.destroyBuffer(b);
    }
  }

  /**
   * Destroys free scratch buffers not used by unsubmitted work (called after
   * submits so the pool cannot grow without bound), keeping per size at least
   * `keepPerBucket` and as many as were taken at once since the last trim: a
   * decode step that needs the same buffers as the previous one creates none.
   */
  trim(keepPerBucket = 8): void {
    const pending = this.pendingDestroy;
    this.pendingDestroy = [];
    for (const b of pending) this.release(b);
    for (const [size, list] of this.free) {
      const n = this.taken.get(size);
      const keep = Math.max(keepPerBucket, n ? n.peak - n.now : 0);
      if (n) n.peak = n.now;
      while (list.length > keep) {
        const i = list.findIndex((b) => b.lastEpoch < this.epoch);
        if (i < 0) break;
        const [b] = list.splice(i, 1);
        this.destroyBuffer(b!);
        this.bytes.scratch -= size;
      }
    }
  }

  stats(): AllocatorStats {
    const total = this.bytes.weights + this.bytes.kv + this.bytes.scratch;
    return { ...this.bytes, scratchInUse: this.scratchInUse, total, peak: this.peak };
  }

  /**
   * Teardown: destroys every buffer the pool created — weights and KV caches
   * that model handles still point at included — and detaches each from its
   * PooledBuffer. A live JS wrapper of a Dawn buffer keeps Dawn's device, and
   * with it the Vulkan instance and its driver threads, alive until garbage
   * collection; detached, they can be finalized as soon as the device goes.
   */
  destroyAll(): void {
    for (const b of this.live) {
      b.buffer.destroy();
      b.buffer = undefined as unknown as GPUBuffer;
    }
    this.live.clear();
    this.free.clear();
    this.taken.clear();
    this.pendingDestroy = [];
    this.device = undefined as unknown as GPUDevice;
  }

  private count(kind: AllocKind, size: number): void {
    this.bytes[kind] += size;
    const total = this.bytes.weights + this.bytes.kv + this.bytes.scratch;
    if (total > this.peak) this.peak = total;
  }

  private checkSize(size: number, label?: string): void {
    if (size > this.maxBufferSize) {
      throw new LlamaError(
        `WebGPU: ${label ? `tensor ${label}` : "a buffer"} needs ${size} bytes, above this device's maxBufferSize (${this.maxBufferSize})`,
      );
    }
  }
}
