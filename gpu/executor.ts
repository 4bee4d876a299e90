/**
 * The executor records GPU work and submits it only when something must be
 * read: a forward pass (or one decode token) becomes one command buffer, with
 * all dispatches in as few compute passes as the copies allow.
 *
 * Per-dispatch parameters (sizes, strides, eps, …) go into one uniform buffer
 * of 256-byte slots, filled with a single `writeBuffer` right before the
 * submit (queue-ordered, so reusing the same uniform buffer for the next
 * command buffer is safe).
 */
import { LlamaError } from "../lib/errors.js";
import { BufferPool, type PooledBuffer } from "./buffers.js";
import type { GpuContext } from "./device.js";

/** A WGSL compute shader with a cache key; its pipeline is built on first use. */
export interface Kernel {
  readonly key: string;
  readonly wgsl: string;
}

/** A storage binding: a whole tracked buffer, or a byte range of it. */
export interface Binding {
  buf: PooledBuffer;
  offset?: number;
  size?: number;
}

/** One uniform field: a u32 (default), i32 or f32. */
export type Param = number | { f32: number } | { i32: number };

const SLOT_BYTES = 256;
const SLOTS = 2048;
const MAX_CACHED_BIND_GROUPS = 8192;

const kernelMemo = new Map<string, Kernel>();
/** Builds each kernel's WGSL once per argument list (kernel factories run on every dispatch). */
export function memoKernel<A extends (string | number | boolean | undefined)[]>(make: (...args: A) => Kernel): (...args: A) => Kernel {
  return (...args: A) => {
    const k = `${make.name}(${args.join(",")})`;
    let kernel = kernelMemo.get(k);
    if (!kernel) kernelMemo.set(k, (kernel = make(...args)));
    return kernel;
  };
}

export class Executor {
  readonly pool: BufferPool;
  private readonly pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  /**
   * Bind groups by (kernel, buffers, ranges, parameter slot). The pool hands
   * out the same buffers in the same order every decode step, so after the
   * first token nearly every dispatch reuses its bind group (creating ~20 per
   * layer per token is the largest CPU cost of recording otherwise).
   */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private uniform: GPUBuffer;
  private readonly uniformData = new ArrayBuffer(SLOT_BYTES * SLOTS);
  private readonly uniformU32 = new Uint32Array(this.uniformData);
  private readonly uniformI32 = new Int32Array(this.uniformData);
  private readonly uniformF32 = new Float32Array(this.uniformData);
  private slot = 0;
  private readonly stagingFree: GPUBuffer[] = [];
  /** Counters for the bench and tests: submits and dispatches since creation. */
  submits = 0;
  dispatches = 0;

  constructor(readonly ctx: GpuContext) {
    const device = ctx.device;
    this.pool = new BufferPool(device, device.limits.maxBufferSize, ctx.objects);
    this.uniform = ctx.objects.track(device.createBuffer({ size: SLOT_BYTES * SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: "params" }));
  }

  get device(): GPUDevice {
    return this.ctx.device;
  }

  /** The kernel's pipeline and its bind-group layout (fetched once: getBindGroupLayout is costly in Dawn). */
  private pipeline(kernel: Kernel): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } {
    let p = this.pipelines.get(kernel.key);
    if (!p) {
      const objects = this.ctx.objects;
      const module = objects.track(this.device.createShaderModule({ code: kernel.wgsl, label: kernel.key }));
      const pipeline = objects.track(this.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" }, label: kernel.key }));
      p = { pipeline, layout: objects.track(pipeline.getBindGroupLayout(0)) };
      this.pipelines.set(kernel.key, p);
    }
    return p;
  }

  private beginPass(): GPUComputePassEncoder {
    this.ctx.assertAlive();
    this.encoder ??= this.device.createCommandEncoder();
    this.pass ??= this.encoder.beginComputePass();
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    this.ctx.assertAlive();
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /**
   * Records one dispatch. Bindings 0..n-1 are the storage buffers in order;
   * binding n is the uniform parameter block when `params` is non-empty.
   */
  dispatch(kernel: Kernel, bindings: Binding[], params: Param[], workgroups: [number, number?, number?]): void {
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new LlamaError(`WebGPU: ${kernel.key} needs ${x}×${y}×${z} workgroups, above the device limit ${maxWg} per dimension`);
    }
    const { pipeline, layout } = this.pipeline(kernel);
    if (params.length > 0 && this.slot === SLOTS) this.flush();
    const pass = this.beginPass();
    let key = `${kernel.key}|${params.length > 0 ? this.slot : "-"}`;
    for (const b of bindings) {
      b.buf.lastEpoch = this.pool.epoch;
      key += `|${b.buf.id}:${b.offset ?? 0}:${b.size ?? "*"}`;
    }
    let group = this.bindGroups.get(key);
    if (!group) {
      const entries: GPUBindGroupEntry[] = bindings.map((b, i) => ({
        binding: i, resource: { buffer: b.buf.buffer, offset: b.offset ?? 0, size: b.size },
      }));
      if (params.length > 0) {
        entries.push({ binding: bindings.length, resource: { buffer: this.uniform, offset: this.slot * SLOT_BYTES, size: SLOT_BYTES } });
      }
      group = this.ctx.objects.track(this.device.createBindGroup({ layout, entries }));
      if (this.bindGroups.size >= MAX_CACHED_BIND_GROUPS) this.bindGroups.clear(); // stale entries of destroyed buffers go too
      this.bindGroups.set(key, group);
    }
    if (params.length > 0) {
      if (params.length > SLOT_BYTES / 4) throw new LlamaError(`WebGPU: ${kernel.key} has too many parameters`);
      const base = (this.slot * SLOT_BYTES) / 4;
      params.forEach((p, i) => {
        if (typeof p === "number") this.uniformU32[base + i] = p;
        else if ("f32" in p) this.uniformF32[base + i] = p.f32;
        else this.uniformI32[base + i] = p.i32;
      });
      this.slot++;
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
  }

  /** Records a buffer-to-buffer copy (ends the current compute pass). */
  copy(src: Binding, dst: Binding, bytes: number): void {
    const enc = this.endPass();
    src.buf.lastEpoch = this.pool.epoch;
    dst.buf.lastEpoch = this.pool.epoch;
    enc.copyBufferToBuffer(src.buf.buffer, src.offset ?? 0, dst.buf.buffer, dst.offset ?? 0, bytes);
  }

  /** Submits everything recorded so far (no-op when nothing is pending). */
  flush(): void {
    if (!this.encoder) return;
    const enc = this.endPass();
    if (this.slot > 0) this.device.queue.writeBuffer(this.uniform, 0, this.uniformData, 0, this.slot * SLOT_BYTES);
    this.device.queue.submit([enc.finish()]);
    this.encoder = undefined;
    this.slot = 0;
    this.pool.epoch++;
    this.submits++;
    this.pool.trim();
  }

  /** Fills a buffer from the host, ordered after everything recorded so far. */
  write(dst: PooledBuffer, data: ArrayBufferView, dstOffset = 0): void {
    if (dst.lastEpoch >= this.pool.epoch) this.flush(); // recorded work still reads/writes it
    this.ctx.assertAlive();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    this.device.queue.writeBuffer(dst.buffer, dstOffset, padded);
  }

  /** Submits pending work and reads `bytes` from a buffer back to the host. */
  async read(src: Binding, bytes: number): Promise<ArrayBuffer> {
    const size = Math.max(4, (bytes + 3) & ~3);
    const staging = this.takeStaging(size);
    this.copy(src, { buf: { id: 0, buffer: staging, size: staging.size, kind: "scratch", lastEpoch: 0 } }, size);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (err) {
      this.ctx.assertAlive();
      throw new LlamaError(`WebGPU: reading a result back failed: ${(err as Error).message}`, { cause: err });
    }
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.stagingFree.push(staging);
    if (this.ctx.uncapturedError) {
      const msg = this.ctx.uncapturedError;
      this.ctx.uncapturedError = undefined;
      throw new LlamaError(`WebGPU error: ${msg}`);
    }
    return out;
  }

  /** Waits until the GPU has finished everything submitted (for benchmarks). */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  private takeStaging(size: number): GPUBuffer {
    const i = this.stagingFree.findIndex((b) => b.size >= size && b.size <= size * 4);
    if (i >= 0) return this.stagingFree.splice(i, 1)[0]!;
    if (this.stagingFree.length > 8) this.stagingFree.shift()!.destroy();
    return this.ctx.objects.track(this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: "readback" }));
  }

  /** Destroys every buffer and drops every Dawn object this executor and its pool hold (see GpuContext.destroy). */
  destroy(): void {
    this.encoder = undefined;
    this.pass = undefined;
    for (const b of this.stagingFree) b.destroy();
    this.stagingFree.length = 0;
    this.pool.destroyAll();
    this.uniform.destroy();
    this.uniform = undefined as unknown as GPUBuffer;
    this.pipelines.clear();
    this.bindGroups.clear();
  }
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array((bytes.byteLength + 3) & ~3);
  out.set(bytes);
  return out;
}
