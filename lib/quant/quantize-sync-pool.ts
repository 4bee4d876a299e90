/**
 * Quantizing on several threads from synchronous code: the weight loader
 * (lib/model/pretrained.ts) is called from model constructors and cannot
 * await, so QuantizePool's promises do not fit it. Here the caller posts a
 * job (rows in a SharedArrayBuffer) to every worker, takes chunks of rows
 * itself like any worker (quantize-sync-worker.ts), then blocks in
 * Atomics.wait until every chunk taken is done. A worker the OS has not
 * started yet (or a slow one) never holds the caller up: chunks are taken,
 * not assigned, and an unstarted worker takes none. A chunk a worker took
 * but did not finish (it failed, or stalled for STALL_MS) the caller redoes
 * itself: the bytes are the same whoever writes them. Each job has its own
 * control block, so a late worker reading an old job finds nothing left.
 *
 * The bytes equal quantizeRows' on one thread. The workers are unref'd and
 * shared by the process. Like QuantizePool, it runs only from the built
 * package (the worker is dist/lib/quant/quantize-sync-worker.js); from
 * TypeScript sources (tests under vitest) `syncQuantizePool` returns undefined
 * and the caller quantizes on its own thread.
 */
import * as os from "node:os";
import { Worker } from "node:worker_threads";
import { type QuantOutputType, blockSize, quantizeRows, typeBytes } from "./quantize.js";
import { CTRL, type SyncJob, WORKER_ROLE, runChunk, runShare } from "./quantize-sync-worker.js";

/** float32 values per chunk a thread takes at a time (256 KiB: tens of ms at most). */
const CHUNK_ELEMENTS = 1 << 16;
/** No chunk finished for this long: the caller stops waiting and does the unfinished ones. */
const STALL_MS = 10_000;

export class SyncQuantizePool {
  private constructor(private readonly workers: Worker[]) {}

  /** A pool of `threads` threads in all, the caller's included (default: the cores, at most 8); undefined for one. */
  static create(threads?: number): SyncQuantizePool | undefined {
    const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
    const n = Math.max(1, Math.min(64, threads ?? Math.min(cores, 8)));
    if (n < 2 || !import.meta.url.endsWith(".js")) return undefined;
    const url = new URL("./quantize-sync-worker.js", import.meta.url);
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < n - 1; i++) {
        const w = new Worker(url, { workerData: { role: WORKER_ROLE } });
        w.unref(); // never keeps the process alive
        w.on("error", () => { /* the caller redoes whatever chunk it left unfinished */ });
        workers.push(w);
      }
    } catch {
      for (const w of workers) void w.terminate();
      return undefined;
    }
    return new SyncQuantizePool(workers);
  }

  /** Threads in all, the caller's included. */
  get threads(): number {
    return this.workers.length + 1;
  }

  /** quantizeRows on every thread, synchronously: the same bytes. */
  quantize(type: QuantOutputType, rows: Float32Array, nPerRow: number): Uint8Array {
    const nRows = rows.length / nPerRow;
    const rowsPerChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / nPerRow));
    if (nRows <= rowsPerChunk || nPerRow % blockSize(type) !== 0 || !Number.isInteger(nRows)) return quantizeRows(type, rows, nPerRow);
    const input = new SharedArrayBuffer(rows.byteLength);
    new Float32Array(input).set(rows);
    const chunks = Math.ceil(nRows / rowsPerChunk);
    const job: SyncJob = {
      ctrl: new SharedArrayBuffer((CTRL.FLAGS + chunks) * 4),
      input,
      output: new SharedArrayBuffer(typeBytes(type, rows.length)),
      type, nPerRow, rows: nRows, rowsPerChunk, chunks,
      rowBytes: typeBytes(type, nPerRow),
    };
    for (const w of this.workers) w.postMessage(job);
    runShare(job);
    const c = new Int32Array(job.ctrl);
    for (let done = Atomics.load(c, CTRL.DONE); done < chunks; done = Atomics.load(c, CTRL.DONE)) {
      if (Atomics.wait(c, CTRL.DONE, done, STALL_MS) === "timed-out" && Atomics.load(c, CTRL.DONE) === done) break;
    }
    for (let i = 0; i < chunks; i++) if (Atomics.load(c, CTRL.FLAGS + i) !== 1) runChunk(job, i);
    return new Uint8Array(job.output).slice(); // an ordinary buffer: the backends copy or adopt it
  }
}

let shared: SyncQuantizePool | undefined | null = null;

/** The process's pool (created on first use), or undefined where there is none (one core, TypeScript sources). */
export function syncQuantizePool(): SyncQuantizePool | undefined {
  if (shared === null) shared = SyncQuantizePool.create();
  return shared;
}
