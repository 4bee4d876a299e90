/**
 * The WebAssembly SIMD matmul kernels (y = x @ W^T), assembled at startup.
 * All pointers are byte addresses in the shared memory; K is a multiple of 8
 * and `rows` a multiple of 4 (the caller does any remainder in JavaScript).
 *
 *  - gemv_f16 / gemv_bf16 (x [K], W rows [rows, K] 16-bit → y [rows]): decode.
 *    16-bit weights are widened in registers: f16 → f32 is
 *    ((sign-extended h) << 13) & 0x8FFFE000, times 2^112, which is exact for
 *    normal and subnormal halves (inf/NaN halves would become large finite
 *    numbers, so the engine keeps such tensors on the exact JavaScript path). bf16 → f32 is h << 16.
 *  - gemm_f32 (x [M, K], W [rows, K] f32 → y [M, N] columns r..r+rows): two x
 *    rows × four W rows per step, eight SIMD accumulators.
 *  - widen_f16 / widen_bf16: 16-bit weight rows to float32 in a per-thread
 *    scratch block, which prefill then runs gemm_f32 over (wasm-pool.ts).
 * The elementwise kernels the module also holds (silu_mul and the training
 * tape's backwards of SwiGLU, RMSNorm and RoPE) are in wasm-elementwise.ts.
 * Accumulation is float32 in four lanes (as BLAS does), summed at the end;
 * each multiply-accumulate is fused (one rounding) where the runtime has
 * relaxed SIMD (Code.mulAdd), as BLAS's FMA kernels do.
 */
import { wasm, type WasmModule } from "./wasm-api.js";
import { Code, F32, I32, V128, assembleModule, type FunctionDef } from "./wasm-asm.js";
import { dequantFn, gemvInt8Fn, gemvQuantFn, INT8_DOT_TYPES, QUANT_KINDS } from "./wasm-quant.js";
import { attentionBackwardGroupFn, attentionBackwardGroupsFn } from "./wasm-attention-backward.js";
import { attentionForwardGroupFn, attentionForwardGroupsFn } from "./wasm-attention-forward.js";
import { expF64Fn, expF64x2Fn } from "./wasm-exp.js";
import { softmaxRowFn, softmaxRowsFn } from "./wasm-softmax-rows.js";
import { gemmNnRowsFn, gemmTnColsFn, siluMulBackwardSpanFn, siluMulSpanFn } from "./wasm-tasks.js";
import { rmsNormBackwardFn, rmsNormRowsFn, ropeBackwardFn, ropeForwardFn, siluMulBackwardFn, siluMulFn } from "./wasm-elementwise.js";

const F16_MASK = 0x8fffe000 | 0;
const F16_MAGIC = 0x77800000; // 2^112 as float32 bits

/** Emits "widen the i32x4 on the stack to f32x4" for a 16-bit dtype. */
type Widen = (c: Code, mask: number, magic: number) => void;
const widenF16: Widen = (c, mask, magic) => { c.i32(13).i32x4shl().get(mask).and().get(magic).f32x4mul(); };
const widenBf16: Widen = (c) => { c.i32(16).i32x4shl(); };

function consts(c: Code): { mask: number; magic: number } {
  const mask = c.local(V128);
  const magic = c.local(V128);
  c.i32x4const(F16_MASK).set(mask).i32x4const(F16_MAGIC).set(magic);
  return { mask, magic };
}

/** widen(src, dst, count): count 16-bit values (multiple of 4) → f32. */
export function widenFn(name: string, bf16: boolean): FunctionDef {
  const [src, dst, count] = [0, 1, 2];
  const c = new Code(3);
  const { mask, magic } = consts(c);
  const end = c.local(I32);
  c.get(src).get(count).i32(1).shl().add().set(end);
  c.loop(src, end, () => { c.inc(src, 8).inc(dst, 16); }, () => {
    c.get(dst).get(src);
    if (bf16) c.load16x4u(); else c.load16x4s();
    (bf16 ? widenBf16 : widenF16)(c, mask, magic);
    c.v128store();
  });
  return { name, params: [I32, I32, I32], results: [], code: c };
}

export interface GemvVariant {
  /** One 128-bit load + extend low/high instead of two 64-bit extending loads. */
  extend?: boolean;
  /** f16 only: multiply x by 2^112 once instead of each widened weight (x must stay below 2^15). */
  prescale?: boolean;
}

/** gemv(x, w, K, y, rows): y[j] = x · W[j] for 16-bit W. */
export function gemvFn(name: string, bf16: boolean, variant: GemvVariant = {}): FunctionDef {
  const [x, w, K, y, rows] = [0, 1, 2, 3, 4];
  const c = new Code(5);
  const { mask, magic } = consts(c);
  const prescale = variant.prescale && !bf16;
  const widen: Widen = bf16 ? widenBf16 : prescale ? (cc, m) => { cc.i32(13).i32x4shl().get(m).and(); } : widenF16;
  const r = c.local(I32), rowBytes = c.local(I32), xp = c.local(I32), xEnd = c.local(I32), tmp = c.local(V128);
  const wp = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const acc = Array.from({ length: 8 }, () => c.local(V128));
  const x0 = c.local(V128), x1 = c.local(V128), raw = c.local(V128);
  c.get(K).i32(1).shl().set(rowBytes);
  c.get(x).get(K).i32(2).shl().add().set(xEnd);
  c.i32(0).set(r);
  c.loop(r, rows, 4, () => {
    c.get(w).get(r).get(rowBytes).mul().add().set(wp[0]!);
    for (let j = 1; j < 4; j++) c.get(wp[j - 1]!).get(rowBytes).add().set(wp[j]!);
    for (const a of acc) c.i32x4const(0).set(a);
    c.get(x).set(xp);
    c.loop(xp, xEnd, () => { c.inc(xp, 32); for (const p of wp) c.inc(p, 16); }, () => {
      c.get(xp).v128load(0);
      if (prescale) c.get(magic).f32x4mul();
      c.set(x0).get(xp).v128load(16);
      if (prescale) c.get(magic).f32x4mul();
      c.set(x1);
      for (let j = 0; j < 4; j++) {
        if (variant.extend) c.get(wp[j]!).v128load(0).set(raw);
        for (const high of [false, true]) { // the row's 8 weights: lanes 0..3 with x0, 4..7 with x1
          c.mulAdd(acc[2 * j + (high ? 1 : 0)]!, () => {
            if (variant.extend) {
              c.get(raw);
              if (bf16) { if (high) c.extendHighU(); else c.extendLowU(); } else if (high) c.extendHighS(); else c.extendLowS();
            } else {
              c.get(wp[j]!);
              if (bf16) c.load16x4u(high ? 8 : 0); else c.load16x4s(high ? 8 : 0);
            }
            widen(c, mask, magic);
            c.get(high ? x1 : x0);
          });
        }
      }
    });
    for (let j = 0; j < 4; j++) {
      c.get(y).get(r).i32(2).shl().add(); // &y[r]
      c.get(acc[2 * j]!).get(acc[2 * j + 1]!).f32x4add().hsum(tmp);
      c.f32store(4 * j);
    }
  });
  return { name, params: [I32, I32, I32, I32, I32], results: [], code: c };
}

/** gemm_f32(x, M, w, K, y, N, rows): y[m, j] = x[m] · W[j] for f32 W, j < rows (y points at column 0 of the block). */
function gemmF32Fn(): FunctionDef {
  const [x, M, w, K, y, N, rows] = [0, 1, 2, 3, 4, 5, 6];
  const c = new Code(7);
  const r = c.local(I32), m = c.local(I32), mPairs = c.local(I32), rowBytes = c.local(I32), off = c.local(I32);
  const xa = c.local(I32), xb = c.local(I32), yp = c.local(I32);
  const wp = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const accA = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const accB = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const va = c.local(V128), vb = c.local(V128), p = c.local(V128), tmp = c.local(V128);
  c.get(K).i32(2).shl().set(rowBytes);
  c.get(M).i32(-2).and32().set(mPairs); // M rounded down to even
  c.i32(0).set(r);
  c.loop(r, rows, 4, () => {
    c.get(w).get(r).get(rowBytes).mul().add().set(wp[0]!);
    for (let j = 1; j < 4; j++) c.get(wp[j - 1]!).get(rowBytes).add().set(wp[j]!);
    c.i32(0).set(m);
    // pairs of x rows
    c.loop(m, mPairs, 2, () => {
      c.get(x).get(m).get(rowBytes).mul().add().set(xa);
      c.get(xa).get(rowBytes).add().set(xb);
      for (const a of [...accA, ...accB]) c.i32x4const(0).set(a);
      c.i32(0).set(off);
      c.loop(off, rowBytes, 16, () => {
        c.sum(xa, off).v128load().set(va).sum(xb, off).v128load().set(vb);
        for (let j = 0; j < 4; j++) {
          c.sum(wp[j]!, off).v128load().set(p);
          c.mulAdd(accA[j]!, () => c.get(va).get(p));
          c.mulAdd(accB[j]!, () => c.get(vb).get(p));
        }
      });
      c.get(y).get(m).get(N).mul().get(r).add().i32(2).shl().add().set(yp);
      for (let j = 0; j < 4; j++) c.get(yp).get(accA[j]!).hsum(tmp).f32store(4 * j);
      c.get(yp).get(N).i32(2).shl().add().set(yp);
      for (let j = 0; j < 4; j++) c.get(yp).get(accB[j]!).hsum(tmp).f32store(4 * j);
    });
    // the last x row when M is odd
    c.get(M).get(mPairs).gtU().if(() => {
      c.get(x).get(mPairs).get(rowBytes).mul().add().set(xa);
      for (const a of accA) c.i32x4const(0).set(a);
      c.i32(0).set(off);
      c.loop(off, rowBytes, 16, () => {
        c.sum(xa, off).v128load().set(va);
        for (let j = 0; j < 4; j++) c.mulAdd(accA[j]!, () => c.get(va).sum(wp[j]!, off).v128load());
      });
      c.get(y).get(mPairs).get(N).mul().get(r).add().i32(2).shl().add().set(yp);
      for (let j = 0; j < 4; j++) c.get(yp).get(accA[j]!).hsum(tmp).f32store(4 * j);
    });
  });
  return { name: "gemm_f32", params: [I32, I32, I32, I32, I32, I32, I32], results: [], code: c };
}

/**
 * gemm_nn(a, M, J, b, N, s, out): out[m] += s · Σ_j a[m, j] · B[j] for m < M, with
 * a [M, J], B [J, N] (rows of N floats, N a multiple of 16), out [M, N]: a product
 * whose inner dimension J is small (a LoRA rank) or moderate (attention's P·V over
 * the keys), 16 output floats per pass. Each output is accumulated over j in
 * order, scaled, then added (with s = 1 onto zeros: exactly the sum).
 */
function gemmNnFn(): FunctionDef {
  const [a, M, J, b, N, s, out] = [0, 1, 2, 3, 4, 5, 6];
  const c = new Code(7);
  const m = c.local(I32), nOff = c.local(I32), rowBytes = c.local(I32), aRow = c.local(I32), ap = c.local(I32), aEnd = c.local(I32);
  const bp = c.local(I32), op = c.local(I32);
  const acc = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const sp = c.local(V128), sv = c.local(V128);
  c.get(N).i32(2).shl().set(rowBytes);
  c.get(s).f32x4splat().set(sv);
  c.i32(0).set(m);
  c.loop(m, M, 1, () => {
    c.get(a).get(m).get(J).mul().i32(2).shl().add().set(aRow);
    c.get(aRow).get(J).i32(2).shl().add().set(aEnd);
    c.get(out).get(m).get(rowBytes).mul().add().set(op);
    c.i32(0).set(nOff);
    c.loop(nOff, rowBytes, 64, () => {
      for (const q of acc) c.i32x4const(0).set(q);
      c.get(b).get(nOff).add().set(bp);
      c.get(aRow).set(ap);
      c.loop(ap, aEnd, () => { c.inc(ap, 4); c.get(bp).get(rowBytes).add().set(bp); }, () => {
        c.get(ap).f32load().f32x4splat().set(sp);
        for (let q = 0; q < 4; q++) c.mulAdd(acc[q]!, () => c.get(sp).get(bp).v128load(16 * q));
      });
      for (let q = 0; q < 4; q++) {
        c.get(op).get(nOff).add(); // the store's address
        c.get(op).get(nOff).add().v128load(16 * q).get(acc[q]!).get(sv).f32x4mul().f32x4add().v128store(16 * q);
      }
    });
  });
  return { name: "gemm_nn", params: [I32, I32, I32, I32, I32, F32, I32], results: [], code: c };
}

/**
 * gemm_tn(a, R, S, lda, b, D, out): out[s] += Σ_r a[r, s] · B[r] for s < S, with a
 * [R, ≥S] (rows lda floats apart), B [R, D] (D a multiple of 4), out [S, D]:
 * aᵀ · B without a transpose, for weight gradients (dW = gᵀ · X: the sum runs
 * over the batch's rows; a column range of a is a slice of dW's rows). Four
 * rows r at a time: each out vector is loaded once, takes their four
 * multiply-adds in order of r, and is stored, so every output is accumulated
 * over r in order whatever the blocking (out should stay cache-resident: S·D small).
 */
function gemmTnFn(): FunctionDef {
  const [a, R, S, lda, b, D, out] = [0, 1, 2, 3, 4, 5, 6];
  const c = new Code(7);
  const r = c.local(I32), R4 = c.local(I32), s = c.local(I32), rowBytes = c.local(I32), aStride = c.local(I32);
  const op = c.local(I32), off = c.local(I32), aCol = c.local(I32);
  const ar = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)], br = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const sp = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)], acc = c.local(V128);
  c.get(D).i32(2).shl().set(rowBytes);
  c.get(lda).i32(2).shl().set(aStride);
  c.get(R).i32(-4).and32().set(R4);
  /** Rows r..r+n−1 into out: n splats per column, then each out vector loaded, multiplied into, stored once. */
  const rows = (n: number) => {
    c.get(a).get(r).get(aStride).mul().add().set(ar[0]!);
    c.get(b).get(r).get(rowBytes).mul().add().set(br[0]!);
    for (let i = 1; i < n; i++) {
      c.get(ar[i - 1]!).get(aStride).add().set(ar[i]!);
      c.get(br[i - 1]!).get(rowBytes).add().set(br[i]!);
    }
    c.get(out).set(op);
    c.i32(0).set(s);
    c.loop(s, S, () => { c.inc(s, 1); c.get(op).get(rowBytes).add().set(op); }, () => {
      c.get(s).i32(2).shl().set(aCol);
      for (let i = 0; i < n; i++) c.sum(ar[i]!, aCol).f32load().f32x4splat().set(sp[i]!);
      c.i32(0).set(off);
      c.loop(off, rowBytes, 16, () => {
        c.sum(op, off).v128load().set(acc);
        for (let i = 0; i < n; i++) c.mulAdd(acc, () => c.get(sp[i]!).sum(br[i]!, off).v128load());
        c.sum(op, off).get(acc).v128store();
      });
    });
  };
  c.i32(0).set(r);
  c.loop(r, R4, 4, () => rows(4));
  c.loop(r, R, 1, () => rows(1));
  return { name: "gemm_tn", params: [I32, I32, I32, I32, I32, I32, I32], results: [], code: c };
}

/** has_nonfinite_f16(p, count) → 1 when any of count (multiple of 8) f16 words is inf/NaN (exponent all ones). */
function nonFiniteF16Fn(): FunctionDef {
  const [p, count] = [0, 1];
  const c = new Code(2);
  const end = c.local(I32), exp = c.local(V128), seen = c.local(V128);
  c.i16x8const(0x7c00).set(exp).i32x4const(0).set(seen);
  c.get(p).get(count).i32(1).shl().add().set(end);
  c.loop(p, end, 16, () => {
    c.get(seen).get(p).v128load().get(exp).and().get(exp).i16x8eq().or().set(seen);
  });
  c.get(seen).anyTrue();
  return { name: "has_nonfinite_f16", params: [I32, I32], results: [I32], code: c };
}

/** Indices in the module of the functions others call by index. */
const GEMM_F32 = 2;

export interface KernelExports {
  gemm_f32(x: number, M: number, w: number, K: number, y: number, N: number, rows: number): void;
  gemv_f16(x: number, w: number, K: number, y: number, rows: number): void;
  gemv_bf16(x: number, w: number, K: number, y: number, rows: number): void;
  widen_f16(src: number, dst: number, count: number): void;
  widen_bf16(src: number, dst: number, count: number): void;
  gemm_nn(a: number, M: number, J: number, b: number, N: number, s: number, out: number): void;
  gemm_tn(a: number, R: number, S: number, lda: number, b: number, D: number, out: number): void;
  attn_bwd_group(P: number, dO: number, Q: number, K: number, V: number, dQ: number, dK: number, dV: number,
    dS: number, rowScale: number, R: number, S: number, D: number, parts: number): void;
  exp_f64(x: number): number;
  attn_fwd_group(Q: number, K: number, V: number, P: number, O: number, mask: number, R: number, S: number, D: number,
    T: number, queryOffset: number, scale: number): void;
  /** Worker-pool tasks (wasm-tasks.ts): (parameter block, first unit, end unit, thread). */
  attn_fwd_groups(params: number, first: number, end: number, thread: number): void;
  attn_bwd_groups(params: number, first: number, end: number, thread: number): void;
  gemm_nn_rows(params: number, first: number, end: number, thread: number): void;
  gemm_tn_cols(params: number, first: number, end: number, thread: number): void;
  silu_mul_span(params: number, first: number, end: number, thread: number): void;
  silu_mul_backward_span(params: number, first: number, end: number, thread: number): void;
  softmax_rows(params: number, first: number, end: number, thread: number): void;
  rms_norm_rows(params: number, first: number, end: number, thread: number): void;
  softmax_row(x: number, V: number, probs: number, stats: number): void;
  has_nonfinite_f16(p: number, count: number): number;
  silu_mul(g: number, u: number, out: number, count: number): void;
  silu_mul_backward(g: number, u: number, d: number, count: number): void;
  rms_norm_backward(x: number, w: number, d: number, rstd: number, rows: number, H: number, dw: number): void;
  rope_backward(g: number, cos: number, sin: number, B: number, T: number, heads: number, D: number, dx: number): void;
  rope_forward(x: number, cos: number, sin: number, B: number, T: number, heads: number, D: number, out: number): void;
  /** deq_<type>(src, dst, blocks, f16Table), gemv_<type>(x, w, K, y, rows, f16Table): wasm-quant.ts. */
  [quantKernel: `deq_${string}` | `gemv_${string}`]: (...args: number[]) => void;
}

export const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit

let compiled: WasmModule | undefined;

/** The compiled kernel module (imports a shared `env.memory`), or undefined without wasm SIMD / threads. */
export function kernelModule(): WasmModule | undefined {
  if (compiled) return compiled;
  if (!wasm) return undefined;
  try {
    const fns = [
      widenFn("widen_f16", false), // 0
      widenFn("widen_bf16", true), // 1
      gemmF32Fn(), // 2
      gemvFn("gemv_f16", false), // 3
      gemvFn("gemv_bf16", true), // 4
      gemmNnFn(), // 5
      nonFiniteF16Fn(), // 6
      siluMulFn(), // 7
      ...QUANT_KINDS.map((t) => dequantFn(t)),
      ...QUANT_KINDS.map((t) => gemvQuantFn(t)),
      ...INT8_DOT_TYPES.map((t) => gemvInt8Fn(t)),
      gemmTnFn(),
      siluMulBackwardFn(),
      rmsNormBackwardFn(),
      ropeBackwardFn(),
      ropeForwardFn(),
    ];
    const index = (name: string) => fns.findIndex((f) => f.name === name);
    if (index("gemm_f32") !== GEMM_F32) throw new Error("kernel module: gemm_f32 moved");
    fns.push(expF64Fn());
    fns.push(expF64x2Fn(index("exp_f64")));
    fns.push(attentionForwardGroupFn({ gemmF32: GEMM_F32, gemmNn: index("gemm_nn"), expF64: index("exp_f64"), expF64x2: index("exp_f64x2") }));
    fns.push(attentionForwardGroupsFn(index("attn_fwd_group")));
    fns.push(attentionBackwardGroupFn({ gemmF32: GEMM_F32, gemmNn: index("gemm_nn"), gemmTn: index("gemm_tn") }));
    fns.push(attentionBackwardGroupsFn(index("attn_bwd_group")));
    fns.push(gemmNnRowsFn(index("gemm_nn")), gemmTnColsFn(index("gemm_tn")));
    fns.push(siluMulSpanFn(index("silu_mul")), siluMulBackwardSpanFn(index("silu_mul_backward")));
    fns.push(softmaxRowFn(index("exp_f64"), index("exp_f64x2")));
    fns.push(softmaxRowsFn(index("softmax_row")));
    fns.push(rmsNormRowsFn());
    const bytes = assembleModule(fns, 1, MAX_PAGES);
    compiled = new wasm.Module(bytes);
    return compiled;
  } catch {
    return undefined;
  }
}
