/**
 * exp_f64(x): e^x in float64, bit for bit what JavaScript's Math.exp returns.
 *
 * V8 computes Math.exp with fdlibm's e_exp.c (FreeBSD msun, via
 * src/base/ieee754.cc, which returns Math.E for exp(1)), in plain IEEE
 * double arithmetic without fused multiply-adds; wasm's f64 instructions are the same arithmetic, so the same
 * algorithm gives the same bits. That lets a softmax move from a JavaScript
 * loop into a kernel (wasm-attention-forward.ts, the sequence log-probs) without
 * changing one result: the CPU backend's numbers stay those the parity tests
 * pinned. test/wasm-exp.test.ts checks the identity over millions of arguments.
 *
 * The algorithm (fdlibm's comments): reduce x = k·ln2 + r with |r| ≤ ln2/2,
 * ln2 split in a high part exact in 32 bits and a low part; approximate
 * exp(r) by a rational function of r (a degree-5 polynomial R(r²)); scale by
 * 2^k through the exponent bits.
 */
import { Code, F64, I32, V128, type FunctionDef } from "./wasm-asm.js";

const O_THRESHOLD = 7.09782712893383973096e+02; // above: overflow to +Infinity
const U_THRESHOLD = -7.45133219101941108420e+02; // below: underflow to 0
const LN2_HI = 6.93147180369123816490e-01;
const LN2_LO = 1.90821492927058770002e-10;
const INV_LN2 = 1.44269504088896338700e+00;
const P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03, P3 = 6.61375632143793436117e-05;
const P4 = -1.65339022054652515390e-06, P5 = 4.13813679705723846039e-08;
const TWO_M1000 = 9.33263618503218878990e-302; // 2^-1000
const HUGE_HALF = 8.98846567431157953865e+307; // 2^1023

/** exp_f64(x: f64) → f64, fdlibm's e_exp.c step by step (names as there). */
export function expF64Fn(): FunctionDef {
  const x = 0;
  const c = new Code(1);
  const hx = c.local(I32), xsb = c.local(I32), k = c.local(I32);
  const hi = c.local(F64), lo = c.local(F64), t = c.local(F64), cr = c.local(F64), y = c.local(F64);
  // 2^e as a double, e = k + bias, from its exponent bits
  const pow2 = (bias: number) => { c.get(k).i64extendI32().i64const(1023 + bias).i64add().i64const(52).i64shl().f64reinterpretI64(); };

  c.get(x).i64reinterpretF64().i64const(32).i64shrU().i32wrapI64().set(hx); // the high word
  c.get(hx).i32(31).shrU().set(xsb); // the sign
  c.get(hx).i32(0x7fffffff).and32().set(hx); // |x|'s high word
  // |x| ≥ 709.78: NaN, ±Infinity, overflow and underflow
  c.get(hx).i32(0x40862e42).geU().if(() => {
    c.get(x).get(x).f64ne().if(() => { c.get(x).get(x).f64add().ret(); });
    c.get(x).f64const(O_THRESHOLD).f64gt().if(() => { c.f64const(Infinity).ret(); });
    c.get(x).f64const(U_THRESHOLD).f64lt().if(() => { c.f64const(0).ret(); });
  });
  // argument reduction
  c.get(hx).i32(0x3fd62e42).gtU().ifElse(() => { // |x| > 0.5 ln2
    c.get(hx).i32(0x3ff0a2b2).ltU().ifElse(() => { // and < 1.5 ln2: k = ±1
      // V8's one change to fdlibm: exp(1) is Math.E (the algorithm gets its last bit wrong)
      c.get(x).f64const(1).f64eq().if(() => { c.f64const(Math.E).ret(); });
      c.get(x).f64const(-LN2_HI).f64const(LN2_HI).get(xsb).select().f64sub().set(hi);
      c.f64const(-LN2_LO).f64const(LN2_LO).get(xsb).select().set(lo);
      c.i32(1).get(xsb).sub().get(xsb).sub().set(k);
    }, () => {
      c.f64const(INV_LN2).get(x).f64mul().f64const(-0.5).f64const(0.5).get(xsb).select().f64add().i32truncF64().set(k);
      c.get(x).get(k).f64convertI32().f64const(LN2_HI).f64mul().f64sub().set(hi);
      c.get(k).f64convertI32().f64const(LN2_LO).f64mul().set(lo);
    });
    c.get(hi).get(lo).f64sub().set(x);
  }, () => {
    // |x| < 2^-28: 1 + x (fdlibm also raises "inexact" here, which wasm cannot see)
    c.get(hx).i32(0x3e300000).ltU().if(() => { c.f64const(1).get(x).f64add().ret(); });
    c.i32(0).set(k);
  });
  // x is now in [-0.5 ln2, 0.5 ln2]
  c.get(x).get(x).f64mul().set(t);
  c.get(x)
    .get(t).f64const(P1).get(t).f64const(P2).get(t).f64const(P3).get(t).f64const(P4).get(t).f64const(P5)
    .f64mul().f64add().f64mul().f64add().f64mul().f64add().f64mul().f64add().f64mul()
    .f64sub().set(cr); // c = x − t·(P1 + t·(P2 + t·(P3 + t·(P4 + t·P5))))
  c.get(k).eqz().if(() => { // 1 − ((x·c)/(c − 2) − x)
    c.f64const(1).get(x).get(cr).f64mul().get(cr).f64const(2).f64sub().f64div().get(x).f64sub().f64sub().ret();
  });
  // y = 1 − ((lo − (x·c)/(2 − c)) − hi)
  c.f64const(1).get(lo).get(x).get(cr).f64mul().f64const(2).get(cr).f64sub().f64div().f64sub().get(hi).f64sub().f64sub().set(y);
  c.get(k).i32(-1021).geS().if(() => {
    c.get(k).i32(1024).eq().if(() => { c.get(y).f64const(2).f64mul().f64const(HUGE_HALF).f64mul().ret(); });
    c.get(y); pow2(0); c.f64mul().ret();
  });
  c.get(y); pow2(1000); c.f64mul().f64const(TWO_M1000).f64mul();
  return { name: "exp_f64", params: [F64], results: [F64], code: c };
}

/**
 * exp_f64x2(x: v128) → v128: exp_f64 of both float64 lanes, the same bits, without branches: both of
 * fdlibm's final formulas (k = 0 and k ≠ 0) are computed and one kept per lane by masks. Lanes fdlibm
 * treats specially — |x| ≥ 704 (overflow, underflow, 2^k below the normal range), NaN, ±Infinity and
 * x = 1 (V8's Math.E) — send the pair to exp_f64 (function `expF64`), one lane at a time.
 */
export function expF64x2Fn(expF64: number): FunctionDef {
  const x = 0;
  const c = new Code(1);
  const hx = c.local(V128), sign = c.local(V128), big = c.local(V128), mid = c.local(V128), tiny = c.local(V128);
  const k = c.local(V128), hi = c.local(V128), lo = c.local(V128), xr = c.local(V128), t = c.local(V128), cr = c.local(V128);
  const yA = c.local(V128), yB = c.local(V128);
  const MAGIC = 6755399441055744; // 1.5·2^52: k + MAGIC holds k in its low mantissa bits (|k| < 2^51)
  const hxBelow = (limit: number, into: number) => { c.get(hx).i64x2const(limit).i64x2ltS().set(into); };

  c.get(x).i32(32).i64x2shrU().i64x2const(0x7fffffff).and().set(hx); // |x|'s high words
  // the special lanes: |x| ≥ 704 (its high word ≥ 0x40860000; NaN and ±Infinity included) or x = 1
  c.get(hx).i64x2const(0x40860000).i64x2geS().get(x).f64x2const(1).f64x2eq().or().anyTrue().if(() => {
    c.get(x).get(x).f64x2extract(0).call(expF64).f64x2replace(0).get(x).f64x2extract(1).call(expF64).f64x2replace(1).ret();
  });
  c.get(x).i64x2const(0).i64x2ltS().set(sign); // the sign bit, as a lane mask
  c.get(hx).i64x2const(0x3fd62e42).i64x2gtS().set(big); // |x| > 0.5 ln2: reduced, k ≠ 0
  hxBelow(0x3ff0a2b2, mid); // |x| < 1.5 ln2: k = ±1
  hxBelow(0x3e300000, tiny); // |x| < 2^-28: 1 + x
  // k: ±1 for |x| < 1.5 ln2, else trunc(x/ln2 ± 1/2) (as fdlibm; the two differ just above 0.5 ln2)
  c.f64x2const(-1).f64x2const(1).get(sign).bitselect();
  c.f64x2const(INV_LN2).get(x).f64x2mul().f64x2const(-0.5).f64x2const(0.5).get(sign).bitselect().f64x2add()
    .i32x4truncSatF64x2().f64x2convertLowI32x4();
  c.get(mid).bitselect().set(k);
  c.get(x).get(k).f64x2const(LN2_HI).f64x2mul().f64x2sub().set(hi);
  c.get(k).f64x2const(LN2_LO).f64x2mul().set(lo);
  c.get(hi).get(lo).f64x2sub().get(x).get(big).bitselect().set(xr); // reduced where big, x itself elsewhere
  c.get(xr).get(xr).f64x2mul().set(t);
  c.get(xr)
    .get(t).f64x2const(P1).get(t).f64x2const(P2).get(t).f64x2const(P3).get(t).f64x2const(P4).get(t).f64x2const(P5)
    .f64x2mul().f64x2add().f64x2mul().f64x2add().f64x2mul().f64x2add().f64x2mul().f64x2add().f64x2mul()
    .f64x2sub().set(cr);
  // k = 0: 1 − ((x·c)/(c − 2) − x)
  c.f64x2const(1).get(xr).get(cr).f64x2mul().get(cr).f64x2const(2).f64x2sub().f64x2div().get(xr).f64x2sub().f64x2sub().set(yA);
  // k ≠ 0: (1 − ((lo − (x·c)/(2 − c)) − hi)) · 2^k
  c.f64x2const(1).get(lo).get(xr).get(cr).f64x2mul().f64x2const(2).get(cr).f64x2sub().f64x2div().f64x2sub().get(hi).f64x2sub().f64x2sub();
  c.get(k).f64x2const(MAGIC).f64x2add().f64x2const(MAGIC).i64x2sub().i64x2const(1023).i64x2add().i32(52).i64x2shl().f64x2mul().set(yB);
  c.get(yB).get(yA).get(big).bitselect().set(yA); // big ? yB : yA
  c.f64x2const(1).get(x).f64x2add().get(yA).get(tiny).bitselect(); // tiny ? 1 + x : the rest
  return { name: "exp_f64x2", params: [V128], results: [V128], code: c };
}
