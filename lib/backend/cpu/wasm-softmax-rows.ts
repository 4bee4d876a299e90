/**
 * Softmax statistics of rows of logits on the wasm kernels, in float64 with
 * exp_f64x2 (Math.exp bit for bit, two at a time, wasm-exp.ts): the same numbers as the
 * JavaScript loop it replaces (jsSoftmaxRows in lib/autograd/loss.ts), which
 * DPO's sequence log-probs are built on. Per row of V logits x:
 *
 *   max, argmax (the first), Σ x, z = Σ exp(x − max), Σ exp(x − max)·(x − max)
 *
 * and, when asked, the softmax itself: each exp rounded to float32 when
 * stored, then divided by z and rounded again.
 */
import { Code, F64, I32, V128, type FunctionDef } from "./wasm-asm.js";
import { readParams } from "./wasm-tasks.js";

/** float64 statistics per row, in this order. */
export const SOFTMAX_STATS = ["max", "argmax", "sumLogits", "z", "weightedSum"] as const;

/** softmax_row(x, V, probs, stats): one row of V floats at x; probs 0 for none; stats: SOFTMAX_STATS as float64. */
export function softmaxRowFn(expF64: number, expF64x2: number): FunctionDef {
  const [x, V, probs, stats] = [0, 1, 2, 3];
  const c = new Code(4);
  const at = c.local(I32), end = c.local(I32), arg = c.local(I32), p = c.local(I32);
  const xv = c.local(F64), max = c.local(F64), sum = c.local(F64), z = c.local(F64), wsum = c.local(F64), d = c.local(F64), e = c.local(F64);
  const pairEnd = c.local(I32), max2 = c.local(V128), d2 = c.local(V128), e2 = c.local(V128);
  c.get(x).get(V).i32(2).shl().add().set(end);
  c.f64const(-Infinity).set(max);
  c.get(x).set(at);
  c.loop(at, end, 4, () => {
    c.get(at).f32load().f64promote().set(xv);
    c.get(sum).get(xv).f64add().set(sum);
    c.get(xv).get(max).f64gt().if(() => { c.get(xv).set(max); c.get(at).get(x).sub().i32(2).shrU().set(arg); });
  });
  c.get(x).set(at);
  c.get(probs).set(p);
  // two logits at a time on exp_f64x2, the sums taken in order
  c.get(end).i32(4).sub().set(pairEnd); // at < end − 4: two left
  c.get(max).f64x2splat().set(max2);
  c.loop(at, pairEnd, () => { c.inc(at, 8); c.inc(p, 8); }, () => {
    c.get(at).v128load64zero().f64x2promoteLow().get(max2).f64x2sub().set(d2);
    c.get(d2).call(expF64x2).set(e2);
    for (const lane of [0, 1]) {
      c.get(probs).if(() => { c.get(p).get(e2).f64x2extract(lane).f32demote().f32store(4 * lane); });
      c.get(z).get(e2).f64x2extract(lane).f64add().set(z);
      c.get(wsum).get(e2).f64x2extract(lane).get(d2).f64x2extract(lane).f64mul().f64add().set(wsum);
    }
  });
  c.loop(at, end, () => { c.inc(at, 4); c.inc(p, 4); }, () => { // the odd one
    c.get(at).f32load().f64promote().get(max).f64sub().set(d);
    c.get(d).call(expF64).set(e);
    c.get(probs).if(() => { c.get(p).get(e).f32demote().f32store(); });
    c.get(z).get(e).f64add().set(z);
    c.get(wsum).get(e).get(d).f64mul().f64add().set(wsum);
  });
  c.get(probs).if(() => {
    c.get(probs).set(p);
    c.get(probs).get(V).i32(2).shl().add().set(end);
    c.loop(p, end, 4, () => { c.get(p).get(p).f32load().f64promote().get(z).f64div().f32demote().f32store(); });
  });
  const values = { max, argmax: arg, sumLogits: sum, z, weightedSum: wsum };
  SOFTMAX_STATS.forEach((name, i) => {
    c.get(stats).get(values[name]);
    if (name === "argmax") c.f64convertI32();
    c.f64store(8 * i);
  });
  return { name: "softmax_row", params: [I32, I32, I32, I32], results: [], code: c };
}

/** softmax_rows(params, first, end, thread): softmax_row on rows first..end−1 of x [R, V] (probs [R, V] or 0, stats [R, 5] float64). */
export function softmaxRowsFn(rowIndex: number): FunctionDef {
  const [params, first, end] = [0, 1, 2];
  const c = new Code(4);
  const f = readParams(c, "softmax_rows", params);
  const u = c.local(I32), rowBytes = c.local(I32);
  c.get(f.V).i32(2).shl().set(rowBytes);
  c.get(first).set(u);
  c.loop(u, end, 1, () => {
    c.get(f.x).get(u).get(rowBytes).mul().add().get(f.V);
    c.get(f.probs).get(u).get(rowBytes).mul().add().i32(0).get(f.probs).select(); // this row's, or 0 for none
    c.get(f.stats).get(u).i32(8 * SOFTMAX_STATS.length).mul().add();
    c.call(rowIndex);
  });
  return { name: "softmax_rows", params: [I32, I32, I32, I32], results: [], code: c };
}
