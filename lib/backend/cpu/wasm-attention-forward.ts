/**
 * Attention's forward on the wasm kernels, one (batch row, kv head) group per
 * call: the query heads sharing that kv head (GQA) form R = group·T rows, so
 *
 *   scores [R, S] = Q_rows [R, D] @ K^T   (gemm_f32 over the keys in fours, the last S % 4 keys here)
 *   P = softmax(scores · scale + mask)    (here, in float64 with exp_f64x2: Math.exp's bits, wasm-exp.ts)
 *   out [R, D]    = P [R, S] @ V          (gemm_nn onto zeros)
 *
 * The softmax is the CPU backend's (lib/tensor/ops.ts attentionInto) step by
 * step: each score rounded to float32 after the scale, the max and the sum in
 * float64, each exp rounded to float32 when stored and divided by the
 * unrounded sum; a row that may see no key gets 1/S everywhere (HF's eager
 * attention); keys past the causal limit get exactly 0. exp_f64 is Math.exp's
 * algorithm (wasm-exp.ts), so the weights and outputs keep the bits the parity
 * tests pinned when the loop was JavaScript. head_dim must be a multiple of 16.
 */
import { Code, F64, I32, V128, type FunctionDef } from "./wasm-asm.js";
import { readParams } from "./wasm-tasks.js";

/** Where attn_fwd_group finds the functions it calls (indices in the kernel module). */
export interface AttentionForwardIndices {
  gemmF32: number;
  gemmNn: number;
  expF64: number;
  expF64x2: number;
}

/**
 * attn_fwd_group(Q, K, V, P, O, mask, R, S, D, T, queryOffset, scale): Q [R, D]
 * (row r is query r % T of its head), K and V [S, D]; writes the weights P
 * [R, S] and O [R, D] (overwritten). mask: S bytes (1 = a real key) or 0 for
 * none. Row r sees keys j ≤ queryOffset + r % T.
 */
export function attentionForwardGroupFn(ix: AttentionForwardIndices): FunctionDef {
  const [Q, K, V, P, O, mask, R, S, D, T, queryOffset, scale] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const c = new Code(12);
  const S4 = c.local(I32), j = c.local(I32), r = c.local(I32), d = c.local(I32), rowBytes = c.local(I32), sBytes = c.local(I32);
  const row = c.local(I32), last = c.local(I32), at = c.local(I32), end = c.local(I32);
  const dot = c.local(F64), max = c.local(F64), sum = c.local(F64), e = c.local(F64), sc = c.local(F64);
  const pairEnd = c.local(I32), max2 = c.local(V128), e2 = c.local(V128);
  c.get(D).i32(2).shl().set(rowBytes);
  c.get(S).i32(2).shl().set(sBytes);
  c.get(S).i32(-4).and32().set(S4);

  // scores: the keys in fours on gemm_f32, then each of the last S % 4 keys as a float64 dot product
  // (JavaScript's: each float32 product exact in float64, summed in order, rounded once)
  c.get(Q).get(R).get(K).get(D).get(P).get(S).get(S4).call(ix.gemmF32);
  c.get(S4).set(j);
  c.loop(j, S, 1, () => {
    c.i32(0).set(r);
    c.loop(r, R, 1, () => {
      c.f64const(0).set(dot);
      c.i32(0).set(d);
      c.loop(d, rowBytes, 4, () => {
        c.get(dot);
        c.get(Q).get(r).get(rowBytes).mul().add().get(d).add().f32load().f64promote();
        c.get(K).get(j).get(rowBytes).mul().add().get(d).add().f32load().f64promote();
        c.f64mul().f64add().set(dot);
      });
      c.get(P).get(r).get(sBytes).mul().add().get(j).i32(2).shl().add().get(dot).f32demote().f32store();
    });
  });

  // score · scale rounded to float32 (stored), and the running max
  const scaleAndMax = () => {
    c.get(at).get(at).f32load().f64promote().get(scale).f64mul().f32demote().f64promote().tee(sc).f32demote().f32store();
    c.get(sc).get(max).f64gt().if(() => { c.get(sc).set(max); });
  };
  c.i32(0).set(r);
  c.loop(r, R, 1, () => {
    c.get(P).get(r).get(sBytes).mul().add().set(row);
    // last = min(S − 1, queryOffset + r % T), as a byte offset one past it in `end`
    c.get(queryOffset).get(r).get(T).remU().add().set(last);
    c.get(last).get(S).i32(1).sub().gtU().if(() => { c.get(S).i32(1).sub().set(last); });
    c.get(row).get(last).i32(1).add().i32(2).shl().add().set(end);
    // scale (rounded to float32) and mask, the max over the keys the row may see
    c.f64const(-Infinity).set(max);
    c.get(row).set(at);
    c.loop(at, end, 4, () => {
      c.get(mask).ifElse(() => {
        // key (at − row)/4 of this batch row's mask
        c.get(mask).get(at).get(row).sub().i32(2).shrU().add().i32load8u().eqz().ifElse(() => {
          c.get(at).f32const(-Infinity).f32store();
        }, () => { scaleAndMax(); });
      }, () => { scaleAndMax(); });
    });
    c.get(max).f64const(-Infinity).f64eq().ifElse(() => {
      // no key allowed: uniform over all S keys
      c.get(row).set(at);
      c.get(row).get(sBytes).add().set(end);
      c.loop(at, end, 4, () => { c.get(at).f64const(1).get(S).f64convertI32().f64div().f32demote().f32store(); });
    }, () => {
      c.f64const(0).set(sum);
      c.get(row).set(at);
      // two keys at a time on exp_f64x2 (a masked key's exp(−∞) is the 0 it must get), summed in order
      c.get(end).i32(4).sub().set(pairEnd); // at < end − 4: two keys left
      c.get(max).f64x2splat().set(max2);
      c.loop(at, pairEnd, 8, () => {
        c.get(at).v128load64zero().f64x2promoteLow().get(max2).f64x2sub().call(ix.expF64x2).set(e2);
        for (const lane of [0, 1]) {
          c.get(at).get(e2).f64x2extract(lane).f32demote().f32store(4 * lane);
          c.get(sum).get(e2).f64x2extract(lane).f64add().set(sum);
        }
      });
      c.loop(at, end, 4, () => { // the odd key
        c.get(at).f32load().f32const(-Infinity).f32eq().ifElse(() => { c.f64const(0).set(e); }, () => {
          c.get(at).f32load().f64promote().get(max).f64sub().call(ix.expF64).set(e);
        });
        c.get(at).get(e).f32demote().f32store();
        c.get(sum).get(e).f64add().set(sum);
      });
      c.get(row).set(at);
      c.loop(at, end, 4, () => { c.get(at).get(at).f32load().f64promote().get(sum).f64div().f32demote().f32store(); });
      // keys past the causal limit: exactly 0
      c.get(row).get(sBytes).add().set(end);
      c.loop(at, end, 4, () => { c.get(at).f32const(0).f32store(); });
    });
  });

  // out = P·V onto zeros
  c.get(O).set(at);
  c.get(O).get(R).get(rowBytes).mul().add().set(end);
  c.loop(at, end, 16, () => { c.get(at).i32x4const(0).v128store(); });
  c.get(P).get(R).get(S).get(V).get(D).f32const(1).get(O).call(ix.gemmNn);
  return { name: "attn_fwd_group", params: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, F64], results: [], code: c };
}

/**
 * attn_fwd_groups(params, first, end, thread): attn_fwd_group for groups
 * first..end−1 (group u = batch row u / kvHeads, kv head u % kvHeads) with the
 * parameter block at `params` (TASK_PARAMS.attn_fwd_groups: i32 fields, `scale` a float64 over
 * two): group u's q rows start u·R rows into Q [B, n, T, D], its keys and
 * values u·kStride and u·vStride floats into K and V; its weights go to P
 * at u·R rows (pPerGroup: P [B, n, T, S] is the caller's) or to the thread's own
 * R·S block, its R output rows through the thread's [R, D] block of Os to out
 * [B, T, n·D] (query head h = kv head · group + r / T, position r % T). A
 * worker-pool task: groups write disjoint outputs, so any split gives the same numbers.
 */
export function attentionForwardGroupsFn(groupIndex: number): FunctionDef {
  const [params, first, end, thread] = [0, 1, 2, 3];
  const c = new Code(4);
  const f = readParams(c, "attn_fwd_groups", params);
  const u = c.local(I32), b = c.local(I32), group = c.local(I32), r = c.local(I32), src = c.local(I32), dst = c.local(I32);
  const off = c.local(I32), rowBytes = c.local(I32), os = c.local(I32), v = c.local(V128);
  c.get(f.D).i32(2).shl().set(rowBytes);
  c.get(f.R).get(f.T).divU().set(group);
  c.get(f.Os).get(thread).get(f.R).get(rowBytes).mul().mul().add().set(os);
  c.get(first).set(u);
  c.loop(u, end, 1, () => {
    c.get(u).get(f.kvHeads).divU().set(b);
    c.get(f.Q).get(u).get(f.R).mul().get(rowBytes).mul().add();
    c.get(f.K).get(u).get(f.kStride).mul().i32(2).shl().add();
    c.get(f.V).get(u).get(f.vStride).mul().i32(2).shl().add();
    c.get(f.P).get(u).get(thread).get(f.pPerGroup).select().get(f.R).get(f.S).mul().mul().i32(2).shl().add();
    c.get(os);
    c.get(f.mask).get(b).get(f.S).mul().add().i32(0).get(f.mask).select(); // this batch row's mask, or 0
    c.get(f.R).get(f.S).get(f.D).get(f.T).get(f.queryOffset).get(f.scale).call(groupIndex);
    // row r → out[b, r % T, (kv head · group + r / T)·D]
    c.i32(0).set(r);
    c.loop(r, f.R, 1, () => {
      c.get(os).get(r).get(rowBytes).mul().add().set(src);
      c.get(f.out);
      c.get(b).get(f.T).mul().get(r).get(f.T).remU().add().get(f.kvHeads).mul().get(group).mul(); // (b·T + i)·n, n = kvHeads·group
      c.get(u).get(f.kvHeads).remU().get(group).mul().get(r).get(f.T).divU().add().add(); // + h
      c.get(rowBytes).mul().add().set(dst);
      c.i32(0).set(off);
      c.loop(off, rowBytes, 16, () => { c.sum(src, off).v128load().set(v).sum(dst, off).get(v).v128store(); });
    });
  });
  return { name: "attn_fwd_groups", params: [I32, I32, I32, I32], results: [], code: c };
}
