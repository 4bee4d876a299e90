/**
 * WebAssembly SIMD kernels for weights in ggml block encodings
 * (lib/tensor/quantized.ts describes the layouts).
 *
 *  - deq_<type>(src, dst, blocks, table): `blocks` consecutive blocks → float32,
 *    each weight computed with exactly ggml's dequantize_row_* expression in
 *    float32 (integer codes are unpacked with byte ops, converted exactly, then
 *    d·q [± min]); the f16 scales are read through `table`, the 65536-entry
 *    f16 → f32 table in the kernels' memory, so even inf/NaN scales are exact.
 *    Prefill dequantizes runs of rows into the thread's scratch block and
 *    multiplies them with gemm_f32, the float32 kernel (wasm-pool.ts), so each
 *    output equals, bit for bit, what the float32 kernel gives on the
 *    dequantized matrix (same products, same accumulation order).
 */
import { Code, F32, I32, V128, type FunctionDef } from "./wasm-asm.js";
import { QUANT_LAYOUT, QUANT_TYPES, type QuantType } from "../../tensor/quantized.js";

/** Kernel kinds as the engine numbers them: 0 f32, 1 f16, 2 bf16, then the quantized types in this order. */
export const QUANT_KINDS: readonly QuantType[] = QUANT_TYPES;
export const FIRST_QUANT_KIND = 3;

interface Emit {
  c: Code;
  /** Local holding the block's address. */
  src: number;
  table: number;
  /**
   * Consumes the weights of elements [off/4, off/4 + 4) of the block (off in
   * bytes) as an f32x4 the caller pushes with `weights()`: stores them
   * (dequantize) or multiplies them into an accumulator (gemv). Bodies emit
   * their quarters in increasing element order, so a gemv accumulates each
   * lane in the same order as gemm_f32 does over the dequantized row.
   */
  sink: (off: number, weights: () => void) => void;
  /** Pushes i8x16.splat(v) from a local set once at function entry (loop-invariant). */
  splat8: (v: number) => void;
}

/** The byte constants the bodies splat. */
const SPLATS = [0x0f, 8, 16, 32, 1, 2, 3, 4, 64, 128];

/** Declares and initializes one local per SPLATS entry; returns the `splat8` pusher. */
function splatLocals(c: Code): (v: number) => void {
  const locals = new Map<number, number>();
  for (const v of SPLATS) {
    const l = c.local(V128);
    c.i32(v).i8x16splat().set(l);
    locals.set(v, l);
  }
  return (v) => {
    const l = locals.get(v);
    if (l === undefined) throw new Error(`wasm-quant: no splat local for ${v}`);
    c.get(l);
  };
}

/** Pushes the f32 value of the f16 at src + off (via the table). */
function f16At(e: Emit, off: number): void {
  e.c.get(e.table).get(e.src).i32load16u(off).i32(2).shl().add().f32load();
}

/**
 * The i8x16 in local `v` (small signed integers) as 16 weights `v[i]·scale (+|- min)`,
 * the elements starting at byte offset `off`, handed to the sink four at a time.
 */
function store16(e: Emit, v: number, off: number, scale: number, min?: { local: number; sub: boolean }): void {
  const { c } = e;
  for (let q = 0; q < 4; q++) {
    e.sink(off + 16 * q, () => {
      c.get(v);
      if (q < 2) c.i16x8extendLowS(); else c.i16x8extendHighS();
      if (q % 2 === 0) c.extendLowS(); else c.extendHighS();
      c.f32x4convertI32().get(scale).f32x4mul();
      if (min) { c.get(min.local); if (min.sub) c.f32x4sub(); else c.f32x4add(); }
    });
  }
}

/** local = 16 bytes at src + off with each byte masked to its low nibble (hi: shifted down instead). */
function nibbles(e: Emit, off: number, hi: boolean, into: number): void {
  e.c.get(e.src).v128load(off);
  if (hi) e.c.i32(4).i8x16shrU();
  else { e.splat8(0x0f); e.c.and(); }
  e.c.set(into);
}

/**
 * local = 16 lanes of 0 or 16: bit `bitBase + lane` of the u32 at src + off
 * (q5_0/q5_1's qh), spread one bit per lane.
 */
function highBits32(e: Emit, off: number, bitBase: 0 | 16, into: number): void {
  const { c } = e;
  const b0 = bitBase / 8;
  c.get(e.src).i32load(off).i32x4splat();
  c.bytes16([...new Array(8).fill(b0), ...new Array(8).fill(b0 + 1)]).i8x16swizzle();
  c.bytes16([1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128]).and();
  e.splat8(1); c.i8x16minU().i32(4).i8x16shl().set(into);
}

type BlockBody = (e: Emit, tmp: { v: number; h: number; s: number; s2: number; m: number; m2: number; ds: number; dm: number }) => void;

function q8_0(e: Emit, t: Parameters<BlockBody>[1]): void {
  f16At(e, 0); e.c.f32x4splat().set(t.s);
  for (let h = 0; h < 2; h++) {
    e.c.get(e.src).v128load(2 + 16 * h).set(t.v);
    store16(e, t.v, 64 * h, t.s);
  }
}

function q4_0(e: Emit, t: Parameters<BlockBody>[1]): void {
  const { c } = e;
  f16At(e, 0); c.f32x4splat().set(t.s);
  for (let h = 0; h < 2; h++) {
    nibbles(e, 2, h === 1, t.v);
    c.get(t.v); e.splat8(8); c.i8x16sub().set(t.v);
    store16(e, t.v, 64 * h, t.s);
  }
}

function q4_1(e: Emit, t: Parameters<BlockBody>[1]): void {
  const { c } = e;
  f16At(e, 0); c.f32x4splat().set(t.s);
  f16At(e, 2); c.f32x4splat().set(t.m);
  for (let h = 0; h < 2; h++) {
    nibbles(e, 4, h === 1, t.v);
    store16(e, t.v, 64 * h, t.s, { local: t.m, sub: false });
  }
}

function q5(withMin: boolean): BlockBody {
  return (e, t) => {
    const { c } = e;
    const qh = withMin ? 4 : 2;
    f16At(e, 0); c.f32x4splat().set(t.s);
    if (withMin) { f16At(e, 2); c.f32x4splat().set(t.m); }
    for (let h = 0; h < 2; h++) {
      nibbles(e, qh + 4, h === 1, t.v);
      highBits32(e, qh, h === 0 ? 0 : 16, t.h);
      c.get(t.v).get(t.h).or();
      if (!withMin) { e.splat8(16); c.i8x16sub(); }
      c.set(t.v);
      store16(e, t.v, 64 * h, t.s, withMin ? { local: t.m, sub: false } : undefined);
    }
  };
}

/** Pushes the 6-bit scale (which = 0) or min (which = 1) of sub-block j from the 12 bytes at src + at (get_scale_min_k4). */
function scaleMinK4(e: Emit, at: number, j: number, which: 0 | 1): void {
  const { c } = e;
  const byte = (o: number) => c.get(e.src).i32load8u(at + o);
  if (j < 4) {
    byte(j + 4 * which).i32(63).and32();
  } else if (which === 0) {
    byte(j + 4).i32(0x0f).and32();
    byte(j - 4).i32(6).shrU().i32(4).shl().or32();
  } else {
    byte(j + 4).i32(4).shrU();
    byte(j).i32(6).shrU().i32(4).shl().or32();
  }
}

/** q4_k / q5_k: 4 chunks of 64 weights, each two 32-weight sub-blocks (low then high nibbles). */
function qk(five: boolean): BlockBody {
  return (e, t) => {
    const { c } = e;
    f16At(e, 0); c.set(t.ds);
    f16At(e, 2); c.set(t.dm);
    const qs = five ? 48 : 16, qh = 16;
    for (let j = 0; j < 4; j++) {
      for (const [half, scale, min] of [[0, t.s, t.m], [1, t.s2, t.m2]] as const) {
        // d1 = d·sc, m1 = dmin·m in float32 (exact: 11-bit × 6-bit), splat
        c.get(t.ds); scaleMinK4(e, 4, 2 * j + half, 0); c.f32convertI32().f32mul().f32x4splat().set(scale);
        c.get(t.dm); scaleMinK4(e, 4, 2 * j + half, 1); c.f32convertI32().f32mul().f32x4splat().set(min);
      }
      for (let half = 0; half < 2; half++) {
        for (let l = 0; l < 2; l++) {
          nibbles(e, qs + 32 * j + 16 * l, half === 1, t.v);
          if (five) {
            // bit (2j + half) of qh[l·16 + lane] → 16
            c.get(t.v).get(e.src).v128load(qh + 16 * l); e.splat8(1 << (2 * j + half)); c.and();
            e.splat8(1); c.i8x16minU().i32(4).i8x16shl().or().set(t.v);
          }
          store16(e, t.v, 4 * (64 * j + 32 * half + 16 * l), half ? t.s2 : t.s, { local: half ? t.m2 : t.m, sub: true });
        }
      }
    }
  };
}

/**
 * q6_k's codes (q6 − 32, as int8) of elements 128n + 32k + 16l .. +16 into local `v`:
 * low 4 bits from ql[l·16 + lane (+32 for k = 1, 3)], low (k < 2) or high nibble;
 * high 2 bits (qh[32n + l·16 + lane] >> 2k) & 3, to bits 4..5.
 */
function q6kCodes(e: Emit, n: number, k: number, l: number, v: number): void {
  const { c } = e;
  nibbles(e, 64 * n + 16 * l + (k % 2 ? 32 : 0), k >= 2, v);
  c.get(v).get(e.src).v128load(128 + 32 * n + 16 * l);
  if (k) c.i32(2 * k).i8x16shrU();
  e.splat8(3); c.and().i32(4).i8x16shl().or(); e.splat8(32); c.i8x16sub().set(v);
}

/** Pushes q6_k's int8 scale (as i32) of the 16 elements at 128n + 32k + 16l: sc[8n + l + 2k]. */
function q6kScale(e: Emit, n: number, k: number, l: number): void {
  e.c.get(e.src).i32load8u(192 + 8 * n + l + 2 * k).i32(24).shl().i32(24).shrS();
}

function q6_k(e: Emit, t: Parameters<BlockBody>[1]): void {
  const { c } = e;
  f16At(e, 208); c.set(t.ds);
  for (let n = 0; n < 2; n++) {
    for (let k = 0; k < 4; k++) { // q1..q4 of ggml's loop
      for (let l = 0; l < 2; l++) { // lanes l·16 .. l·16+15
        q6kCodes(e, n, k, l, t.v);
        // scale d·sc, sc int8
        c.get(t.ds); q6kScale(e, n, k, l); c.f32convertI32().f32mul().f32x4splat().set(t.s);
        store16(e, t.v, 4 * (128 * n + 32 * k + 16 * l), t.s);
      }
    }
  }
}

const BODIES: Record<QuantType, BlockBody> = {
  q8_0, q4_0, q4_1, q5_0: q5(false), q5_1: q5(true), q4_k: qk(false), q5_k: qk(true), q6_k,
};

/** deq_<type>(src, dst, blocks, table). */
export function dequantFn(type: QuantType): FunctionDef {
  const [src, dst, blocks, table] = [0, 1, 2, 3];
  const c = new Code(4);
  const { elems, bytes } = QUANT_LAYOUT[type];
  const end = c.local(I32);
  const tmp = {
    v: c.local(V128), h: c.local(V128), s: c.local(V128), s2: c.local(V128), m: c.local(V128), m2: c.local(V128),
    ds: c.local(F32), dm: c.local(F32),
  };
  c.get(src).get(blocks).i32(bytes).mul().add().set(end);
  const splat8 = splatLocals(c);
  const e: Emit = { c, src, table, splat8, sink: (off, weights) => { c.get(dst); weights(); c.v128store(off); } };
  c.loop(src, end, () => { c.inc(src, bytes).inc(dst, 4 * elems); }, () => BODIES[type](e, tmp));
  return { name: `deq_${type}`, params: [I32, I32, I32, I32], results: [], code: c };
}

/**
 * gemv_<type>(x, w, K, y, rows, table): y[r] = x · W[r] for `rows` rows (a
 * multiple of 4), the weights dequantized in registers and multiplied straight
 * into one accumulator per row: the same products in the same order as
 * gemm_f32's single-row path over the dequantized rows, so the same bits, with
 * no scratch round trip (decode).
 */
export function gemvQuantFn(type: QuantType): FunctionDef {
  const [x, w, K, y, rows, table] = [0, 1, 2, 3, 4, 5];
  const c = new Code(6);
  const { elems, bytes } = QUANT_LAYOUT[type];
  const r = c.local(I32), rowBytes = c.local(I32), xp = c.local(I32), xEnd = c.local(I32), cur = c.local(I32), hs = c.local(V128);
  const wp = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const acc = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const tmp = {
    v: c.local(V128), h: c.local(V128), s: c.local(V128), s2: c.local(V128), m: c.local(V128), m2: c.local(V128),
    ds: c.local(F32), dm: c.local(F32),
  };
  let j = 0;
  const splat8 = splatLocals(c);
  const e: Emit = {
    c, src: cur, table, splat8,
    sink: (off, weights) => { c.mulAdd(acc[j]!, () => { c.get(xp).v128load(off); weights(); }); },
  };
  c.get(K).i32(Math.log2(elems)).shrU().i32(bytes).mul().set(rowBytes);
  c.get(x).get(K).i32(2).shl().add().set(xEnd);
  c.i32(0).set(r);
  c.loop(r, rows, 4, () => {
    c.get(w).get(r).get(rowBytes).mul().add().set(wp[0]!);
    for (let i = 1; i < 4; i++) c.get(wp[i - 1]!).get(rowBytes).add().set(wp[i]!);
    for (const a of acc) c.i32x4const(0).set(a);
    c.get(x).set(xp);
    c.loop(xp, xEnd, () => { c.inc(xp, 4 * elems); for (const p of wp) c.inc(p, bytes); }, () => {
      for (j = 0; j < 4; j++) {
        c.get(wp[j]!).set(cur);
        BODIES[type](e, tmp);
      }
    });
    for (let i = 0; i < 4; i++) c.get(y).get(r).i32(2).shl().add().get(acc[i]!).hsum(hs).f32store(4 * i);
  });
  return { name: `gemv_${type}`, params: [I32, I32, I32, I32, I32, I32], results: [], code: c };
}

/** The weight types with an int8-activation decode kernel (the opt-in `quantDot: "int8"` mode). */
export const INT8_DOT_TYPES: readonly QuantType[] = ["q4_0", "q8_0", "q4_k", "q6_k"];

/**
 * gemv_int8_<type>(xq, w, K, y, rows, table), the opt-in approximate decode
 * product (llama.cpp's vec_dot_<type>_q8_0): x is given quantized to Q8_0
 * blocks (34 B: f16 scale dx, int8 q[32], as ggml's quantize_row_q8_0), each
 * block product is an integer dot of the int8 codes (i8 × i8 → i16 products,
 * summed in i16 while they cannot overflow, then widened to i32 lanes), and
 * y[r] += float(dot) · (dw · dx) per block, accumulated in four f32 lanes.
 * The weights are still exact; the error is x's 8-bit rounding (see
 * linear-engine.ts for the measured bound).
 */
export function gemvInt8Fn(type: QuantType): FunctionDef {
  if (type === "q4_k") return gemvInt8Q4K();
  if (type === "q6_k") return gemvInt8Q6K();
  const [xq, w, K, y, rows, table] = [0, 1, 2, 3, 4, 5];
  const c = new Code(6);
  const { bytes } = QUANT_LAYOUT[type];
  const r = c.local(I32), rowBytes = c.local(I32), xp = c.local(I32), xEnd = c.local(I32), hs = c.local(V128);
  const dx = c.local(F32), v = c.local(V128), lo = c.local(V128), hi = c.local(V128), sum = c.local(V128);
  const wp = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const acc = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const xs = [c.local(V128), c.local(V128)];
  const splat8 = splatLocals(c);
  c.get(K).i32(5).shrU().i32(bytes).mul().set(rowBytes);
  c.get(xq).get(K).i32(5).shrU().i32(34).mul().add().set(xEnd);
  c.i32(0).set(r);
  c.loop(r, rows, 4, () => {
    c.get(w).get(r).get(rowBytes).mul().add().set(wp[0]!);
    for (let i = 1; i < 4; i++) c.get(wp[i - 1]!).get(rowBytes).add().set(wp[i]!);
    for (const a of acc) c.i32x4const(0).set(a);
    c.get(xq).set(xp);
    c.loop(xp, xEnd, () => { c.inc(xp, 34); for (const p of wp) c.inc(p, bytes); }, () => {
      // x's block: scale and 32 int8 codes, shared by the four rows
      c.get(table).get(xp).i32load16u(0).i32(2).shl().add().f32load().set(dx);
      for (let h = 0; h < 2; h++) c.get(xp).v128load(2 + 16 * h).set(xs[h]!);
      for (let j = 0; j < 4; j++) {
        if (type === "q4_0") {
          c.get(wp[j]!).v128load(2).set(v);
          c.get(v); splat8(0x0f); c.and(); splat8(8); c.i8x16sub().set(lo);
          c.get(v).i32(4).i8x16shrU(); splat8(8); c.i8x16sub().set(hi);
        } else {
          c.get(wp[j]!).v128load(2).set(lo);
          c.get(wp[j]!).v128load(18).set(hi);
        }
        // |w·x| ≤ 8·127 (q4_0) or 127·127 (q8_0): four q4_0 products, or two q8_0 ones, fit an i16 sum
        const pair = (wv: number, xv: number) => c.get(wv).get(xv).i16x8extmulLowS().get(wv).get(xv).i16x8extmulHighS().i16x8add();
        if (type === "q4_0") {
          pair(lo, xs[0]!); pair(hi, xs[1]!); c.i16x8add().i32x4extaddPairwiseI16S().set(sum);
        } else {
          pair(lo, xs[0]!); c.i32x4extaddPairwiseI16S();
          pair(hi, xs[1]!); c.i32x4extaddPairwiseI16S().i32x4add().set(sum);
        }
        // acc += float(sum) · (dw · dx)
        c.mulAdd(acc[j]!, () => {
          c.get(sum).f32x4convertI32();
          c.get(table).get(wp[j]!).i32load16u(0).i32(2).shl().add().f32load().get(dx).f32mul().f32x4splat();
        });
      }
    });
    for (let i = 0; i < 4; i++) c.get(y).get(r).i32(2).shl().add().get(acc[i]!).hsum(hs).f32store(4 * i);
  });
  return { name: `gemv_int8_${type}`, params: [I32, I32, I32, I32, I32, I32], results: [], code: c };
}

/**
 * gemv_int8_q4_k: as gemvInt8Fn for Q4_K weights (llama.cpp's vec_dot_q4_K_q8_K,
 * with x's Q8_0 blocks lining up with the 32-weight sub-blocks): per sub-block,
 * Σ w·x ≈ dx·((d·sc)·Σ q·xq − (dmin·m)·Σ xq), the integer sums exact.
 */
function gemvInt8Q4K(): FunctionDef {
  const [xq, w, K, y, rows, table] = [0, 1, 2, 3, 4, 5];
  const c = new Code(6);
  const r = c.local(I32), rowBytes = c.local(I32), xp = c.local(I32), xEnd = c.local(I32), hs = c.local(V128);
  const dx = c.local(F32), xsum = c.local(F32), v0 = c.local(V128), v1 = c.local(V128), x0 = c.local(V128), x1 = c.local(V128);
  const wp = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const acc = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const accS = [c.local(F32), c.local(F32), c.local(F32), c.local(F32)];
  const ds = [c.local(F32), c.local(F32), c.local(F32), c.local(F32)];
  const dm = [c.local(F32), c.local(F32), c.local(F32), c.local(F32)];
  const splat8 = splatLocals(c);
  const rowEmit = (j: number): Emit => ({ c, src: wp[j]!, table, splat8, sink: () => { throw new Error("unused"); } });
  const f16 = (ptr: number, off: number) => c.get(table).get(ptr).i32load16u(off).i32(2).shl().add().f32load();
  c.get(K).i32(8).shrU().i32(144).mul().set(rowBytes);
  c.get(xq).get(K).i32(5).shrU().i32(34).mul().add().set(xEnd);
  c.i32(0).set(r);
  c.loop(r, rows, 4, () => {
    c.get(w).get(r).get(rowBytes).mul().add().set(wp[0]!);
    for (let i = 1; i < 4; i++) c.get(wp[i - 1]!).get(rowBytes).add().set(wp[i]!);
    for (let j = 0; j < 4; j++) { c.i32x4const(0).set(acc[j]!); c.f32x4const(0).f32x4extract(0).set(accS[j]!); }
    c.get(xq).set(xp);
    c.loop(xp, xEnd, () => { c.inc(xp, 8 * 34); for (const p of wp) c.inc(p, 144); }, () => {
      for (let j = 0; j < 4; j++) { f16(wp[j]!, 0); c.set(ds[j]!); f16(wp[j]!, 2); c.set(dm[j]!); }
      for (let sub = 0; sub < 8; sub++) {
        const xo = 34 * sub, chunk = sub >> 1, high = sub & 1;
        // x's block: scale, codes, and the sum of its codes (for the mins)
        f16(xp, xo); c.set(dx);
        c.get(xp).v128load(xo + 2).set(x0).get(xp).v128load(xo + 18).set(x1);
        c.get(x0).i16x8extaddPairwiseI8S().get(x1).i16x8extaddPairwiseI8S().i16x8add().i32x4extaddPairwiseI16S().set(hs);
        c.get(hs).i32x4extract(0).get(hs).i32x4extract(1).add().get(hs).i32x4extract(2).add().get(hs).i32x4extract(3).add()
          .f32convertI32().set(xsum);
        for (let j = 0; j < 4; j++) {
          for (const [v, off] of [[v0, 0], [v1, 16]] as const) {
            c.get(wp[j]!).v128load(16 + 32 * chunk + off);
            if (high) c.i32(4).i8x16shrU(); else { splat8(0x0f); c.and(); }
            c.set(v);
          }
          // acc += Σq·xq · (dx·(d·sc)); accS −= dx·(dmin·m)·Σxq
          c.mulAdd(acc[j]!, () => {
            // |q·x| ≤ 15·127: four products fit an i16 sum
            c.get(v0).get(x0).i16x8extmulLowS().get(v0).get(x0).i16x8extmulHighS().i16x8add();
            c.get(v1).get(x1).i16x8extmulLowS().i16x8add().get(v1).get(x1).i16x8extmulHighS().i16x8add();
            c.i32x4extaddPairwiseI16S().f32x4convertI32();
            c.get(ds[j]!); scaleMinK4(rowEmit(j), 4, sub, 0); c.f32convertI32().f32mul().get(dx).f32mul().f32x4splat();
          });
          c.get(accS[j]!).get(dm[j]!); scaleMinK4(rowEmit(j), 4, sub, 1); c.f32convertI32().f32mul().get(dx).f32mul().get(xsum).f32mul();
          c.f32sub().set(accS[j]!);
        }
      }
    });
    for (let i = 0; i < 4; i++) c.get(y).get(r).i32(2).shl().add().get(acc[i]!).hsum(hs).get(accS[i]!).f32add().f32store(4 * i);
  });
  return { name: "gemv_int8_q4_k", params: [I32, I32, I32, I32, I32, I32], results: [], code: c };
}

/**
 * gemv_int8_q6_k: as gemvInt8Fn for Q6_K weights (llama.cpp's vec_dot_q6_K_q8_K):
 * per 16-weight sub-block, Σ w·x ≈ (d·sc)·dx·Σ (q6 − 32)·xq, the integer sum exact.
 */
function gemvInt8Q6K(): FunctionDef {
  const [xq, w, K, y, rows, table] = [0, 1, 2, 3, 4, 5];
  const c = new Code(6);
  const r = c.local(I32), rowBytes = c.local(I32), xp = c.local(I32), xEnd = c.local(I32), hs = c.local(V128);
  const dx = c.local(F32), v = c.local(V128);
  const xs = [c.local(V128), c.local(V128)];
  const wp = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const acc = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  const ds = [c.local(F32), c.local(F32), c.local(F32), c.local(F32)];
  const splat8 = splatLocals(c);
  const rowEmit = (j: number): Emit => ({ c, src: wp[j]!, table, splat8, sink: () => { throw new Error("unused"); } });
  const f16 = (ptr: number, off: number) => c.get(table).get(ptr).i32load16u(off).i32(2).shl().add().f32load();
  c.get(K).i32(8).shrU().i32(210).mul().set(rowBytes);
  c.get(xq).get(K).i32(5).shrU().i32(34).mul().add().set(xEnd);
  c.i32(0).set(r);
  c.loop(r, rows, 4, () => {
    c.get(w).get(r).get(rowBytes).mul().add().set(wp[0]!);
    for (let i = 1; i < 4; i++) c.get(wp[i - 1]!).get(rowBytes).add().set(wp[i]!);
    for (const a of acc) c.i32x4const(0).set(a);
    c.get(xq).set(xp);
    c.loop(xp, xEnd, () => { c.inc(xp, 8 * 34); for (const p of wp) c.inc(p, 210); }, () => {
      for (let j = 0; j < 4; j++) { f16(wp[j]!, 208); c.set(ds[j]!); }
      for (let n = 0; n < 2; n++) {
        for (let k = 0; k < 4; k++) {
          const xo = 34 * (4 * n + k); // x's block holding elements 128n + 32k .. +32
          f16(xp, xo); c.set(dx);
          c.get(xp).v128load(xo + 2).set(xs[0]!).get(xp).v128load(xo + 18).set(xs[1]!);
          for (let j = 0; j < 4; j++) {
            for (let l = 0; l < 2; l++) {
              q6kCodes(rowEmit(j), n, k, l, v);
              c.mulAdd(acc[j]!, () => {
                // |(q6 − 32)·x| ≤ 32·127: two products fit an i16 sum
                c.get(v).get(xs[l]!).i16x8extmulLowS().get(v).get(xs[l]!).i16x8extmulHighS().i16x8add();
                c.i32x4extaddPairwiseI16S().f32x4convertI32();
                c.get(ds[j]!); q6kScale(rowEmit(j), n, k, l); c.f32convertI32().f32mul().get(dx).f32mul().f32x4splat();
              });
            }
          }
        }
      }
    });
    for (let i = 0; i < 4; i++) c.get(y).get(r).i32(2).shl().add().get(acc[i]!).hsum(hs).f32store(4 * i);
  });
  return { name: "gemv_int8_q6_k", params: [I32, I32, I32, I32, I32, I32], results: [], code: c };
}
