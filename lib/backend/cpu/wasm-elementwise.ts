/**
 * The WebAssembly SIMD kernels of the elementwise ops: silu_mul (the CPU
 * backend's SwiGLU gate) and the training tape's backwards of SwiGLU, RMSNorm
 * and RoPE. All pointers are byte addresses in the shared memory; counts and
 * row widths are multiples of 4 floats (the engine pads, or keeps other
 * shapes on the JavaScript path).
 */
import { Code, F64, I32, V128, type FunctionDef } from "./wasm-asm.js";
import { readParams } from "./wasm-tasks.js";

/** The v128 locals expNeg works in. */
interface ExpLocals { t: number; k: number; r: number }

function expLocals(c: Code): ExpLocals {
  return { t: c.local(V128), k: c.local(V128), r: c.local(V128) };
}

/**
 * local y = exp(-x), lane by lane: Cephes' expf (range reduction by ln 2 in
 * two parts, degree-7 polynomial, scale by 2^k built in the exponent bits;
 * about 1 ulp, like the SLEEF expf PyTorch uses). The argument is clamped to
 * [-87, 88] so 2^k stays a normal float. The clamp is pmax/pmin (one
 * instruction each on x86, where max/min take seven) with t first, so a NaN
 * passes through as min/max would pass it. 2^k: k + 127 is an integer in
 * [1, 254], so in k + 127 + 2^23 it fills the low mantissa bits, and shifting
 * the float's bits left by 23 leaves (k + 127) << 23, the exponent field
 * (a NaN k gives some bits, times a NaN y: NaN).
 */
function expNeg(c: Code, x: number, y: number, { t, k, r }: ExpLocals): void {
  c.get(x).f32x4neg().f32x4const(-87).f32x4pmax().f32x4const(88).f32x4pmin().set(t); // t = -x, clamped
  c.get(t).f32x4const(1.44269504088896341).f32x4mul().f32x4nearest().set(k);
  c.get(t).get(k).f32x4const(0.693359375).f32x4mul().f32x4sub()
    .get(k).f32x4const(-2.12194440e-4).f32x4mul().f32x4sub().set(r);
  c.f32x4const(1.9875691500e-4);
  for (const coef of [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]) {
    c.get(r).f32x4mul().f32x4const(coef).f32x4add();
  }
  c.get(r).f32x4mul().get(r).f32x4mul().get(r).f32x4add().f32x4const(1).f32x4add().set(y); // exp(r)
  c.get(k).f32x4const(2 ** 23 + 127).f32x4add().i32(23).i32x4shl().get(y).f32x4mul().set(y); // exp(t) = 2^k · exp(r)
}

/**
 * silu_mul(g, u, out, count): out = silu(g) · u, count a multiple of 4, in
 * float32 as PyTorch's CPU kernel does: g / (1 + exp(-g)), rounded, times u,
 * exp(-g) from expNeg: with its clamp, beyond [-87, 88] silu(g) is g (to the
 * last bit) or below 1e-36.
 */
export function siluMulFn(): FunctionDef {
  const [g, u, out, count] = [0, 1, 2, 3];
  const c = new Code(4);
  const end = c.local(I32), x = c.local(V128);
  const exp = expLocals(c);
  const y = c.local(V128);
  c.get(g).get(count).i32(2).shl().add().set(end);
  c.loop(g, end, () => { c.inc(g, 16).inc(u, 16).inc(out, 16); }, () => {
    c.get(g).v128load().set(x);
    expNeg(c, x, y, exp);
    c.get(out).get(x).get(y).f32x4const(1).f32x4add().f32x4div().get(u).v128load().f32x4mul().v128store();
  });
  return { name: "silu_mul", params: [I32, I32, I32, I32], results: [], code: c };
}

/**
 * silu_mul_backward(g, u, d, count): the gradients of out = silu(g) · u for
 * the output gradient d, in place: g's room receives d·u·silu'(g), d's
 * receives d·silu(g). count a multiple of 4. With e = exp(-g) (expNeg, as the
 * forward) and s = 1 / (1 + e) = sigmoid(g) (one division): silu(g) = g·s and
 * silu'(g) = s + silu(g)·(1 − s), 1 − s taken as e·s: where s nears 1, 1 − s
 * in float32 would keep only the few bits of s's rounding. s is 1/2 at 0, and
 * 1 or tiny beyond the clamp (where silu' is 1 or below 1e-36). Each gradient
 * is within ~3e-7 of its terms' size (test/autograd-tape-elementwise.test.ts).
 */
export function siluMulBackwardFn(): FunctionDef {
  const [g, u, d, count] = [0, 1, 2, 3];
  const c = new Code(4);
  const end = c.local(I32), x = c.local(V128), e = c.local(V128);
  const exp = expLocals(c);
  const den = c.local(V128), silu = c.local(V128), s = c.local(V128), slope = c.local(V128), dv = c.local(V128);
  c.get(g).get(count).i32(2).shl().add().set(end);
  c.loop(g, end, () => { c.inc(g, 16).inc(u, 16).inc(d, 16); }, () => {
    c.get(g).v128load().set(x);
    expNeg(c, x, e, exp);
    c.get(e).f32x4const(1).f32x4add().set(den);
    c.f32x4const(1).get(den).f32x4div().tee(s).set(slope);
    c.get(x).get(s).f32x4mul().set(silu);
    c.mulAdd(slope, () => c.get(silu).get(e).get(s).f32x4mul()); // s + silu·(1 − s), 1 − s as e·s
    c.get(d).v128load().set(dv);
    c.get(g).get(dv).get(u).v128load().f32x4mul().get(slope).f32x4mul().v128store();
    c.get(d).get(dv).get(silu).f32x4mul().v128store();
  });
  return { name: "silu_mul_backward", params: [I32, I32, I32, I32], results: [], code: c };
}

/**
 * rms_norm_backward(x, w, d, rstd, rows, H, dw): the gradients of RMSNorm
 * y = w · x · r for the output gradient d, x and d [rows, H], w [H], r = rstd
 * [rows], H a multiple of 4. With n = x·r per row: dx = r·(d·w − n·mean(d·w·n))
 * overwrites d (each element read before it is written), and dw [H] += Σ_rows
 * d·n (row by row in order, as the JavaScript loop). The row's mean is summed
 * in four float32 lanes (as PyTorch's float32 backward).
 */
export function rmsNormBackwardFn(): FunctionDef {
  const [x, w, d, rstd, rows, H, dw] = [0, 1, 2, 3, 4, 5, 6];
  const c = new Code(7);
  const r = c.local(I32), rowBytes = c.local(I32), xr = c.local(I32), dr = c.local(I32), off = c.local(I32);
  const rs = c.local(V128), acc = c.local(V128), mean = c.local(V128), n = c.local(V128), dv = c.local(V128);
  const dwv = c.local(V128), tmp = c.local(V128);
  c.get(H).i32(2).shl().set(rowBytes);
  c.i32(0).set(r);
  c.loop(r, rows, 1, () => {
    c.get(x).get(r).get(rowBytes).mul().add().set(xr);
    c.get(d).get(r).get(rowBytes).mul().add().set(dr);
    c.get(rstd).get(r).i32(2).shl().add().f32load().f32x4splat().set(rs);
    c.i32x4const(0).set(acc);
    c.i32(0).set(off);
    c.loop(off, rowBytes, 16, () => {
      c.mulAdd(acc, () => c.sum(dr, off).v128load().sum(w, off).v128load().f32x4mul().sum(xr, off).v128load());
    });
    // mean(d·w·n) = r · Σ d·w·x / H
    c.get(acc).hsum(tmp).get(rs).f32x4extract(0).f32mul().get(H).f32convertI32().f32div().f32x4splat().set(mean);
    c.i32(0).set(off);
    c.loop(off, rowBytes, 16, () => {
      c.sum(xr, off).v128load().get(rs).f32x4mul().set(n);
      c.sum(dr, off).v128load().set(dv);
      c.sum(dw, off).v128load().set(dwv);
      c.mulAdd(dwv, () => c.get(dv).get(n));
      c.sum(dw, off).get(dwv).v128store();
      c.sum(dr, off).get(rs).get(dv).sum(w, off).v128load().f32x4mul().get(n).get(mean).f32x4mul().f32x4sub().f32x4mul().v128store();
    });
  });
  return { name: "rms_norm_backward", params: [I32, I32, I32, I32, I32, I32, I32], results: [], code: c };
}

/**
 * rope_forward(x, cos, sin, B, T, heads, D, out): splitHeads with RoPE (lib/tensor/ops.ts
 * splitHeadsInto, bit for bit: each product rounded to float32, then the difference or sum):
 * x [B, T, heads·D] → out [B, heads, T, D] with, for x1, x2 the halves of a head at i and
 * c, s = cos, sin [B, T, D/2] at (b, t, i),
 *
 *   out[b, h, t, i] = x1·c − x2·s        out[b, h, t, i + D/2] = x2·c + x1·s
 *
 * rope_backward(g, cos, sin, B, T, heads, D, dx): its gradient for the output gradient g
 * [B, heads, T, D]: the inverse rotation, written back in x's layout,
 *
 *   dx[b, t, h, i] = g1·c + g2·s        dx[b, t, h, i + D/2] = g2·c − g1·s
 *
 * D/2 a multiple of 4. The [B, T, heads·D] side is walked in order, the [B, heads, T, D] side a
 * head's T·D floats apart.
 */
function ropeFn(inverse: boolean): FunctionDef {
  const [src, cos, sin, B, T, heads, D, dst] = [0, 1, 2, 3, 4, 5, 6, 7];
  const c = new Code(8);
  const b = c.local(I32), t = c.local(I32), h = c.local(I32), off = c.local(I32);
  const headBytes = c.local(I32), halfBytes = c.local(I32), seqBytes = c.local(I32), batchBytes = c.local(I32);
  const hBatch = c.local(I32), hRow = c.local(I32), hp = c.local(I32), rows = c.local(I32), tab = c.local(I32), a1 = c.local(I32);
  const cv = c.local(V128), sv = c.local(V128), v1 = c.local(V128), v2 = c.local(V128);
  // forward reads rows in order and writes heads apart; the backward the other way round
  const [headsSide, rowsSide] = inverse ? [src, dst] : [dst, src];
  const at = (side: number) => { if (side === headsSide) c.get(hp); else c.get(rows); };
  c.get(D).i32(2).shl().set(headBytes);
  c.get(D).i32(1).shl().set(halfBytes);
  c.get(T).get(headBytes).mul().set(seqBytes); // one head of the [B, heads, T, D] side: T rows of D
  c.get(heads).get(seqBytes).mul().set(batchBytes);
  c.get(headsSide).set(hBatch);
  c.get(rowsSide).set(rows);
  c.i32(0).set(tab); // byte offset of (b, t) in cos and sin
  c.i32(0).set(b);
  c.loop(b, B, 1, () => {
    c.get(hBatch).set(hRow);
    c.i32(0).set(t);
    c.loop(t, T, 1, () => {
      c.get(hRow).set(hp);
      c.i32(0).set(h);
      c.loop(h, heads, 1, () => {
        c.i32(0).set(off);
        c.loop(off, halfBytes, 16, () => {
          c.sum(tab, off).get(cos).add().v128load().set(cv);
          c.sum(tab, off).get(sin).add().v128load().set(sv);
          at(src); c.get(off).add().tee(a1).v128load().set(v1);
          c.get(a1).get(halfBytes).add().v128load().set(v2);
          at(dst); c.get(off).add().tee(a1).get(v1).get(cv).f32x4mul().get(v2).get(sv).f32x4mul();
          if (inverse) c.f32x4add(); else c.f32x4sub();
          c.v128store();
          c.get(a1).get(halfBytes).add().get(v2).get(cv).f32x4mul().get(v1).get(sv).f32x4mul();
          if (inverse) c.f32x4sub(); else c.f32x4add();
          c.v128store();
        });
        c.get(hp).get(seqBytes).add().set(hp);
        c.get(rows).get(headBytes).add().set(rows);
      });
      c.get(hRow).get(headBytes).add().set(hRow);
      c.get(tab).get(halfBytes).add().set(tab);
    });
    c.get(hBatch).get(batchBytes).add().set(hBatch);
  });
  return { name: inverse ? "rope_backward" : "rope_forward", params: [I32, I32, I32, I32, I32, I32, I32, I32], results: [], code: c };
}

export const ropeForwardFn = (): FunctionDef => ropeFn(false);
export const ropeBackwardFn = (): FunctionDef => ropeFn(true);

/**
 * rms_norm_rows(params, first, end, thread): RMSNorm of rows first..end−1 of x [rows, H]
 * (lib/tensor/ops.ts rmsNormInto, bit for bit): per row, Σ x² in float64 in order, then
 * rstd = f32(1 / √f32(f32(Σ/H) + eps)) with eps a float64, out = w · f32(x · rstd) in float32.
 * Two rows at a time, so their two sums (each still in order) overlap. H a multiple of 4.
 * Parameter block: TASK_PARAMS.rms_norm_rows (eps a float64 over two fields).
 */
export function rmsNormRowsFn(): FunctionDef {
  const [params, first, end] = [0, 1, 2];
  const c = new Code(4);
  const f = readParams(c, "rms_norm_rows", params);
  const ss0 = c.local(F64), ss1 = c.local(F64), v = c.local(F64);
  const u = c.local(I32), off = c.local(I32), rowBytes = c.local(I32), r0 = c.local(I32), r1 = c.local(I32), pairEnd = c.local(I32);
  const inv = c.local(V128);
  c.get(f.H).i32(2).shl().set(rowBytes);
  // rstd[row] from its Σ x², then out = w · f32(x · rstd)
  const finish = (row: number, ss: number) => {
    c.get(ss).get(f.H).f64convertI32().f64div().f32demote().f64promote().get(f.eps).f64add().f32demote().f64promote()
      .f64sqrt().set(v);
    c.get(f.rstd).get(row).i32(2).shl().add().f64const(1).get(v).f64div().f32demote().f32store();
    c.get(f.rstd).get(row).i32(2).shl().add().f32load().f32x4splat().set(inv);
    c.i32(0).set(off);
    c.loop(off, rowBytes, 16, () => {
      c.get(f.out).get(row).get(rowBytes).mul().add().get(off).add();
      c.get(f.w).get(off).add().v128load();
      c.get(f.x).get(row).get(rowBytes).mul().add().get(off).add().v128load().get(inv).f32x4mul();
      c.f32x4mul().v128store();
    });
  };
  const square = (row: number, ss: number) => {
    c.get(ss).get(f.x).get(row).get(rowBytes).mul().add().get(off).add().f32load().f64promote().tee(v).get(v).f64mul().f64add().set(ss);
  };
  c.get(first).set(u);
  c.get(end).i32(1).sub().set(pairEnd);
  c.loop(u, pairEnd, 2, () => { // rows u, u + 1
    c.get(u).set(r0);
    c.get(u).i32(1).add().set(r1);
    c.f64const(0).set(ss0).f64const(0).set(ss1);
    c.i32(0).set(off);
    c.loop(off, rowBytes, 4, () => { square(r0, ss0); square(r1, ss1); });
    finish(r0, ss0);
    finish(r1, ss1);
  });
  c.loop(u, end, 1, () => { // the odd row
    c.f64const(0).set(ss0);
    c.i32(0).set(off);
    c.loop(off, rowBytes, 4, () => { square(u, ss0); });
    finish(u, ss0);
  });
  return { name: "rms_norm_rows", params: [I32, I32, I32, I32], results: [], code: c };
}
