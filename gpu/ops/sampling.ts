/**
 * Next-token selection on the GPU: argmax, top-k, and sampling with
 * temperature / top-k / top-p / min-p. Only the chosen ids (4 bytes per row)
 * are read back.
 */
import { LlamaError } from "../../lib/errors.js";
import type { GpuTensor } from "../buffers.js";
import { MAX_TOP_K, argmaxKernel, sampleKernel, topKKernel } from "../kernels/index.js";
import { act, type GpuRuntime } from "../runtime.js";

export interface SampleOptions {
  temperature?: number;
  /** Candidates kept (1..MAX_TOP_K); HF's default is 50. */
  topK: number;
  topP?: number;
  minP?: number;
  /** One uniform number in [0, 1) per row, from the caller's (seeded) RNG. */
  uniforms: Float32Array;
}

function rowsOf(logits: GpuTensor): { R: number; V: number } {
  const V = logits.shape[logits.shape.length - 1]!;
  return { R: logits.size / V, V };
}

/** Greedy ids: logits [..., V] → one id per row. */
export async function argmax(rt: GpuRuntime, logitsIn: GpuTensor): Promise<Int32Array> {
  const logits = act(logitsIn, "argmax input");
  const { R, V } = rowsOf(logits);
  const ids = rt.pool.acquire(R * 4);
  rt.exec.dispatch(argmaxKernel(), [{ buf: logits.buf }, { buf: ids }], [V], [R]);
  const raw = await rt.exec.read({ buf: ids }, R * 4);
  rt.pool.release(ids);
  return new Int32Array(raw);
}

/** The k best logits per row, sorted (value desc, index asc): values [R, k], indices [R, k]. */
export async function topK(rt: GpuRuntime, logitsIn: GpuTensor, k: number): Promise<{ values: Float32Array; indices: Int32Array }> {
  const logits = act(logitsIn, "topK input");
  const { R, V } = rowsOf(logits);
  const kk = checkK(k, V);
  const { vals, idx } = recordTopK(rt, logits, R, V, kk);
  const values = new Float32Array(await rt.exec.read({ buf: vals }, R * kk * 4));
  const indices = new Int32Array(await rt.exec.read({ buf: idx }, R * kk * 4));
  rt.pool.release(vals);
  rt.pool.release(idx);
  return { values, indices };
}

/** Samples one id per row with HF's warper order (temperature → top-k → top-p → min-p). */
export async function sample(rt: GpuRuntime, logitsIn: GpuTensor, opts: SampleOptions): Promise<Int32Array> {
  const logits = act(logitsIn, "sample input");
  const { R, V } = rowsOf(logits);
  const kk = checkK(opts.topK, V);
  const temperature = opts.temperature ?? 1;
  if (!(temperature > 0)) throw new LlamaError(`sample: temperature must be > 0, got ${temperature}`);
  if (opts.uniforms.length !== R) throw new LlamaError(`sample: ${opts.uniforms.length} random numbers for ${R} rows`);
  const { vals, idx } = recordTopK(rt, logits, R, V, kk);
  const u = rt.hostBuffer(opts.uniforms);
  const ids = rt.pool.acquire(R * 4);
  rt.exec.dispatch(sampleKernel(), [{ buf: vals }, { buf: idx }, { buf: u }, { buf: ids }],
    [R, kk, { f32: temperature }, { f32: opts.topP ?? 1 }, { f32: opts.minP ?? 0 }], [Math.ceil(R / 64)]);
  const raw = await rt.exec.read({ buf: ids }, R * 4);
  for (const b of [vals, idx, u, ids]) rt.pool.release(b);
  return new Int32Array(raw);
}

function checkK(k: number, V: number): number {
  if (!Number.isInteger(k) || k < 1 || k > MAX_TOP_K) throw new LlamaError(`top-k on the GPU takes k in 1..${MAX_TOP_K}, got ${k}`);
  return Math.min(k, V);
}

function recordTopK(rt: GpuRuntime, logits: GpuTensor, R: number, V: number, k: number) {
  const vals = rt.pool.acquire(R * k * 4);
  const idx = rt.pool.acquire(R * k * 4);
  rt.exec.dispatch(topKKernel(), [{ buf: logits.buf }, { buf: vals }, { buf: idx }], [V, k], [R]);
  return { vals, idx };
}
