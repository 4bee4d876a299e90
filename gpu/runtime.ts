/**
 * The GPU runtime under the backend: the device, the executor, tensor
 * allocation and ownership, host ↔ device transfers.
 *
 * Ownership: each buffer belongs to exactly one live GpuTensor handle.
 * `release()` returns it early; otherwise a FinalizationRegistry returns it
 * when the handle is garbage-collected (the model need not release every
 * intermediate). kvAppend moves a cache buffer from the old handle to the new one.
 * A tensor that deferred work still reads (ops/fused-linear.ts, ops/heads.ts) is held: releasing it
 * takes effect when the last hold ends.
 */
import { LlamaError } from "../lib/errors.js";
import { Tensor, numel } from "../lib/tensor/tensor.js";
import type { DType } from "../lib/tensor/dtype.js";
import { f16ToF32, bf16ToF32 } from "../lib/tensor/dtype.js";
import { type AllocKind, GPU_BYTES, GpuTensor, type PooledBuffer } from "./buffers.js";
import { GpuContext, type GpuOptions } from "./device.js";
import { Executor } from "./executor.js";
import { type WeightFormat, weightFormat } from "./kernels/weights.js";
import { forgetOpen, trackOpen } from "./teardown.js";

export class GpuRuntime {
  readonly exec: Executor;
  private readonly finalizer: FinalizationRegistry<PooledBuffer>;
  /** A 16-byte buffer bound where a kernel's optional input is absent (e.g. no padding mask). */
  readonly dummy: PooledBuffer;
  /** This runtime among the open ones (gpu/teardown.ts), until destroy(). */
  private openRef: WeakRef<GpuRuntime> | undefined;

  private constructor(readonly ctx: GpuContext) {
    this.exec = new Executor(ctx);
    this.finalizer = new FinalizationRegistry((buf) => {
      if (!this.ctx.isDestroyed) this.exec.pool.release(buf);
    });
    this.dummy = this.exec.pool.createExact(16, "scratch");
  }

  static async create(options: GpuOptions = {}): Promise<GpuRuntime> {
    const rt = new GpuRuntime(await GpuContext.acquire(options));
    rt.openRef = trackOpen(rt);
    return rt;
  }

  get pool() {
    return this.exec.pool;
  }

  /** The shader view of a weight tensor's dtype (f16 → native or packed, per the device's mode). */
  format(t: GpuTensor): WeightFormat {
    if (t.quant) throw new LlamaError(`webgpu: this op cannot read a ${t.quant} weight [${t.shape.join(", ")}] (only linear and embedding can)`);
    return weightFormat(t.dtype, this.ctx.f16Mode);
  }

  /** Wraps a buffer into a tracked handle. */
  adopt(buf: PooledBuffer, shape: readonly number[], dtype: DType, capacity?: number): GpuTensor {
    const t = new GpuTensor(buf, shape, dtype, capacity);
    this.finalizer.register(t, buf, t);
    return t;
  }

  /** A new f32 scratch tensor (an op's output). */
  empty(shape: readonly number[]): GpuTensor {
    return this.adopt(this.pool.acquire(Math.max(4, numel(shape) * 4)), shape, "f32");
  }

  /** A new f32 tensor with its own exact-size buffer of the given kind (KV cache). */
  emptyExact(shape: readonly number[], kind: AllocKind, capacity?: number): GpuTensor {
    const elems = capacity === undefined ? numel(shape) : numel(shape) / shape[2]! * capacity;
    return this.adopt(this.pool.createExact(elems * 4, kind), shape, "f32", capacity);
  }

  /** Copies a host tensor into a new exact-size buffer (weights: f16/bf16 stay 16-bit). */
  upload(t: Tensor, kind: AllocKind = "weights"): GpuTensor {
    this.ctx.assertAlive();
    const bytes = t.data.byteLength;
    const buf = this.pool.createExact(bytes, kind, true);
    const dst = new Uint8Array(buf.buffer.getMappedRange());
    dst.set(new Uint8Array(t.data.buffer, t.data.byteOffset, bytes));
    buf.buffer.unmap();
    return this.adopt(buf, t.shape, t.dtype);
  }

  /**
   * A scratch buffer holding host data, for one op's arguments (ids, masks,
   * rope tables). Released right after the op is recorded; the pool's epoch
   * rule keeps it from being overwritten before the op has run.
   */
  hostBuffer(data: Uint32Array | Float32Array): PooledBuffer {
    const buf = this.pool.acquireForWrite(Math.max(4, data.byteLength));
    this.exec.write(buf, data);
    return buf;
  }

  /** Reads a tensor as dense host float32 (KV views are compacted on the host). */
  async read(t: GpuTensor): Promise<Tensor> {
    if (t.consumed) throw new LlamaError("WebGPU read(): the tensor was released");
    const rows = t.dense ? numel(t.shape) : numel(t.shape) / t.shape[2]! * t.capacity;
    const raw = await this.exec.read({ buf: t.buf }, rows * GPU_BYTES[t.dtype]);
    let full: Float32Array;
    if (t.dtype === "f32") full = new Float32Array(raw);
    else if (t.dtype === "f16") full = f16ToF32(new Uint16Array(raw));
    else full = bf16ToF32(new Uint16Array(raw));
    if (t.dense) return new Tensor(full, t.shape, "f32");
    const [B, H, S, D] = t.shape as [number, number, number, number];
    const out = new Float32Array(B * H * S * D);
    for (let bh = 0; bh < B * H; bh++) out.set(full.subarray(bh * t.capacity * D, bh * t.capacity * D + S * D), bh * S * D);
    return new Tensor(out, t.shape, "f32");
  }

  /**
   * Gives a tensor's buffer back: now, or when the deferred work that reads it
   * has been recorded or dropped. A deferred tensor released unread drops its work.
   */
  release(t: GpuTensor): void {
    if (t.consumed) return;
    t.consumed = true;
    const work = t.pending;
    if (work) {
      t.pending = undefined;
      work.cancel(t);
    }
    if (t.holds > 0) t.releaseWhenFree = true;
    else this.free(t);
  }

  /** Records `t`'s deferred work now, if it has any (before an op that writes its buffer in place). */
  settle(t: GpuTensor): void {
    void t.buf;
  }

  /** Deferred work will read `t`: its buffer stays until `unhold`. */
  hold(t: GpuTensor): void {
    t.holds++;
  }

  /** The deferred work that read `t` is recorded (or dropped); a release asked for meanwhile happens now. */
  unhold(t: GpuTensor): void {
    if (--t.holds === 0 && t.releaseWhenFree) {
      t.releaseWhenFree = false;
      this.free(t);
    }
  }

  private free(t: GpuTensor): void {
    this.finalizer.unregister(t);
    this.pool.release(t.storage);
  }

  /** Marks `from` consumed and makes a new handle own its buffer (kvAppend growing in place). */
  transfer(from: GpuTensor, shape: readonly number[], capacity: number): GpuTensor {
    from.consumed = true;
    this.finalizer.unregister(from);
    return this.adopt(from.storage, shape, from.dtype, capacity);
  }

  /** Buffers first, then the device (GpuContext.destroy collects Dawn's objects and its driver threads stop). */
  destroy(): void {
    if (this.openRef) forgetOpen(this.openRef);
    if (this.ctx.isDestroyed) return;
    this.exec.destroy();
    this.ctx.destroy();
  }
}

/** Checks that a device tensor belongs to the WebGPU backend. */
export function gpu(t: unknown, what: string): GpuTensor {
  if (!(t instanceof GpuTensor)) throw new LlamaError(`webgpu backend: ${what} is not a WebGPU tensor (mixing devices?)`);
  if (t.consumed) throw new LlamaError(`webgpu backend: ${what} was released (or consumed by kvAppend)`);
  return t;
}

/** Checks an f32 dense activation. */
export function act(t: unknown, what: string): GpuTensor {
  const g = gpu(t, what);
  if (g.dtype !== "f32" || g.quant) throw new LlamaError(`webgpu backend: ${what} must be float32, got ${g.quant ?? g.dtype}`);
  if (!g.dense) throw new LlamaError(`webgpu backend: ${what} must be dense (a KV-cache view is not)`);
  return g;
}
