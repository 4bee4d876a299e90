/**
 * KV-cache append and attention on the GPU (semantics of lib/backend/backend.ts).
 * Prefill (T > DECODE_MAX_T query rows) runs the flash kernel; decode runs the
 * split-K kernel, with a combine pass when the visible context spans several chunks.
 */
import type { AttentionMask, AttentionOptions } from "../../lib/backend/backend.js";
import { LlamaError } from "../../lib/errors.js";
import type { Deferred, GpuTensor } from "../buffers.js";
import type { Param } from "../executor.js";
import {
  DECODE_CHUNK, attendWithKernel, attentionWeightsKernel, decodeAttentionKernel, decodeCombineKernel, flashAttentionKernel,
  flashBlocks, flatGrid, headDimBucket, kvCopyKernel,
} from "../kernels/index.js";
import { act, gpu, type GpuRuntime } from "../runtime.js";

/** Up to this many query rows use the decode kernel. */
export const DECODE_MAX_T = 8;
/** Head sizes the attention kernels are built for (workgroup memory of the flash kernel). */
export const MAX_HEAD_DIM = 512;

function copyBlock(rt: GpuRuntime, src: GpuTensor, dst: GpuTensor["buf"], heads: number, T: number, D: number,
  capS: number, offS: number, capD: number, offD: number, B: number): void {
  const n = B * heads * T * D;
  rt.exec.dispatch(kvCopyKernel(), [{ buf: src.buf }, { buf: dst }], [n, heads, T, D, capS, offS, capD, offD],
    flatGrid(n, rt.ctx.limits.maxComputeWorkgroupsPerDimension));
}

/**
 * Split-K decode attention's output before its combine: the partials, and
 * the uniforms the combine (or a GEMV merging as it reads) takes. Reading the
 * output records the combine; o_proj's GEMV folds it in instead
 * (ops/fused-linear.ts), which is how a decode step past DECODE_CHUNK
 * positions keeps the dispatch count it has below.
 */
export class PendingMerge implements Deferred {
  constructor(
    private readonly rt: GpuRuntime,
    /** [B, heads, T, nSplit, D] unnormalized outputs, and each one's running max and sum [.., 2]. */
    readonly partO: GpuTensor,
    readonly partML: GpuTensor,
    /** The values the all-masked fallback averages. */
    readonly values: GpuTensor,
    /** ATTN_PARAMS as the combine kernel takes them. */
    readonly params: Param[],
    readonly shape: { B: number; heads: number; kvHeads: number; T: number; Tkv: number; cap: number; D: number; nSplit: number },
  ) {
    rt.hold(values);
  }
  materialize(t: GpuTensor): void {
    const { B, T, heads } = this.shape;
    const bindings = [{ buf: this.partO.buf }, { buf: this.partML.buf }, { buf: this.values.buf }, { buf: t.storage }];
    this.rt.exec.dispatch(decodeCombineKernel(), bindings, this.params, [T * heads, B]);
    this.done();
  }
  cancel(): void {
    this.done();
  }
  /** What a consumer that merges as it reads (the o_proj GEMV) reads, and so holds until it is recorded. */
  get inputs(): GpuTensor[] {
    return [this.partO, this.partML, this.values];
  }
  private done(): void {
    this.rt.release(this.partO);
    this.rt.release(this.partML);
    this.rt.unhold(this.values);
  }
}

/**
 * The KV-cache tensor that `x` [B, k, T, D] is appended to: cache [B, k, P, D]
 * (or undefined) → [B, k, P+T, D], rows P.. not yet written. Grows
 * geometrically (copying the old rows), in place when the capacity allows.
 */
export function kvReserve(rt: GpuRuntime, cacheIn: GpuTensor | undefined, x: GpuTensor, reserve = 0): { out: GpuTensor; past: number } {
  const [B, H, T, D] = x.shape as [number, number, number, number];
  if (x.shape.length !== 4) throw new LlamaError(`kvAppend: expected [B, heads, T, D], got [${x.shape.join(", ")}]`);
  const cache = cacheIn && gpu(cacheIn, "kvAppend cache");
  if (cache && (cache.shape[0] !== B || cache.shape[1] !== H || cache.shape[3] !== D || cache.dtype !== "f32")) {
    throw new LlamaError(`kvAppend: cache [${cache.shape.join(", ")}] cannot take [${x.shape.join(", ")}]`);
  }
  const P = cache ? cache.shape[2]! : 0;
  const S = P + T;
  if (cache) rt.settle(cache); // its own append, if still deferred, lands before this one
  if (cache && cache.capacity >= S) return { out: rt.transfer(cache, [B, H, S, D], cache.capacity), past: P };
  // Grow geometrically so token-by-token decoding copies the cache O(log T) times.
  const capacity = Math.max(S, cache ? cache.capacity * 2 : 0, 16, reserve);
  const out = rt.emptyExact([B, H, S, D], "kv", capacity);
  if (cache && P > 0) copyBlock(rt, cache, out.buf, H, P, D, cache.capacity, 0, capacity, 0, B);
  if (cache) rt.release(cache);
  return { out, past: P };
}

/** cache [B, k, P, D] (or undefined) + x [B, k, T, D] → [B, k, P+T, D] (a copy of x's values into the cache). */
export function kvAppend(rt: GpuRuntime, cacheIn: GpuTensor | undefined, xIn: GpuTensor, reserve = 0): GpuTensor {
  const x = act(xIn, "kvAppend input");
  const { out, past } = kvReserve(rt, cacheIn, x, reserve);
  const [B, H, T, D] = x.shape as [number, number, number, number];
  copyBlock(rt, x, out.storage, H, T, D, T, 0, out.capacity, past, B);
  return out;
}

export interface AttentionKernelChoice {
  /** Force the prefill (flash) or decode (split-K) kernel; tests use this. */
  kernel?: "flash" | "decode";
}

export function attention(rt: GpuRuntime, qIn: GpuTensor, kIn: GpuTensor, vIn: GpuTensor, mask: AttentionMask,
  opts: AttentionOptions & AttentionKernelChoice): { out: GpuTensor; weights?: GpuTensor } {
  const q = act(qIn, "attention queries");
  const k = gpu(kIn, "attention keys");
  const v = gpu(vIn, "attention values");
  const [B, n, T, D] = q.shape as [number, number, number, number];
  const [Bk, kh, S, Dk] = k.shape as [number, number, number, number];
  if (q.shape.length !== 4 || k.shape.length !== 4) throw new LlamaError("attention: q, k, v must be 4-D [B, heads, len, D]");
  if (Bk !== B || Dk !== D || v.shape[2] !== S || v.shape[1] !== kh || v.capacity !== k.capacity) {
    throw new LlamaError(`attention: q [${q.shape.join(", ")}], k [${k.shape.join(", ")}], v [${v.shape.join(", ")}] do not match`);
  }
  if (n % kh !== 0) throw new LlamaError(`attention: ${n} query heads are not a multiple of ${kh} kv heads`);
  if (D > MAX_HEAD_DIM) throw new LlamaError(`attention: head_dim ${D} above the supported ${MAX_HEAD_DIM}`);
  if (k.dtype !== "f32" || v.dtype !== "f32") throw new LlamaError("attention: keys and values must be float32");
  if (mask.keyMask && mask.keyMask.length !== B * S) {
    throw new LlamaError(`attention: key mask has ${mask.keyMask.length} entries, expected ${B}*${S}`);
  }
  const maskBuf = mask.keyMask ? rt.hostBuffer(Uint32Array.from(mask.keyMask)) : rt.dummy;
  const past = mask.queryOffset;
  const cap = k.capacity;
  const out = rt.empty([B, T, n * D]);
  const base = (nSplit: number) => [B, n, kh, T, S, cap, past, mask.keyMask ? 1 : 0, S, { f32: opts.scale }, nSplit, D];
  const bucket = headDimBucket(D);
  const inputs = [{ buf: q.buf }, { buf: k.buf }, { buf: v.buf }, { buf: maskBuf }];
  const kind = opts.kernel ?? (T <= DECODE_MAX_T ? "decode" : "flash");
  if (T > 0 && S > 0) {
    if (kind === "flash") {
      const { bq } = flashBlocks(bucket);
      rt.exec.dispatch(flashAttentionKernel(bucket), [...inputs, { buf: out.buf }], base(1), [Math.ceil(T / bq), n, B]);
    } else {
      const visible = Math.min(S, past + T);
      const nSplit = Math.max(1, Math.ceil(visible / DECODE_CHUNK));
      if (nSplit === 1) {
        rt.exec.dispatch(decodeAttentionKernel(bucket, D % 4 === 0, false), [...inputs, { buf: out.buf }], base(1), [1, T * n, B]);
      } else {
        const partO = rt.empty([B, n, T, nSplit, D]);
        const partML = rt.empty([B, n, T, nSplit, 2]);
        rt.exec.dispatch(decodeAttentionKernel(bucket, D % 4 === 0, true), [...inputs, { buf: partO.buf }, { buf: partML.buf }], base(nSplit), [nSplit, T * n, B]);
        out.pending = new PendingMerge(rt, partO, partML, v, base(nSplit), { B, heads: n, kvHeads: kh, T, Tkv: S, cap, D, nSplit });
      }
    }
  }
  let weights: GpuTensor | undefined;
  if (opts.returnWeights) {
    weights = rt.empty([B, n, T, S]);
    if (T > 0 && S > 0) {
      const wIn = [{ buf: q.buf }, { buf: k.buf }, { buf: maskBuf }, { buf: weights.buf }];
      rt.exec.dispatch(attentionWeightsKernel(), wIn, base(1), [T, n, B]);
    }
  }
  if (mask.keyMask) rt.pool.release(maskBuf);
  return { out, weights };
}

/** weights [B, n, T, S] · V [B, k, S, D] → [B, T, n*D]. */
export function attendWith(rt: GpuRuntime, wIn: GpuTensor, vIn: GpuTensor): GpuTensor {
  const w = act(wIn, "attendWith weights");
  const v = gpu(vIn, "attendWith values");
  const [B, n, T, S] = w.shape as [number, number, number, number];
  const [, kh, Sv, D] = v.shape as [number, number, number, number];
  if (Sv !== S || n % kh !== 0 || v.shape[0] !== B) {
    throw new LlamaError(`attendWith: weights [${w.shape.join(", ")}] do not match values [${v.shape.join(", ")}]`);
  }
  const out = rt.empty([B, T, n * D]);
  rt.exec.dispatch(attendWithKernel(), [{ buf: w.buf }, { buf: v.buf }, { buf: out.buf }], [n, kh, T, S, D, v.capacity], [T, n, B]);
  return out;
}
