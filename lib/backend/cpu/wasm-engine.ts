/**
 * The WebAssembly linear engine: weights are copied once into a shared
 * WebAssembly memory (freed again when their tensor is garbage-collected);
 * each call copies x into a workspace, runs the SIMD kernels and copies y
 * out. Big calls are split by output rows across worker threads that
 * instantiate the same module on the same memory; the calling thread takes
 * a share too, then waits on an Atomics counter (no polling, no messages).
 */
import * as os from "node:os";
import { Worker } from "node:worker_threads";
import type { DType } from "../../tensor/dtype.js";
import { f16ToF32Table } from "../../tensor/dtype.js";
import { QUANT_LAYOUT } from "../../tensor/quantized.js";
import type { LinearEngine, LinearJob } from "./linear-engine.js";
import { runJobJs } from "./quant-js.js";
import { FIRST_QUANT_KIND, INT8_DOT_TYPES, QUANT_KINDS } from "./wasm-quant.js";
import { quantizeQ8_0 } from "../../quant/q4-q5-q8.js";
import { addBias } from "./bias.js";
import { MAX_PAGES, kernelModule, type KernelExports } from "./wasm-kernels.js";
import { WasmHeap } from "./wasm-heap.js";
import { wasm, type WasmMemory } from "./wasm-api.js";
import { wasmAttention, type WasmAttentionContext } from "./wasm-attention.js";
import type { AttentionShapes } from "../../tensor/ops.js";

const MAX_THREADS = 8;
const MAX_JOBS = 8;
const JOB_STRIDE = 8;
const HEADER = 24;
/** Below this many weight bytes per call, one thread is faster than waking the others. */
const THREAD_MIN_BYTES = 96 * 1024;
/** Chunks per thread and job: small enough that a thread the OS runs late leaves little work behind. */
const CHUNKS_PER_THREAD = 4;

// Control block (Int32Array over a SharedArrayBuffer):
//   [0] generation (bumped to start work)  [1] quit flag  [2] finished-worker count
//   [3] jobs  [4] M  [5] K  [6] x pointer  [7] scratch base (each thread: 16·K bytes)
//   [8] next chunk to take (Atomics.add)  [9] chunk count  [10] f16 → f32 table (quantized kinds' scales)
//   [11] x as Q8_0 blocks for the int8 decode kernels, or 0 (exact mode, or M > 1)
//   [16 + t] worker t's seat for this call: 2·gen open, 2·gen+1 taken by the worker, -1 closed
//   per job j at HEADER + j·JOB_STRIDE: kind (0 f32, 1 f16, 2 bf16, 3.. QUANT_KINDS), w, N, y, rows (multiple of 4),
//   rows per chunk, first chunk index, end chunk index. Pointers are wasm addresses stored as int32 bits.
// Work is shared by stealing chunks of output rows: whichever thread is running takes
// the next chunk, so a worker the OS schedules late (the machine is shared) does not
// hold up the caller; the caller closes the seats of workers that never started.
// Each output element is computed by the same kernel whatever the split, so results
// do not depend on the thread count or on timing.
const QUANT_ROW = QUANT_KINDS.map((q) => [
  `gemm_${q}`, INT8_DOT_TYPES.includes(q) ? `gemv_int8_${q}` : `gemv_${q}`, `gemv_${q}`, QUANT_LAYOUT[q].elems, QUANT_LAYOUT[q].bytes,
]);
const RUN_SHARE = `
const QUANT_ROW = ${JSON.stringify(QUANT_ROW)};
function runShare(k, c, t) {
  const M = c[4], K = c[5], x = c[6] >>> 0, scratch = (c[7] >>> 0) + t * K * 16, total = c[9];
  let b = ${HEADER};
  for (;;) {
    const idx = Atomics.add(c, 8, 1);
    if (idx >= total) break;
    while (idx >= c[b + 7]) b += ${JOB_STRIDE};
    const kind = c[b], w = c[b + 1] >>> 0, N = c[b + 2], y = c[b + 3] >>> 0, chunk = c[b + 5];
    const r0 = (idx - c[b + 6]) * chunk, r1 = Math.min(c[b + 4], r0 + chunk);
    if (kind >= ${FIRST_QUANT_KIND}) {
      const [gemm, gemvInt8, gemv, elems, bytes] = QUANT_ROW[kind - ${FIRST_QUANT_KIND}];
      const wr = w + r0 * (K / elems) * bytes;
      if (M === 1 && c[11] !== 0 && gemvInt8 !== gemv) k[gemvInt8](c[11] >>> 0, wr, K, y + r0 * 4, r1 - r0, c[10] >>> 0);
      else if (M === 1) k[gemv](x, wr, K, y + r0 * 4, r1 - r0, c[10] >>> 0);
      else k[gemm](x, M, wr, K, y + r0 * 4, N, r1 - r0, scratch, c[10] >>> 0);
    } else if (kind === 0) k.gemm_f32(x, M, w + r0 * K * 4, K, y + r0 * 4, N, r1 - r0);
    else if (M === 1) (kind === 1 ? k.gemv_f16 : k.gemv_bf16)(x, w + r0 * K * 2, K, y + r0 * 4, r1 - r0);
    else (kind === 1 ? k.gemm_f16 : k.gemm_bf16)(x, M, w + r0 * K * 2, K, y + r0 * 4, N, r1 - r0, scratch);
  }
}`;

const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const { module, memory, ctrl, index } = workerData;
const k = new WebAssembly.Instance(module, { env: { memory } }).exports;
const c = new Int32Array(ctrl);
${RUN_SHARE}
let seen = Atomics.load(c, 0);
parentPort.postMessage("ready");
for (;;) {
  Atomics.wait(c, 0, seen);
  seen = Atomics.load(c, 0);
  if (c[1] === 1) break;
  const open = (seen << 1) | 0;
  // Take this call's seat unless the caller already closed it (it finished without us).
  if (Atomics.compareExchange(c, 16 + index, open, open | 1) !== open) continue;
  runShare(k, c, index);
  Atomics.add(c, 2, 1);
  Atomics.notify(c, 2);
}
`;

type RunShare = (k: KernelExports, c: Int32Array, t: number) => void;
const runShare = new Function(`${RUN_SHARE}; return runShare;`)() as RunShare;

const KIND: Record<DType, number> = { f32: 0, f16: 1, bf16: 2 };
const kindOf = (j: LinearJob): number => (j.quant ? FIRST_QUANT_KIND + QUANT_KINDS.indexOf(j.quant) : KIND[j.dtype]);

export class WasmLinearEngine implements LinearEngine {
  private readonly ptrs = new WeakMap<ArrayBufferView, number>();
  private readonly finalizer: FinalizationRegistry<[number, number]>;
  private readonly ctrl: Int32Array;
  private workspace = { ptr: 0, bytes: 0 };
  private disposed = false;

  private constructor(
    private readonly memory: WasmMemory,
    private readonly heap: WasmHeap,
    private readonly kernels: KernelExports,
    private readonly workers: Worker[],
    ctrl: SharedArrayBuffer,
    private readonly quantDot: "exact" | "int8" = "exact",
  ) {
    this.ctrl = new Int32Array(ctrl);
    this.finalizer = new FinalizationRegistry(([ptr, bytes]) => {
      if (!this.disposed) this.heap.release(ptr, bytes);
    });
  }

  /** The engine, or undefined when this runtime lacks wasm SIMD or shared memory. */
  static async create(threads?: number, quantDot: "exact" | "int8" = "exact"): Promise<WasmLinearEngine | undefined> {
    const module = kernelModule();
    if (!module || !wasm || typeof SharedArrayBuffer === "undefined") return undefined;
    let memory: WasmMemory;
    try {
      memory = new wasm!.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    } catch {
      return undefined;
    }
    const kernels = new wasm!.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
    const total = Math.max(1, Math.min(MAX_THREADS, threads ?? Math.min(cores, 4)));
    const ctrl = new SharedArrayBuffer(4 * (HEADER + MAX_JOBS * JOB_STRIDE));
    const workers: Worker[] = [];
    try {
      for (let index = 1; index < total; index++) {
        const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory, ctrl, index } });
        await new Promise<void>((resolve, reject) => {
          w.once("message", () => resolve());
          w.once("error", reject);
        });
        w.unref();
        workers.push(w);
      }
    } catch (err) {
      if (process.env.LLAMA_TS_DEBUG) process.stderr.write(`llama-ts: worker threads unavailable (${String(err)})\n`);
      // Workers unavailable (sandbox): run single-threaded.
      for (const w of workers) void w.terminate();
      workers.length = 0;
    }
    const heap = new WasmHeap(memory, 1024);
    // The f16 → f32 table the quantized kernels read block scales through (256 KiB, once).
    const table = heap.alloc(65536 * 4);
    new Float32Array(memory.buffer, table, 65536).set(f16ToF32Table());
    new Int32Array(ctrl)[10] = table;
    return new WasmLinearEngine(memory, heap, kernels, workers, ctrl, quantDot);
  }

  get description(): string {
    const int8 = this.quantDot === "int8" ? ", int8 decode products" : "";
    return `wasm simd kernels, ${this.workers.length + 1} thread${this.workers.length ? "s" : ""}${int8}`;
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /** A heap block, or undefined when the 4 GiB wasm memory is full (callers keep JS arrays then). */
  private tryAlloc(bytes: number): number | undefined {
    try {
      return this.heap.alloc(bytes);
    } catch {
      if (!this.warnedFull) {
        this.warnedFull = true;
        process.stderr.write("llama-ts: the wasm kernels' 4 GiB memory is full; further tensors use the (slower) JavaScript kernels\n");
      }
      return undefined;
    }
  }

  private warnedFull = false;

  adopt<T extends Float32Array | Uint16Array | Uint8Array>(data: T, dtype?: DType): T {
    const bytes = data.byteLength;
    const ptr = this.tryAlloc(bytes);
    if (ptr === undefined) return data;
    const view = (data instanceof Float32Array
      ? new Float32Array(this.memory.buffer, ptr, data.length)
      : data instanceof Uint8Array ? new Uint8Array(this.memory.buffer, ptr, data.length)
      : new Uint16Array(this.memory.buffer, ptr, data.length)) as T;
    view.set(data as never);
    this.finalizer.register(view, [ptr, bytes]);
    // The f16 register widening maps inf/NaN to finite values: such (rare)
    // tensors are left off the wasm path (not in `ptrs`), so the exact
    // JavaScript kernel handles them.
    if (dtype === "f16" && this.hasNonFiniteF16(view as Uint16Array, ptr)) return view;
    this.ptrs.set(view, ptr);
    return view;
  }

  private hasNonFiniteF16(view: Uint16Array, ptr: number): boolean {
    const n8 = view.length - (view.length % 8);
    if (this.kernels.has_nonfinite_f16(ptr, n8)) return true;
    for (let i = n8; i < view.length; i++) if ((view[i]! & 0x7c00) === 0x7c00) return true;
    return false;
  }

  allocF32(length: number): Float32Array {
    const bytes = length * 4;
    const ptr = this.tryAlloc(bytes);
    if (ptr === undefined) return new Float32Array(length);
    const view = new Float32Array(this.memory.buffer, ptr, length);
    this.ptrs.set(view, ptr);
    this.finalizer.register(view, [ptr, bytes]);
    return view;
  }

  private readonly attentionContext: WasmAttentionContext = {
    kernels: undefined as unknown as KernelExports,
    buffer: () => this.memory.buffer,
    scratch: (bytes) => this.scratch(bytes),
    ptrOf: (view) => this.ptrs.get(view),
  };

  attention(
    q: Float32Array, kd: Float32Array, vd: Float32Array, s: AttentionShapes, scale: number,
    queryOffset: number, keyMask: Uint8Array | undefined, out: Float32Array, weights: Float32Array | undefined,
  ): boolean {
    this.attentionContext.kernels = this.kernels;
    return wasmAttention(this.attentionContext, q, kd, vd, s, scale, queryOffset, keyMask, out, weights);
  }

  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array): boolean {
    const n = gate.length;
    const n4 = Math.ceil(n / 4) * 4; // zero padding: silu(0) · 0 = 0
    const base = this.scratch(12 * n4);
    const buf = this.memory.buffer;
    const g = new Float32Array(buf, base, n4);
    const u = new Float32Array(buf, base + 4 * n4, n4);
    g.set(gate);
    u.set(up);
    g.fill(0, n);
    u.fill(0, n);
    this.kernels.silu_mul(base, base + 4 * n4, base + 8 * n4, n4);
    out.set(new Float32Array(buf, base + 8 * n4, n));
    return true;
  }

  /**
   * out[M,N] (+)= a[M,K] · b[N,K]ᵀ on this thread. The kernel wants K in
   * multiples of 8 and N in multiples of 4: both are zero-padded in the
   * workspace (zero columns add nothing to a dot product; padded rows are dropped).
   */
  gemm(a: Float32Array, b: Float32Array, out: Float32Array, M: number, N: number, K: number,
    accumulate: boolean, aOff: number, bOff: number, outOff: number): boolean {
    if (M === 0 || N === 0) return true;
    const Kp = Math.ceil(K / 8) * 8, Np = Math.ceil(N / 4) * 4;
    const aBytes = 4 * M * Kp, bBytes = 4 * Np * Kp;
    const base = this.scratch(aBytes + bBytes + 4 * M * Np);
    const buf = this.memory.buffer; // after scratch(): growing the memory replaces the buffer
    const A = new Float32Array(buf, base, M * Kp);
    const Bm = new Float32Array(buf, base + aBytes, Np * Kp);
    const Y = new Float32Array(buf, base + aBytes + bBytes, M * Np);
    const pack = (dst: Float32Array, src: Float32Array, off: number, rows: number) => {
      if (Kp === K) dst.set(src.subarray(off, off + rows * K));
      else for (let r = 0; r < rows; r++) dst.set(src.subarray(off + r * K, off + r * K + K), r * Kp);
    };
    if (Kp !== K) A.fill(0);
    pack(A, a, aOff, M);
    Bm.fill(0, Kp === K ? N * Kp : 0);
    pack(Bm, b, bOff, N);
    this.kernels.gemm_f32(base, M, base + aBytes, Kp, base + aBytes + bBytes, Np, Np);
    for (let m = 0; m < M; m++) {
      const o = outOff + m * N, y = m * Np;
      if (accumulate) for (let n = 0; n < N; n++) out[o + n] += Y[y + n]!;
      else out.set(Y.subarray(y, y + N), o);
    }
    return true;
  }

  /** A workspace of at least `bytes` (reused between calls). */
  private scratch(bytes: number): number {
    if (this.workspace.bytes < bytes) {
      if (this.workspace.bytes) this.heap.release(this.workspace.ptr, this.workspace.bytes);
      const size = Math.max(bytes, Math.ceil(this.workspace.bytes * 1.5));
      this.workspace = { ptr: this.heap.alloc(size), bytes: size };
    }
    return this.workspace.ptr;
  }

  run(x: Float32Array, M: number, K: number, jobs: readonly LinearJob[]): void {
    const usable = K % 8 === 0 && jobs.length <= MAX_JOBS && jobs.every((j) => this.ptrs.has(j.w));
    if (!usable) {
      for (const j of jobs) runJobJs(x, M, K, j);
      return;
    }
    let weightBytes = 0;
    let yBytes = 0;
    for (const j of jobs) {
      weightBytes += j.w.byteLength;
      yBytes += M * j.N * 4;
    }
    const T = weightBytes >= THREAD_MIN_BYTES ? this.threads : 1;
    const xBytes = M * K * 4;
    // Opt-in int8 decode: x rounded once to Q8_0 blocks, read by every thread.
    const int8 = this.quantDot === "int8" && M === 1 && K % 32 === 0 && jobs.some((j) => j.quant && INT8_DOT_TYPES.includes(j.quant));
    const xqBytes = int8 ? (K / 32) * 34 : 0;
    const base = this.scratch(xBytes + yBytes + this.threads * K * 16 + xqBytes);
    const buf = this.memory.buffer;
    new Float32Array(buf, base, M * K).set(x);
    const c = this.ctrl;
    c[11] = 0;
    if (int8) {
      const xq = base + xBytes + yBytes + this.threads * K * 16;
      quantizeQ8_0(x, new Uint8Array(buf, xq, xqBytes), K / 32);
      c[11] = xq;
    }
    c[3] = jobs.length; c[4] = M; c[5] = K; c[6] = base; c[7] = base + xBytes + yBytes;
    let yPtr = base + xBytes;
    const yPtrs: number[] = [];
    let chunks = 0;
    jobs.forEach((j, i) => {
      const b = HEADER + i * JOB_STRIDE;
      // Rows in multiples of 4 (the kernels' block), in chunks for the threads to take.
      const rows4 = j.N - (j.N % 4);
      const chunkRows = Math.max(4, Math.ceil(rows4 / (T * (T > 1 ? CHUNKS_PER_THREAD : 1)) / 4) * 4);
      const count = Math.ceil(rows4 / chunkRows);
      c[b] = kindOf(j); c[b + 1] = this.ptrs.get(j.w)!; c[b + 2] = j.N; c[b + 3] = yPtr;
      c[b + 4] = rows4; c[b + 5] = chunkRows; c[b + 6] = chunks; c[b + 7] = chunks + count;
      chunks += count;
      yPtrs.push(yPtr);
      yPtr += M * j.N * 4;
    });
    c[9] = chunks;
    Atomics.store(c, 8, 0);
    const gen = (c[0]! + 1) | 0;
    const open = (gen << 1) | 0;
    if (T > 1) {
      Atomics.store(c, 2, 0);
      for (let t = 1; t <= this.workers.length; t++) Atomics.store(c, 16 + t, open);
      Atomics.store(c, 0, gen);
      Atomics.notify(c, 0);
    }
    runShare(this.kernels, c, 0);
    if (T > 1) {
      // Close the seats of workers that have not started; wait for those that did.
      let taken = 0;
      for (let t = 1; t <= this.workers.length; t++) {
        if (Atomics.compareExchange(c, 16 + t, open, -1) !== open) taken++;
      }
      for (let done = Atomics.load(c, 2); done < taken; done = Atomics.load(c, 2)) Atomics.wait(c, 2, done);
    }
    jobs.forEach((j, i) => {
      j.y.set(new Float32Array(buf, yPtrs[i]!, M * j.N));
      const rows4 = j.N - (j.N % 4);
      // The last N % 4 rows (never more than 3) in JavaScript.
      if (rows4 < j.N) {
        const tail = new Float32Array(M * j.N);
        runJobJs(x, M, K, { ...j, bias: undefined, y: tail }, rows4, j.N);
        for (let m = 0; m < M; m++) for (let n = rows4; n < j.N; n++) j.y[m * j.N + n] = tail[m * j.N + n]!;
      }
      addBias(j.y, j.bias, M, j.N);
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctrl, 1, 1);
    Atomics.add(this.ctrl, 0, 1);
    Atomics.notify(this.ctrl, 0);
    for (const w of this.workers) void w.terminate();
  }
}
