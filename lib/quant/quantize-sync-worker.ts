/**
 * A quantizing thread of SyncQuantizePool (quantize-sync-pool.ts), and the
 * share of one job that every thread runs, the caller included: take the next
 * chunk of rows (Atomics.add on the job's control block), quantize it with
 * quantizeRows into the shared output, count it done and wake the caller.
 * Rows are independent in every ggml format, so the bytes do not depend on
 * which thread took which chunk.
 */
import { parentPort, workerData } from "node:worker_threads";
import { type QuantOutputType, quantizeRows } from "./quantize.js";

/**
 * Control block (Int32Array over the job's own SharedArrayBuffer): [0] next
 * chunk to take, [1] chunks finished or given up, then one flag per chunk,
 * 1 once its bytes are written.
 */
export const CTRL = { NEXT: 0, DONE: 1, FLAGS: 2 } as const;

export interface SyncJob {
  readonly ctrl: SharedArrayBuffer;
  /** float32 rows. */
  readonly input: SharedArrayBuffer;
  /** The blocks of all rows, row after row. */
  readonly output: SharedArrayBuffer;
  readonly type: QuantOutputType;
  readonly nPerRow: number;
  readonly rows: number;
  readonly rowsPerChunk: number;
  readonly chunks: number;
  readonly rowBytes: number;
}

/** Quantizes chunk `i` of the job into its output and flags it written. */
export function runChunk(job: SyncJob, i: number): void {
  const r0 = i * job.rowsPerChunk, r1 = Math.min(job.rows, r0 + job.rowsPerChunk);
  const src = new Float32Array(job.input, r0 * job.nPerRow * 4, (r1 - r0) * job.nPerRow);
  new Uint8Array(job.output).set(quantizeRows(job.type, src, job.nPerRow), r0 * job.rowBytes);
  Atomics.store(new Int32Array(job.ctrl), CTRL.FLAGS + i, 1);
}

/**
 * Takes and quantizes chunks until none is left, counting each one done and
 * waking the caller. A chunk that throws stays unflagged: the caller redoes
 * it on its own thread (and so reports the error itself).
 */
export function runShare(job: SyncJob): void {
  const c = new Int32Array(job.ctrl);
  for (;;) {
    const i = Atomics.add(c, CTRL.NEXT, 1);
    if (i >= job.chunks) return;
    try {
      runChunk(job, i);
    } catch {
      /* left unflagged for the caller */
    }
    Atomics.add(c, CTRL.DONE, 1);
    Atomics.notify(c, CTRL.DONE);
  }
}

/** The workerData that marks a thread started by SyncQuantizePool (this module may be imported in other threads too). */
export const WORKER_ROLE = "llama-ts sync quantizer";

// In a pool thread: run a share of every job posted (a job whose chunks are all taken costs one Atomics.add).
if ((workerData as { role?: string } | null)?.role === WORKER_ROLE) parentPort?.on("message", (job: SyncJob) => runShare(job));
