/**
 * Quantizing on several threads: a slab of rows is cut into one part per
 * thread, each part quantized by a worker (quantize-worker.ts), the parts'
 * bytes put back in row order. Rows are independent in every ggml format, so
 * the bytes are the same as one thread's.
 *
 * Runs only from the built package (the worker is dist/lib/quant/quantize-worker.js);
 * from TypeScript sources (tests under vitest) `create` returns undefined and
 * the caller quantizes on its own thread.
 */
import * as os from "node:os";
import { Worker } from "node:worker_threads";
import { LlamaError } from "../errors.js";
import { type QuantOutputType, blockSize, quantizeRows, typeBytes } from "./quantize.js";

interface Reply {
  readonly id: number;
  readonly out?: Uint8Array;
  readonly error?: string;
}

export class QuantizePool {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();

  private constructor(private readonly workers: Worker[]) {
    for (const w of workers) {
      w.on("message", (m: Reply) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.out) p.resolve(m.out);
        else p.reject(new LlamaError(`quantize worker: ${m.error ?? "no result"}`));
      });
      w.on("error", (err) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
    }
  }

  /** A pool of `threads` workers (default: the cores, at most 8), or undefined for one thread or when workers cannot start. */
  static create(threads?: number): QuantizePool | undefined {
    const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
    const n = Math.max(1, Math.min(64, threads ?? Math.min(cores, 8)));
    const url = new URL("./quantize-worker.js", import.meta.url);
    if (n < 2 || !import.meta.url.endsWith(".js")) return undefined;
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < n; i++) workers.push(new Worker(url));
    } catch {
      for (const w of workers) void w.terminate();
      return undefined;
    }
    return new QuantizePool(workers);
  }

  get threads(): number {
    return this.workers.length;
  }

  /** quantizeRows on the pool: the same bytes. */
  async quantize(type: QuantOutputType, rows: Float32Array, nPerRow: number): Promise<Uint8Array> {
    const nRows = rows.length / nPerRow;
    if (nRows < 2 || nPerRow % blockSize(type) !== 0) return quantizeRows(type, rows, nPerRow);
    const per = Math.ceil(nRows / this.workers.length);
    const parts: Promise<Uint8Array>[] = [];
    for (let r = 0, w = 0; r < nRows; r += per, w++) {
      const part = rows.slice(r * nPerRow, Math.min(nRows, r + per) * nPerRow);
      const id = this.nextId++;
      parts.push(new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.workers[w]!.postMessage({ id, type, rows: part, nPerRow }, [part.buffer]);
      }));
    }
    const out = new Uint8Array(typeBytes(type, rows.length));
    let at = 0;
    for (const bytes of await Promise.all(parts)) {
      out.set(bytes, at);
      at += bytes.length;
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
