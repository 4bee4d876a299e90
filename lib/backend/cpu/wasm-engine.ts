/**
 * The WebAssembly linear engine: weights are copied once into shared
 * WebAssembly memories (freed again when their tensor is garbage-collected).
 * One memory addresses at most 4 GiB, so weights spread over as many memories
 * as they need (wasm-arena.ts); every thread holds a kernel instance on each
 * (wasm-pool.ts). A call copies x into the workspace of each memory its
 * weights live in, runs the SIMD kernels there (split by output rows across
 * the worker threads when it is big) and copies y out.
 */
import * as os from "node:os";
import type { DType } from "../../tensor/dtype.js";
import type { LinearEngine, LinearJob, LowRankEpilogue } from "./linear-engine.js";
import { runJobJs } from "./quant-js.js";
import { FIRST_QUANT_KIND, INT8_DOT_TYPES, QUANT_KINDS } from "./wasm-quant.js";
import { quantizeQ8_0 } from "../../quant/q4-q5-q8.js";
import { addBias } from "./bias.js";
import { kernelModule, type KernelExports } from "./wasm-kernels.js";
import { wasm, type WasmModule } from "./wasm-api.js";
import { MEMORY_MAX_BYTES, WasmArena } from "./wasm-arena.js";
import { C, HEADER, J, JOB_STRIDE, MAX_JOBS, MAX_THREADS, TASK_KIND, WorkerPool, threadScratchBytes } from "./wasm-pool.js";
import { FLOAT64_FIELDS, TASKS, TASK_PARAMS, type HighField, type TaskName } from "./wasm-tasks.js";
import { ATTN_DK, ATTN_DQ, ATTN_DV } from "./wasm-attention-backward.js";
import { SOFTMAX_STATS } from "./wasm-softmax-rows.js";
import type { AttentionShapes } from "../../tensor/ops.js";

const MIB = 2 ** 20;
/**
 * Default bytes of weights and caches per memory: all of it but 128 MiB, which
 * stays free for the workspace of the products on that memory's weights.
 */
export const DEFAULT_MEMORY_CAP = MEMORY_MAX_BYTES - 128 * MIB;
/** Workspace per call and memory: a prefill with more x rows than fit runs in blocks of rows (same numbers). */
const WORKSPACE_BYTES = 64 * MIB;
/** Below this many weight bytes per call (and GEMM_THREAD_MIN_MACS multiply-adds), one thread is faster than waking the others. */
const THREAD_MIN_BYTES = 96 * 1024;
/**
 * Chunks per thread and job: small enough that a thread the OS runs late leaves little work behind.
 * The caller waits for the other threads' last chunks: over 9 DPO steps (profiled) 385–387 ms of
 * waiting with 4 per thread, 269–321 ms with 16, the products' own time unchanged.
 */
const CHUNKS_PER_THREAD = 16;
/** An elementwise kernel over fewer elements than this runs on the calling thread alone. */
const ELEMENTWISE_THREAD_MIN = 1 << 18;
/** A `gemm` of fewer multiply-adds than this runs on the calling thread alone (waking the others costs more). */
const GEMM_THREAD_MIN_MACS = 1 << 22;

const KIND: Record<DType, number> = { f32: 0, f16: 1, bf16: 2 };
const kindOf = (j: LinearJob): number => (j.quant ? FIRST_QUANT_KIND + QUANT_KINDS.indexOf(j.quant) : KIND[j.dtype]);

const NO_BUFFER = new ArrayBuffer(0);

/** Fields of a parameter block that serves gemm_nn_rows and gemm_tn_cols alike. */
const PRODUCT_PARAMS = Math.max(TASK_PARAMS.gemm_nn_rows.length, TASK_PARAMS.gemm_tn_cols.length);

/** Workspace bytes the epilogue takes after the products' (e, a parameter block, xt's b and out). */
function epilogueRoom({ e, xt }: LowRankEpilogue): number {
  return 4 * (e.length + PRODUCT_PARAMS + (xt ? xt.b.length + xt.out.length : 0));
}

/** One memory's share of a call: its workspace and the bytes per x row it holds (x's row, its jobs' outputs). */
interface Workspace {
  arena: WasmArena;
  perRow: number;
  base: number;
  /** Where the next job's output goes. */
  y: number;
  buf: ArrayBufferLike;
}

/** Where a tensor's storage lives: its memory and its address there. */
interface Home {
  arena: WasmArena;
  ptr: number;
}

/** A kernel result to copy out of the workspace: slot `slot`'s room, into that array (a number) or into `into` (as many floats as it holds). */
type ResultCopy = number | { slot: number; into: Float32Array };

/** Room lent by hostBytes: where, how big, and the finalizer token of the view it was lent as. */
interface Lent {
  home: Home;
  bytes: number;
  token: object;
}

export class WasmLinearEngine implements LinearEngine {
  private readonly arenas: WasmArena[] = [];
  /** arenas[i].kernels, the calling thread's instances in memory order (what jobs name). */
  private readonly kernels: KernelExports[] = [];
  private readonly homes = new WeakMap<ArrayBufferView, Home>();
  private readonly finalizer: FinalizationRegistry<[WasmArena, number, number]>;
  /** Room handed out by hostBytes and not yet adopted, by the buffer its view is over, then address. */
  private readonly lent = new Map<ArrayBufferLike, Map<number, Lent>>();
  private readonly warned = new Set<string>();
  private disposed = false;

  private constructor(
    private readonly module: WasmModule,
    private readonly pool: WorkerPool,
    private readonly quantDot: "exact" | "int8",
    /** Bytes of weights and caches one memory takes (a tensor larger than this gets a memory of its own). */
    private readonly memoryCap: number,
  ) {
    this.finalizer = new FinalizationRegistry(([arena, ptr, bytes]) => {
      if (this.disposed) return;
      arena.heap.release(ptr, bytes);
      for (const [buffer, byPtr] of this.lent) if (byPtr.get(ptr)?.home.arena === arena) this.forgetLent(buffer, ptr);
    });
  }

  /** Drops a lent room's entry (and its buffer's map once empty: a grown memory's old buffer would otherwise stay keyed). */
  private forgetLent(buffer: ArrayBufferLike, ptr: number): void {
    const byPtr = this.lent.get(buffer);
    byPtr?.delete(ptr);
    if (byPtr?.size === 0) this.lent.delete(buffer);
  }

  /**
   * The engine, or undefined when this runtime lacks wasm SIMD or shared memory.
   * `memoryCap`: bytes of weights and caches per WebAssembly memory (default
   * DEFAULT_MEMORY_CAP; more memories are added as needed).
   */
  static async create(threads?: number, quantDot: "exact" | "int8" = "exact", memoryCap = DEFAULT_MEMORY_CAP): Promise<WasmLinearEngine | undefined> {
    const module = kernelModule();
    if (!module || !wasm || typeof SharedArrayBuffer === "undefined") return undefined;
    const first = WasmArena.create(module, 0);
    if (!first) return undefined;
    const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
    const total = Math.max(1, Math.min(MAX_THREADS, threads ?? Math.min(cores, 4)));
    const pool = await WorkerPool.create(module, total);
    const engine = new WasmLinearEngine(module, pool, quantDot, Math.min(memoryCap, MEMORY_MAX_BYTES));
    engine.addArena(first);
    return engine;
  }

  get description(): string {
    const memories = this.arenas.length > 1 ? `, ${this.arenas.length} memories` : "";
    const int8 = this.quantDot === "int8" ? ", int8 decode products" : "";
    return `wasm simd kernels, ${this.threads} thread${this.threads > 1 ? "s" : ""}${memories}${int8}`;
  }

  get threads(): number {
    return this.pool.threads;
  }

  /** How many WebAssembly memories hold this engine's tensors. */
  get memories(): number {
    return this.arenas.length;
  }

  private addArena(arena: WasmArena): void {
    this.arenas.push(arena);
    this.kernels.push(arena.kernels);
    this.pool.attach(arena.memory);
  }

  private warnOnce(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    process.stderr.write(`llama-ts: ${message}\n`);
  }

  /**
   * Room for `bytes` of data: the first memory with room under the cap, else a
   * new memory (which takes one tensor larger than the cap too). Undefined
   * when no memory can be made or grown (callers keep JS arrays then).
   */
  private place(bytes: number): Home | undefined {
    for (const arena of this.arenas) {
      const ptr = arena.heap.tryAlloc(bytes, this.memoryCap);
      if (ptr !== undefined) return { arena, ptr };
    }
    const arena = WasmArena.create(this.module, this.arenas.length);
    const ptr = arena?.heap.tryAlloc(bytes, MEMORY_MAX_BYTES);
    if (!arena || ptr === undefined) {
      this.warnOnce(`no WebAssembly memory can take a ${(bytes / MIB).toFixed(1)} MiB tensor; such tensors use the (slower) JavaScript kernels`);
      return undefined;
    }
    this.addArena(arena);
    return { arena, ptr };
  }

  /**
   * Uninitialized room for `bytes` in a kernel memory, for a weight to be read
   * straight into: adopting a view over exactly it copies nothing. Besides
   * the copy, this saves touching fresh pages twice; on this project's VMs a
   * first touch runs at ~150–250 MB/s, slower than reading the file.
   * Freed when the returned view is collected unadopted.
   */
  hostBytes(bytes: number): Uint8Array | undefined {
    const home = this.place(bytes);
    if (!home) return undefined;
    const view = new Uint8Array(home.arena.buffer, home.ptr, bytes);
    const token = {};
    this.finalizer.register(view, [home.arena, home.ptr, bytes], token);
    let byPtr = this.lent.get(view.buffer);
    if (!byPtr) this.lent.set(view.buffer, (byPtr = new Map()));
    byPtr.set(home.ptr, { home, bytes, token });
    return view;
  }

  /** The lent room `data` covers exactly, if any. */
  private lentTo(data: ArrayBufferView): Lent | undefined {
    const lent = this.lent.get(data.buffer)?.get(data.byteOffset);
    return lent && lent.bytes === data.byteLength ? lent : undefined;
  }

  isLent(data: ArrayBufferView): boolean {
    return this.lentTo(data) !== undefined;
  }

  adopt<T extends Float32Array | Uint16Array | Uint8Array>(data: T, dtype?: DType): T {
    const bytes = data.byteLength;
    const lent = this.lentTo(data);
    if (lent) {
      // Read in place by the loader: the room becomes the tensor's.
      this.forgetLent(data.buffer, data.byteOffset);
      this.finalizer.unregister(lent.token);
      this.finalizer.register(data, [lent.home.arena, lent.home.ptr, bytes]);
      return this.settle(data, lent.home, dtype);
    }
    const home = this.place(bytes);
    if (!home) return data;
    const buf = home.arena.buffer;
    const view = (data instanceof Float32Array
      ? new Float32Array(buf, home.ptr, data.length)
      : data instanceof Uint8Array ? new Uint8Array(buf, home.ptr, data.length)
      : new Uint16Array(buf, home.ptr, data.length)) as T;
    view.set(data as never);
    this.finalizer.register(view, [home.arena, home.ptr, bytes]);
    return this.settle(view, home, dtype);
  }

  /** Registers a tensor now stored at `home` for the kernels. */
  private settle<T extends Float32Array | Uint16Array | Uint8Array>(view: T, home: Home, dtype?: DType): T {
    // The f16 register widening maps inf/NaN to finite values: such (rare)
    // tensors are left off the wasm path (not in `homes`), so the exact
    // JavaScript kernel handles them.
    if (dtype === "f16" && this.hasNonFiniteF16(view as Uint16Array, home)) return view;
    this.homes.set(view, home);
    return view;
  }

  private hasNonFiniteF16(view: Uint16Array, home: Home): boolean {
    const n8 = view.length - (view.length % 8);
    if (home.arena.kernels.has_nonfinite_f16(home.ptr, n8)) return true;
    for (let i = n8; i < view.length; i++) if ((view[i]! & 0x7c00) === 0x7c00) return true;
    return false;
  }

  allocF32(length: number): Float32Array {
    const bytes = length * 4;
    const home = this.place(bytes);
    if (!home) return new Float32Array(length);
    const view = new Float32Array(home.arena.buffer, home.ptr, length);
    this.homes.set(view, home);
    this.finalizer.register(view, [home.arena, home.ptr, bytes]);
    return view;
  }

  /**
   * Attention's forward on attn_fwd_groups (wasm-attention-forward.ts) in the keys'
   * memory, the (batch row, kv head) groups split over the threads when the
   * work is big: q [B, n, T, D] is copied in, the keys are read where the cache
   * holds them (values in another memory are copied next to them), and out
   * [B, T, n·D] and the weights [B, n, T, S] (when asked for) are copied back.
   * False (nothing written) when a cache is not in wasm memory, D is not a
   * multiple of 16 or there is no room.
   */
  attention(
    q: Float32Array, kd: Float32Array, vd: Float32Array, s: AttentionShapes, scale: number,
    queryOffset: number, keyMask: Uint8Array | undefined, out: Float32Array, weights: Float32Array | undefined,
  ): boolean {
    const kHome = this.homes.get(kd), vHome = this.homes.get(vd);
    if (!kHome || !vHome || s.D % 16 !== 0) return false;
    const { B, n, k: kh, T, S, D, kvHeadStride } = s;
    const arena = kHome.arena, groups = B * kh, R = (n / kh) * T;
    const copyValues = vHome.arena !== arena;
    const results: ResultCopy[] = [{ slot: 1, into: out }];
    if (weights) results.push({ slot: 2, into: weights });
    // q, out, the weights (all of them, or one R·S block per thread), each thread's output rows, the key mask (bytes),
    // the values when they live in another memory, the parameter block
    const rooms = [q, out.length, weights ? weights.length : this.threads * R * S, this.threads * R * D,
      keyMask ? Math.ceil(keyMask.length / 4) : 0, copyValues ? groups * S * D : 0, TASK_PARAMS.attn_fwd_groups.length];
    return this.onScratch(rooms, ([pQ, pOut, pP, pOs, pMask, pV, pParams]) => {
      const buf = arena.buffer;
      if (keyMask) new Uint8Array(buf, pMask!, keyMask.length).set(keyMask);
      if (copyValues) {
        const values = new Float32Array(buf, pV!, groups * S * D);
        for (let u = 0; u < groups; u++) values.set(vd.subarray(u * kvHeadStride, u * kvHeadStride + S * D), u * S * D);
      }
      const params = this.taskParams(pParams!, "attn_fwd_groups", {
        Q: pQ!, K: kHome.ptr, V: copyValues ? pV! : vHome.ptr, P: pP!, Os: pOs!, out: pOut!, mask: keyMask ? pMask! : 0,
        R, S, D, T, kvHeads: kh, kStride: kvHeadStride, vStride: copyValues ? S * D : kvHeadStride, queryOffset,
        pPerGroup: weights ? 1 : 0, scale,
      }, arena);
      const macs = 2 * R * S * D * groups; // scores and P·V
      this.runTask("attn_fwd_groups", params, groups, macs >= GEMM_THREAD_MIN_MACS ? this.threads : 1, arena);
    }, results, arena);
  }

  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array): boolean {
    const arena = this.arenas[0]!;
    const n = gate.length;
    const n4 = Math.ceil(n / 4) * 4; // zero padding: silu(0) · 0 = 0
    const base = arena.scratch(12 * n4 + 16);
    if (base === undefined) return false;
    const buf = arena.buffer;
    const g = new Float32Array(buf, base, n4);
    const u = new Float32Array(buf, base + 4 * n4, n4);
    g.set(gate);
    u.set(up);
    g.fill(0, n);
    u.fill(0, n);
    this.elementwise("silu_mul_span", [base, base + 4 * n4, base + 8 * n4], n4, base + 12 * n4);
    out.set(new Float32Array(buf, base + 8 * n4, n));
    return true;
  }

  /**
   * An elementwise kernel k(x, y, z, count) over `count` elements (a multiple of 4)
   * of three arrays in the first memory: on this thread, or as task `span`
   * split over the threads when the arrays are long (its parameter block, 3
   * pointers, written at `params`).
   */
  private elementwise(span: "silu_mul_span" | "silu_mul_backward_span", ptrs: readonly [number, number, number], count: number, params: number): void {
    const arena = this.arenas[0]!;
    if (this.threads === 1 || count < ELEMENTWISE_THREAD_MIN) {
      (span === "silu_mul_span" ? arena.kernels.silu_mul : arena.kernels.silu_mul_backward)(ptrs[0], ptrs[1], ptrs[2], count);
      return;
    }
    new Int32Array(arena.buffer, params, 3).set(ptrs);
    this.runTask(span, params, count / 4, this.threads);
  }

  /**
   * out[M,N] (+)= a[M,K] · b[N,K]ᵀ (on the pool when big, gemmOnPool). The kernel wants K in
   * multiples of 8 and N in multiples of 4: both are zero-padded in the
   * workspace (zero columns add nothing to a dot product; padded rows are dropped).
   */
  gemm(a: Float32Array, b: Float32Array, out: Float32Array, M: number, N: number, K: number,
    accumulate: boolean, aOff: number, bOff: number, outOff: number): boolean {
    if (M === 0 || N === 0) return true;
    const arena = this.arenas[0]!;
    const Kp = Math.ceil(K / 8) * 8, Np = Math.ceil(N / 4) * 4;
    const aBytes = 4 * M * Kp, bBytes = 4 * Np * Kp;
    const base = arena.scratch(aBytes + bBytes + 4 * M * Np);
    if (base === undefined) return false;
    const buf = arena.buffer; // after scratch(): growing the memory replaces the buffer
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
    if (this.threads > 1 && M * Np * Kp >= GEMM_THREAD_MIN_MACS) this.gemmOnPool(arena, base, M, base + aBytes, Kp, base + aBytes + bBytes, Np);
    else arena.kernels.gemm_f32(base, M, base + aBytes, Kp, base + aBytes + bBytes, Np, Np);
    for (let m = 0; m < M; m++) {
      const o = outOff + m * N, y = m * Np;
      if (accumulate) for (let n = 0; n < N; n++) out[o + n] = out[o + n]! + Y[y + n]!;
      else out.set(Y.subarray(y, y + N), o);
    }
    return true;
  }

  /**
   * out[M, N] += s · a[M, J] · b[J, N] (gemm_nn: J small, a LoRA rank), its rows
   * split over the threads when it is big. False (nothing written) when N is
   * not a multiple of 16 or the workspace has no room.
   */
  gemmNN(a: Float32Array, b: Float32Array, out: Float32Array, M: number, J: number, N: number, s: number): boolean {
    if (N % 16 !== 0) return false;
    return this.onScratch([a, b, out, TASK_PARAMS.gemm_nn_rows.length],
      ([pa, pb, po, pp]) => this.gemmNnIn(this.arenas[0]!, pa!, M, J, pb!, N, s, po!, pp!), 2);
  }

  /** gemm_nn on addresses in `arena`, on this thread or its rows split over the threads when big (the parameter block at `params`). */
  private gemmNnIn(arena: WasmArena, a: number, M: number, J: number, b: number, N: number, s: number, out: number, params: number): void {
    if (M * J * N < GEMM_THREAD_MIN_MACS) arena.kernels.gemm_nn(a, M, J, b, N, s, out);
    else this.runTask("gemm_nn_rows", this.taskParams(params, "gemm_nn_rows", { a, M, J, b, N, s, out }, arena), M, this.threads, arena);
  }

  /**
   * out[S, D] += a[R, S]ᵀ · b[R, D] (gemm_tn: a weight gradient summed over R
   * rows, out kept small), its S rows of out split over the threads when it is
   * big. False when D is not a multiple of 4 or the workspace has no room.
   */
  gemmTN(a: Float32Array, b: Float32Array, out: Float32Array, R: number, S: number, D: number): boolean {
    if (D % 4 !== 0) return false;
    return this.onScratch([a, b, out, TASK_PARAMS.gemm_tn_cols.length],
      ([pa, pb, po, pp]) => this.gemmTnIn(this.arenas[0]!, pa!, R, S, pb!, D, po!, pp!), 2);
  }

  /** gemm_tn on addresses in `arena` (a's rows S floats apart), on this thread or out's rows split over the threads when big. */
  private gemmTnIn(arena: WasmArena, a: number, R: number, S: number, b: number, D: number, out: number, params: number): void {
    if (R * S * D < GEMM_THREAD_MIN_MACS) arena.kernels.gemm_tn(a, R, S, S, b, D, out);
    else this.runTask("gemm_tn_cols", this.taskParams(params, "gemm_tn_cols", { a, R, S, b, D, out }, arena), S, this.threads, arena);
  }

  /**
   * Softmax statistics (wasm-softmax-rows.ts) of rows rows[u] of x [*, V], split over the threads
   * when there are many: returns stats [R, 5] float64; with `probs` (like x) its listed rows get
   * the softmax. Undefined (nothing written) when there is no room.
   */
  softmaxRows(x: Float32Array, V: number, rows: Int32Array, probs: Float32Array | undefined): Float64Array | undefined {
    const R = rows.length, width = SOFTMAX_STATS.length;
    const stats = new Float64Array(R * width);
    if (R === 0) return stats;
    const done = this.onScratch([R * V, probs ? R * V : 0, 2 * R * width, TASK_PARAMS.softmax_rows.length], ([px, pp, ps, pParams]) => {
      const buf = this.arenas[0]!.buffer;
      const xs = new Float32Array(buf, px!, R * V);
      rows.forEach((r, u) => xs.set(x.subarray(r * V, (r + 1) * V), u * V));
      const params = this.taskParams(pParams!, "softmax_rows", { x: px!, V, probs: probs ? pp! : 0, stats: ps! });
      this.runTask("softmax_rows", params, R, R * V >= ELEMENTWISE_THREAD_MIN ? this.threads : 1);
      stats.set(new Float64Array(buf, ps!, R * width));
      if (probs) {
        const ps32 = new Float32Array(buf, pp!, R * V);
        rows.forEach((r, u) => probs.set(ps32.subarray(u * V, (u + 1) * V), r * V));
      }
    }, []);
    return done ? stats : undefined;
  }

  /**
   * The gradients of out = silu(gate) · up for the output gradient g
   * (silu_mul_backward, split over the threads when long): dGate =
   * g·up·silu'(gate), dUp = g·silu(gate), either null when not wanted; dUp may
   * be g itself. False when the workspace has no room.
   */
  siluMulBackward(gate: Float32Array, up: Float32Array, g: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null): boolean {
    // Each array's room is rounded up to 16 bytes, so a count rounded up to 4 stays in it
    // (the extra lanes compute garbage that is never copied back).
    const count = Math.ceil(g.length / 4) * 4;
    const results: ResultCopy[] = [];
    if (dGate) results.push({ slot: 0, into: dGate });
    if (dUp) results.push({ slot: 2, into: dUp });
    return this.onScratch([gate, up, g, 3], ([pg, pu, pd, pp]) => this.elementwise("silu_mul_backward_span", [pg!, pu!, pd!], count, pp!), results);
  }

  /**
   * The gradients of RMSNorm y = w · x · rstd over rows of H (rms_norm_backward)
   * for the output gradient g: dx [rows, H] (may be g itself) and dw [H] added
   * to, either null when not wanted. False when H is not a multiple of 4 or the
   * workspace has no room.
   */
  rmsNormBackward(x: Float32Array, w: Float32Array, g: Float32Array, rstd: Float32Array, H: number,
    dx: Float32Array | null, dw: Float32Array | null): boolean {
    if (H % 4 !== 0) return false;
    const results: ResultCopy[] = [];
    if (dx) results.push({ slot: 2, into: dx });
    if (dw) results.push(4);
    return this.onScratch([x, w, g, rstd, dw ?? new Float32Array(H)],
      ([px, pw, pd, pr, pdw]) => this.arenas[0]!.kernels.rms_norm_backward(px!, pw!, pd!, pr!, rstd.length, H, pdw!), results);
  }

  /**
   * The gradient of splitHeads with RoPE on this thread (rope_backward): g [B,
   * heads, T, D] → dx [B, T, heads·D], cos and sin [B, T, D/2]. dx may be g
   * itself (the kernel writes a room of its own, copied back). False when D/2
   * is not a multiple of 4 or the workspace has no room.
   */
  ropeBackward(g: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, heads: number, D: number,
    dx: Float32Array): boolean {
    if (D % 8 !== 0) return false;
    return this.onScratch([g, cos, sin, dx.length],
      ([pg, pc, ps, pdx]) => this.arenas[0]!.kernels.rope_backward(pg!, pc!, ps!, B, T, heads, D, pdx!), { slot: 3, into: dx });
  }

  /**
   * RMSNorm of rows of H (rms_norm_rows: rmsNormInto's bits), the rows split over the threads when
   * there are many: out [rows, H] and, when given, rstd [rows]. False when H is not a multiple of 4
   * or the workspace has no room.
   */
  rmsNorm(x: Float32Array, w: Float32Array, eps: number, H: number, out: Float32Array, rstd?: Float32Array): boolean {
    const rows = x.length / H;
    if (H % 4 !== 0 || rows === 0) return false;
    const results: ResultCopy[] = [{ slot: 2, into: out }];
    if (rstd) results.push({ slot: 3, into: rstd });
    return this.onScratch([x, w, x.length, rows, TASK_PARAMS.rms_norm_rows.length], ([px, pw, po, pr, pp]) => {
      const params = this.taskParams(pp!, "rms_norm_rows", { x: px!, w: pw!, out: po!, rstd: pr!, H, eps });
      this.runTask("rms_norm_rows", params, rows, x.length >= ELEMENTWISE_THREAD_MIN ? this.threads : 1);
    }, results);
  }

  /**
   * splitHeads with RoPE on this thread (rope_forward, splitHeadsInto's bits): x [B, T, heads·D]
   * → out [B, heads, T, D], cos and sin [B, T, D/2]. False when D/2 is not a multiple of 4 or the
   * workspace has no room.
   */
  ropeForward(x: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, heads: number, D: number,
    out: Float32Array): boolean {
    if (D % 8 !== 0) return false;
    return this.onScratch([x, cos, sin, out.length],
      ([px, pc, ps, po]) => this.arenas[0]!.kernels.rope_forward(px!, pc!, ps!, B, T, heads, D, po!), { slot: 3, into: out });
  }

  /**
   * Copies `arrays` into the workspace of `arena` (the first memory unless
   * named; a number: room for that many floats, not copied), runs `kernel` on
   * their addresses, and copies the `results` back. False when there is no room.
   */
  private onScratch(arrays: readonly (Float32Array | number)[], kernel: (ptrs: number[]) => void, results: ResultCopy | readonly ResultCopy[],
    arena = this.arenas[0]!): boolean {
    const room = (x: Float32Array | number) => 4 * (typeof x === "number" ? x : x.length) + 15 & ~15;
    let bytes = 0;
    for (const x of arrays) bytes += room(x);
    const base = arena.scratch(bytes);
    if (base === undefined) return false;
    const buf = arena.buffer; // after scratch(): growing the memory replaces the buffer
    const ptrs: number[] = [];
    let p = base;
    for (const x of arrays) {
      if (typeof x !== "number") new Float32Array(buf, p, x.length).set(x);
      ptrs.push(p);
      p += room(x);
    }
    kernel(ptrs);
    for (const r of Array.isArray(results) ? results : [results]) {
      const { slot, into } = typeof r === "number" ? { slot: r, into: arrays[r] as Float32Array } : r;
      into.set(new Float32Array(buf, ptrs[slot]!, into.length));
    }
    return true;
  }

  /**
   * Attention's backward on attn_bwd_groups (wasm-attention-backward.ts): the
   * (batch row, kv head) groups split over the worker threads, every operand
   * in the first memory's workspace: P [B, n, T, S] and q [B, n, T, D] from the forward, k and v
   * [B, k, S, D], the output gradient dOut [B, T, n·D] (gathered into q's
   * layout here), rowScale [B, T] (the softmax scale, 0 for a row that sees no
   * key). Writes each requested gradient (dq like q, dk and dv like k).
   * False (nothing written) when D is not a multiple of 16 or there is no room.
   */
  attentionBackward(
    P: Float32Array, dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, rowScale: Float32Array,
    s: AttentionShapes, dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null,
  ): boolean {
    const { B, n, k: kh, T, S, D } = s;
    if (D % 16 !== 0) return false;
    const rep = n / kh, R = rep * T;
    const QN = B * n * T * D, KN = B * kh * S * D;
    const results: ResultCopy[] = [];
    if (dq) results.push({ slot: 5, into: dq });
    if (dk) results.push({ slot: 6, into: dk });
    if (dv) results.push({ slot: 7, into: dv });
    // Rooms after P, q, k, v: dO, dQ, dK, dV, dS (one R·S block per thread), rowScale per group row, the parameter block.
    const rooms = [P, q, k, v, QN, QN, KN, KN, this.threads * R * S, B * R, TASK_PARAMS.attn_bwd_groups.length];
    return this.onScratch(rooms, ([pP, pQ, pK, pV, pdO, pdQ, pdK, pdV, pdS, pRowScale, pParams]) => {
      const buf = this.arenas[0]!.buffer;
      for (const [at, len] of [[pdQ!, QN], [pdK!, KN], [pdV!, KN]] as const) new Float32Array(buf, at, len).fill(0);
      const dO = new Float32Array(buf, pdO!, QN), scales = new Float32Array(buf, pRowScale!, B * R);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < n; h++) {
          for (let i = 0; i < T; i++) {
            const src = (b * T + i) * n * D + h * D;
            dO.set(dOut.subarray(src, src + D), ((b * n + h) * T + i) * D);
          }
        }
        for (let hh = 0; hh < rep; hh++) scales.set(rowScale.subarray(b * T, (b + 1) * T), b * R + hh * T);
      }
      const parts = (dv ? ATTN_DV : 0) | (dq ? ATTN_DQ : 0) | (dk ? ATTN_DK : 0);
      const params = this.taskParams(pParams!, "attn_bwd_groups", {
        P: pP!, dO: pdO!, Q: pQ!, K: pK!, V: pV!, dQ: pdQ!, dK: pdK!, dV: pdV!, dS: pdS!, rowScale: pRowScale!, R, S, D, parts, kvHeads: kh,
      });
      const macs = 4 * R * S * D * B * kh; // four products of R·S·D per group
      this.runTask("attn_bwd_groups", params, B * kh, macs >= GEMM_THREAD_MIN_MACS ? this.threads : 1);
    }, results);
  }

  /**
   * Writes task `task`'s parameter block at `at` in `arena` (the first memory unless named) in TASK_PARAMS
   * order: `s` as float32, `scale` and `eps` as float64 (over their field and the next), the rest int32. Returns `at`.
   */
  private taskParams<T extends keyof typeof TASK_PARAMS>(at: number, task: T,
    values: Record<Exclude<(typeof TASK_PARAMS)[T][number], HighField>, number>, arena = this.arenas[0]!): number {
    const view = new DataView(arena.buffer, at);
    (TASK_PARAMS[task] as readonly (typeof TASK_PARAMS)[T][number][]).forEach((name, i) => {
      if (name.endsWith("High")) return; // a float64's second half
      const value = values[name as Exclude<typeof name, HighField>];
      if (name === "s") view.setFloat32(4 * i, value, true);
      else if (FLOAT64_FIELDS.includes(name)) view.setFloat64(4 * i, value, true);
      else view.setInt32(4 * i, value, true);
    });
    return at;
  }

  /** Runs task `name` (wasm-tasks.ts) over `units` units with its parameter block at `params` in `arena` (the first memory unless named) on T threads. */
  private runTask(name: TaskName, params: number, units: number, T: number, arena = this.arenas[0]!): void {
    const c = this.pool.ctrl;
    c[C.JOBS] = 1; c[C.M] = 0; c[C.K] = 0; c[C.SINGLE] = 0;
    c[C.CHUNKS] = this.writeJob(0, 0, T, {
      kind: TASK_KIND, w: TASKS.indexOf(name), N: 0, y: 0, rows4: units, arena, x: params, scratch: 0, xq: 0,
    }, 1);
    this.pool.run(this.kernels, T);
  }

  /**
   * gemm_f32 over packed operands in `arena` (y[M, N] = x[M, K] · w[N, K]ᵀ, N a
   * multiple of 4) split by output columns over the worker pool, as one f32
   * "weight" job: every element comes from the same kernel as on one thread,
   * so the bits do not depend on the split (the training tape's products:
   * LoRA's, a head's, attention's backward).
   */
  private gemmOnPool(arena: WasmArena, x: number, M: number, w: number, K: number, y: number, N: number): void {
    const c = this.pool.ctrl;
    c[C.JOBS] = 1; c[C.K] = K; c[C.SINGLE] = 0; c[C.M] = M;
    c[C.CHUNKS] = this.writeJob(0, 0, this.threads, { kind: KIND.f32, w, N, y, rows4: N, arena, x, scratch: 0, xq: 0 });
    this.pool.run(this.kernels, this.threads);
  }

  /**
   * Job `i` of the control block: its first `rows4` rows (a multiple of
   * `granule`: 4, the kernels' block of weight rows, or 1 for a task's units)
   * cut into chunks for `T` threads to take, numbered from `first`. Returns
   * how many chunks that is.
   */
  private writeJob(i: number, first: number, T: number,
    job: { kind: number; w: number; N: number; y: number; rows4: number; arena: WasmArena; x: number; scratch: number; xq: number },
    granule = 4): number {
    const c = this.pool.ctrl, b = HEADER + i * JOB_STRIDE;
    const chunkRows = Math.max(granule, Math.ceil(job.rows4 / (T * (T > 1 ? CHUNKS_PER_THREAD : 1)) / granule) * granule);
    const count = Math.ceil(job.rows4 / chunkRows);
    c[b + J.KIND] = job.kind; c[b + J.W] = job.w; c[b + J.N] = job.N; c[b + J.Y] = job.y;
    c[b + J.ROWS] = job.rows4; c[b + J.CHUNK] = chunkRows; c[b + J.FIRST] = first; c[b + J.END] = first + count;
    c[b + J.MEMORY] = job.arena.index; c[b + J.X] = job.x; c[b + J.SCRATCH] = job.scratch;
    c[b + J.TABLE] = job.arena.table; c[b + J.XQ] = job.xq;
    return count;
  }

  run(x: Float32Array, M: number, K: number, jobs: readonly LinearJob[]): void {
    const homes = jobs.map((j) => this.homes.get(j.w));
    if (K % 8 !== 0 || jobs.length > MAX_JOBS || homes.some((h) => h === undefined) || !this.runWasm(x, M, K, jobs, homes as Home[])) {
      for (const j of jobs) runJobJs(x, M, K, j);
      return;
    }
    jobs.forEach((j) => {
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

  /**
   * LoRA layers' products over one x with their low-rank terms added before
   * the outputs leave the kernels' memory: every job's y = x·Wᵀ, then for
   * each term y += s·u·e, or with `scaleFirst` u = s·u then y += u·e (u the
   * output of a rank-r job, e [r, N]). With `xt`, also xt.out [K, D] +=
   * xᵀ·xt.b (xt.b [M, D]): a LoRA factor's gradient from the same x (the
   * input gradient's g), while x is in the workspace. The same bits as run()
   * then gemmNN (with u scaled first in JavaScript for scaleFirst) and gemmTN,
   * without the round trips of y and x through other workspaces, and x copied
   * once for all the layers. False (nothing written) when it cannot: a bias,
   * N not a multiple of 4 (16 for a y), r or D not of 4, a term's two weights
   * in two memories, or more rows than one workspace holds.
   */
  runLowRank(x: Float32Array, M: number, K: number, jobs: readonly LinearJob[], terms: readonly LowRankEpilogue[]): boolean {
    const homes = jobs.map((j) => this.homes.get(j.w));
    if (K % 8 !== 0 || jobs.length > MAX_JOBS || homes.some((h) => h === undefined) || jobs.some((j) => j.bias || j.N % 4 !== 0)) return false;
    for (const { y, u, e, xt } of terms) {
      if (jobs[y]!.N % 16 !== 0 || e.length !== jobs[u]!.N * jobs[y]!.N) return false;
      if (xt && (xt.b.length % M !== 0 || (xt.b.length / M) % 4 !== 0 || xt.out.length !== K * (xt.b.length / M))) return false;
    }
    return this.runWasm(x, M, K, jobs, homes as Home[], terms);
  }

  /**
   * y [M, N] += s·u·e (or u = s·u, then y += u·e) in `w`'s memory, u [M, r] with e [r, N] copied to `at`;
   * then with xt, xt.out += xᵀ·xt.b over the workspace's x [M, K]. Each on the pool when big, as
   * gemmNN and gemmTN run them. It ends the run: the control block's jobs are replaced.
   */
  private lowRankEpilogue(w: Workspace, K: number, y: number, N: number, u: number, r: number, M: number, at: number,
    { e, s, scaleFirst, xt }: Pick<LowRankEpilogue, "e" | "s" | "scaleFirst" | "xt">): void {
    const room = (floats: number) => { const p = at; at += 4 * floats; return p; };
    const pe = room(e.length), pParams = room(PRODUCT_PARAMS);
    new Float32Array(w.buf, pe, e.length).set(e);
    if (scaleFirst) {
      const uv = new Float32Array(w.buf, u, M * r);
      for (let i = 0; i < uv.length; i++) uv[i] = uv[i]! * s; // rounded to float32 as stored, as the JavaScript scaling
    }
    this.gemmNnIn(w.arena, u, M, r, pe, N, scaleFirst ? 1 : s, y, pParams);
    if (!xt) return;
    const D = xt.b.length / M, pb = room(xt.b.length), po = room(xt.out.length);
    new Float32Array(w.buf, pb, xt.b.length).set(xt.b);
    new Float32Array(w.buf, po, xt.out.length).set(xt.out);
    this.gemmTnIn(w.arena, w.base, M, K, pb, D, po, pParams);
    xt.out.set(new Float32Array(w.buf, po, xt.out.length));
  }

  /**
   * The first N - N % 4 rows of every job on the wasm kernels, each job in its
   * weight's memory, then runLowRank's terms when given; false (nothing
   * written) when a memory has no room left for the workspace.
   */
  private runWasm(x: Float32Array, M: number, K: number, jobs: readonly LinearJob[], homes: readonly Home[],
    terms: readonly LowRankEpilogue[] = []): boolean {
    // The memories this call touches (usually one), each with the bytes per x row there: x's row and its jobs' outputs.
    const spaces: Workspace[] = [];
    const spaceOf = homes.map((h, i) => {
      let w = spaces.find((s) => s.arena === h.arena);
      if (!w) spaces.push(w = { arena: h.arena, perRow: 4 * K, base: 0, y: 0, buf: NO_BUFFER });
      w.perRow += 4 * jobs[i]!.N;
      return w;
    });
    let widest = 0;
    for (const w of spaces) widest = Math.max(widest, w.perRow);
    const rows = Math.max(1, Math.min(M, Math.floor(WORKSPACE_BYTES / widest)));
    if (terms.length && (terms.some((t) => spaceOf[t.y] !== spaceOf[t.u]) || rows < M)) return false;
    // Each low-rank term's e, parameter block and xt, after its memory's workspace.
    const termBytes = (w: Workspace) => terms.reduce((sum, t) => sum + (spaceOf[t.y] === w ? epilogueRoom(t) : 0), 0);
    // Opt-in int8 decode: x rounded once to Q8_0 blocks, read by every thread.
    const int8 = this.quantDot === "int8" && M === 1 && K % 32 === 0 && jobs.some((j) => j.quant && INT8_DOT_TYPES.includes(j.quant));
    const xqBytes = int8 ? (K / 32) * 34 : 0;
    const perThread = threadScratchBytes(K), threadScratch = this.threads * perThread;
    // Each memory's workspace: x rows, then its jobs' outputs, the threads' scratch, x as Q8_0.
    for (const w of spaces) {
      const base = w.arena.scratch(rows * w.perRow + threadScratch + xqBytes + termBytes(w));
      if (base === undefined) {
        this.warnOnce("a WebAssembly memory has no room for a product's workspace; it runs on the (slower) JavaScript kernels");
        return false;
      }
      w.base = base;
      w.y = base + rows * K * 4;
    }
    for (const w of spaces) w.buf = w.arena.buffer; // after every scratch(): growing a memory replaces its buffer
    const c = this.pool.ctrl;
    c[C.JOBS] = jobs.length; c[C.K] = K; c[C.SINGLE] = M === 1 ? 1 : 0; c[C.THREAD_SCRATCH] = perThread;
    let weightBytes = 0;
    for (const j of jobs) weightBytes += j.w.byteLength;
    let macs = 0;
    for (const j of jobs) macs += M * j.N * K;
    const T = weightBytes >= THREAD_MIN_BYTES || macs >= GEMM_THREAD_MIN_MACS ? this.threads : 1;
    const yPtrs: number[] = [];
    let chunks = 0;
    jobs.forEach((j, i) => {
      const w = spaceOf[i]!;
      yPtrs.push(w.y);
      const scratch = w.base + rows * w.perRow;
      chunks += this.writeJob(i, chunks, T, {
        kind: kindOf(j), w: homes[i]!.ptr, N: j.N, y: w.y, rows4: j.N - (j.N % 4), arena: w.arena, x: w.base,
        scratch, xq: int8 ? scratch + threadScratch : 0,
      });
      w.y += rows * j.N * 4;
    });
    c[C.CHUNKS] = chunks;
    for (let m0 = 0; m0 < M; m0 += rows) {
      const mb = Math.min(rows, M - m0);
      const xs = x.subarray(m0 * K, (m0 + mb) * K);
      for (const w of spaces) {
        new Float32Array(w.buf, w.base, mb * K).set(xs);
        if (int8) quantizeQ8_0(xs, new Uint8Array(w.buf, w.base + rows * w.perRow + threadScratch, xqBytes), K / 32);
      }
      c[C.M] = mb;
      this.pool.run(this.kernels, T);
      const ends = new Map(spaces.map((w) => [w, w.base + rows * w.perRow + threadScratch + xqBytes]));
      for (const t of terms) {
        const w = spaceOf[t.y]!;
        this.lowRankEpilogue(w, K, yPtrs[t.y]!, jobs[t.y]!.N, yPtrs[t.u]!, jobs[t.u]!.N, mb, ends.get(w)!, t);
        ends.set(w, ends.get(w)! + epilogueRoom(t));
      }
      jobs.forEach((j, i) => j.y.set(new Float32Array(spaceOf[i]!.buf, yPtrs[i]!, mb * j.N), m0 * j.N));
    }
    return true;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.lent.clear();
    this.pool.dispose();
  }
}
