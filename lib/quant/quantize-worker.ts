/**
 * A quantizing thread for QuantizePool: receives float32 rows, answers with
 * their blocks (quantizeRows, the same bytes as on the main thread).
 */
import { parentPort } from "node:worker_threads";
import { quantizeRows, type QuantOutputType } from "./quantize.js";

interface Job {
  readonly id: number;
  readonly type: QuantOutputType;
  readonly rows: Float32Array;
  readonly nPerRow: number;
}

parentPort?.on("message", (job: Job) => {
  try {
    const out = quantizeRows(job.type, job.rows, job.nPerRow);
    parentPort!.postMessage({ id: job.id, out }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message });
  }
});
