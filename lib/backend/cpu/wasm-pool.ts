/**
 * The wasm engine's worker threads and the control block they share with the
 * calling thread. Each thread (the caller included) holds one instance of the
 * kernel module per WebAssembly memory of the engine (weights past 4 GiB
 * spread over several memories, wasm-engine.ts); a job names the memory its
 * weight lives in, and the thread runs it on its instance over that memory.
 *
 * A call is split by output rows: whichever thread is running takes the next
 * chunk (Atomics.add), so a worker the OS schedules late (the machine is
 * shared) does not hold up the caller; the caller closes the seats of workers
 * that never started, then waits on an Atomics counter (no polling, no
 * messages). Each output element is computed by the same kernel whatever the
 * split, so results do not depend on the thread count or on timing.
 *
 * Memories are added while the workers are parked in Atomics.wait, where no
 * message event can run: the caller posts the new memory on each worker's own
 * port, then raises the memory count in the control block; a worker compares
 * the count with its instances when it wakes and takes the memories it lacks
 * with receiveMessageOnPort (synchronous) before it runs any job.
 */
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { QUANT_LAYOUT } from "../../tensor/quantized.js";
import { FIRST_QUANT_KIND, INT8_DOT_TYPES, QUANT_KINDS } from "./wasm-quant.js";
import { TASKS } from "./wasm-tasks.js";
import type { KernelExports } from "./wasm-kernels.js";
import type { WasmMemory, WasmModule } from "./wasm-api.js";

export const MAX_THREADS = 8;
export const MAX_JOBS = 8;

// Control block (Int32Array over a SharedArrayBuffer):
//   [0] generation (bumped to start work)  [1] quit flag  [2] finished-worker count
//   [3] jobs  [4] M (x rows in this call)  [5] K  [6] each thread's scratch bytes (threadScratchBytes(K))
//   [8] next chunk to take (Atomics.add)  [9] chunk count
//   [12] memories every thread must hold an instance for  [13] 1: single-row (decode) kernels (M = 1)
//   [16 + t] worker t's seat for this call: 2·gen open, 2·gen+1 taken by the worker, -1 closed
//   per job j at HEADER + j·JOB_STRIDE (pointers are wasm addresses in the job's memory, stored as int32 bits):
//     +0 kind (0 f32, 1 f16, 2 bf16, 3.. QUANT_KINDS)  +1 w  +2 N  +3 y  +4 rows (multiple of 4)
//     +5 rows per chunk  +6 first chunk index  +7 end chunk index  +8 memory index
//     +9 x  +10 scratch base (thread t's at t·[6] past it)  +11 f16 → f32 table (quantized kinds' scales)
//     +12 x as Q8_0 blocks for the int8 decode kernels, or 0 (exact mode, or M > 1)
//   a task job (kind TASK_KIND): +1 the task's index in TASKS, +4 units, +5..+8 as above, +9 its parameter block
export const C = { GEN: 0, QUIT: 1, DONE: 2, JOBS: 3, M: 4, K: 5, THREAD_SCRATCH: 6, NEXT: 8, CHUNKS: 9, MEMORIES: 12, SINGLE: 13, SEATS: 16 } as const;
export const HEADER = 24;
/**
 * A job of kind TASK_KIND runs task function TASKS[w] (wasm-tasks.ts) as (x: its parameter
 * block, first unit, end unit, thread) over chunks of `rows` units.
 */
export const TASK_KIND = 100;
export const JOB_STRIDE = 16;
export const J = { KIND: 0, W: 1, N: 2, Y: 3, ROWS: 4, CHUNK: 5, FIRST: 6, END: 7, MEMORY: 8, X: 9, SCRATCH: 10, TABLE: 11, XQ: 12 } as const;

const QUANT_ROW = QUANT_KINDS.map((q) => [
  `deq_${q}`, INT8_DOT_TYPES.includes(q) ? `gemv_int8_${q}` : `gemv_${q}`, `gemv_${q}`, QUANT_LAYOUT[q].elems, QUANT_LAYOUT[q].bytes,
]);
/** Bytes of x rows a prefill kernel call streams per group of weight rows (half an L2 cache or less). */
const X_BLOCK_BYTES = 128 * 1024;
/** Bytes of 16-bit or quantized weight rows a prefill expands to float32 at once, to reuse over every block of x rows. */
const WIDE_BYTES = 128 * 1024;

/**
 * Each thread's scratch for a product with K inputs: WIDE_BYTES of weight rows expanded to
 * float32, or four rows (16·K bytes) when that is more.
 */
export function threadScratchBytes(K: number): number {
  return Math.max(16 * K, WIDE_BYTES);
}
const RUN_SHARE = `
const QUANT_ROW = ${JSON.stringify(QUANT_ROW)};
const TASKS = ${JSON.stringify(TASKS)};
function runShare(ks, c, t) {
  const M = c[${C.M}], K = c[${C.K}], total = c[${C.CHUNKS}], single = c[${C.SINGLE}] === 1, stride = c[${C.THREAD_SCRATCH}];
  let b = ${HEADER};
  for (;;) {
    const idx = Atomics.add(c, ${C.NEXT}, 1);
    if (idx >= total) break;
    while (idx >= c[b + ${J.END}]) b += ${JOB_STRIDE};
    const k = ks[c[b + ${J.MEMORY}]], x = c[b + ${J.X}] >>> 0, scratch = (c[b + ${J.SCRATCH}] >>> 0) + t * stride;
    const kind = c[b], w = c[b + ${J.W}] >>> 0, N = c[b + ${J.N}], y = c[b + ${J.Y}] >>> 0, chunk = c[b + ${J.CHUNK}];
    const r0 = (idx - c[b + ${J.FIRST}]) * chunk, r1 = Math.min(c[b + ${J.ROWS}], r0 + chunk);
    if (kind === ${TASK_KIND}) {
      k[TASKS[w]](x, r0, r1, t);
      continue;
    }
    if (single && kind !== 0) { // f32 weights have no gemv: their single row runs through gemm_f32 below
      if (kind >= ${FIRST_QUANT_KIND}) {
        const [, gemvInt8, gemv, elems, bytes] = QUANT_ROW[kind - ${FIRST_QUANT_KIND}];
        const wr = w + r0 * (K / elems) * bytes, table = c[b + ${J.TABLE}] >>> 0, xq = c[b + ${J.XQ}] >>> 0;
        if (xq !== 0 && gemvInt8 !== gemv) k[gemvInt8](xq, wr, K, y + r0 * 4, r1 - r0, table);
        else k[gemv](x, wr, K, y + r0 * 4, r1 - r0, table);
      } else (kind === 1 ? k.gemv_f16 : k.gemv_bf16)(x, w + r0 * K * 2, K, y + r0 * 4, r1 - r0);
      continue;
    }
    // The kernels stream every x row past each group of four weight rows: x goes in blocks
    // of about ${X_BLOCK_BYTES >> 10} KiB, so it is read from L2 rather than memory (same numbers: each
    // output is one x row's dot product with one weight row, whatever the blocking).
    const mb = Math.max(2, Math.floor(${X_BLOCK_BYTES} / (4 * K)) & ~1);
    if (kind === 0) {
      for (let m0 = 0; m0 < M; m0 += mb) k.gemm_f32(x + m0 * K * 4, Math.min(mb, M - m0), w + r0 * K * 4, K, y + (m0 * N + r0) * 4, N, r1 - r0);
      continue;
    }
    // 16-bit or quantized weights: as many rows as the thread's scratch holds expanded to float32 once
    // (widened or dequantized), then gemm_f32 over every block of x: the float32 values and sums of
    // expanding per block.
    const wide = Math.max(4, Math.floor(stride / (4 * K)) & ~3);
    for (let s0 = r0; s0 < r1; s0 += wide) {
      const s1 = Math.min(r1, s0 + wide);
      if (kind >= ${FIRST_QUANT_KIND}) {
        const [deq, , , elems, bytes] = QUANT_ROW[kind - ${FIRST_QUANT_KIND}];
        k[deq](w + s0 * (K / elems) * bytes, scratch, (s1 - s0) * (K / elems), c[b + ${J.TABLE}] >>> 0);
      } else (kind === 1 ? k.widen_f16 : k.widen_bf16)(w + s0 * K * 2, scratch, (s1 - s0) * K);
      for (let m0 = 0; m0 < M; m0 += mb) k.gemm_f32(x + m0 * K * 4, Math.min(mb, M - m0), scratch, K, y + (m0 * N + s0) * 4, N, s1 - s0);
    }
  }
}`;

const WORKER_SOURCE = `
const { workerData, parentPort, receiveMessageOnPort } = require("node:worker_threads");
const { module, ctrl, index, port } = workerData;
const c = new Int32Array(ctrl);
const ks = [];
${RUN_SHARE}
// One kernel instance per memory the caller has posted (in order) on this worker's port.
function attach() {
  while (ks.length < Atomics.load(c, ${C.MEMORIES}) && c[${C.QUIT}] !== 1) {
    const m = receiveMessageOnPort(port);
    if (m === undefined) { Atomics.wait(c, ${C.QUIT}, 0, 1); continue; } // posted before the count rose: not seen yet
    ks.push(new WebAssembly.Instance(module, { env: { memory: m.message } }).exports);
  }
}
attach();
let seen = Atomics.load(c, ${C.GEN});
parentPort.postMessage("ready");
for (;;) {
  Atomics.wait(c, ${C.GEN}, seen);
  seen = Atomics.load(c, ${C.GEN});
  if (c[${C.QUIT}] === 1) break;
  attach();
  const open = (seen << 1) | 0;
  // Take this call's seat unless the caller already closed it (it finished without us).
  if (Atomics.compareExchange(c, ${C.SEATS} + index, open, open | 1) !== open) continue;
  runShare(ks, c, index);
  Atomics.add(c, ${C.DONE}, 1);
  Atomics.notify(c, ${C.DONE});
}
`;

type RunShare = (ks: readonly KernelExports[], c: Int32Array, t: number) => void;
const runShare = new Function(`${RUN_SHARE}; return runShare;`)() as RunShare;

export class WorkerPool {
  readonly ctrl = new Int32Array(new SharedArrayBuffer(4 * (HEADER + MAX_JOBS * JOB_STRIDE)));
  private readonly workers: { worker: Worker; port: MessagePort }[] = [];

  private constructor() {}

  /** `threads` in all (the calling one included); fewer when worker threads are unavailable (sandbox). */
  static async create(module: WasmModule, threads: number): Promise<WorkerPool> {
    const pool = new WorkerPool();
    try {
      for (let index = 1; index < threads; index++) {
        const { port1, port2 } = new MessageChannel();
        const worker = new Worker(WORKER_SOURCE, {
          eval: true, workerData: { module, ctrl: pool.ctrl.buffer, index, port: port2 }, transferList: [port2],
        });
        await new Promise<void>((resolve, reject) => {
          worker.once("message", () => resolve());
          worker.once("error", reject);
        });
        worker.unref();
        port1.unref();
        pool.workers.push({ worker, port: port1 });
      }
    } catch (err) {
      if (process.env.LLAMA_TS_DEBUG) process.stderr.write(`llama-ts: worker threads unavailable (${String(err)})\n`);
      // Workers unavailable: run single-threaded.
      for (const w of pool.workers) void w.worker.terminate();
      pool.workers.length = 0;
    }
    return pool;
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /** Gives every worker an instance over `memory`, the next memory index (taken when the worker next wakes). */
  attach(memory: WasmMemory): void {
    for (const w of this.workers) w.port.postMessage(memory);
    Atomics.add(this.ctrl, C.MEMORIES, 1);
  }

  /** Runs the jobs written in the control block on `threads` threads (this one included), `kernels[i]` over memory i. */
  run(kernels: readonly KernelExports[], threads: number): void {
    const c = this.ctrl;
    Atomics.store(c, C.NEXT, 0);
    const gen = (c[C.GEN]! + 1) | 0;
    const open = (gen << 1) | 0;
    const parallel = threads > 1 && this.workers.length > 0;
    if (parallel) {
      Atomics.store(c, C.DONE, 0);
      for (let t = 1; t <= this.workers.length; t++) Atomics.store(c, C.SEATS + t, open);
      Atomics.store(c, C.GEN, gen);
      Atomics.notify(c, C.GEN);
    }
    runShare(kernels, c, 0);
    if (parallel) {
      // Close the seats of workers that have not started; wait for those that did.
      let taken = 0;
      for (let t = 1; t <= this.workers.length; t++) {
        if (Atomics.compareExchange(c, C.SEATS + t, open, -1) !== open) taken++;
      }
      for (let done = Atomics.load(c, C.DONE); done < taken; done = Atomics.load(c, C.DONE)) Atomics.wait(c, C.DONE, done);
    }
  }

  dispose(): void {
    Atomics.store(this.ctrl, C.QUIT, 1);
    Atomics.add(this.ctrl, C.GEN, 1);
    Atomics.notify(this.ctrl, C.GEN);
    for (const w of this.workers) {
      void w.worker.terminate();
      w.port.close();
    }
  }
}
