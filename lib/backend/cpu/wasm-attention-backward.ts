/**
 * The backward of attention on the wasm kernels, one (batch row, kv head)
 * group per call: the query heads sharing a kv head (GQA) are R = group·T
 * rows of P [R, S], Q and dO [R, D]; K, V [S, D]. With the softmax weights P
 * from the forward:
 *
 *   dV += Pᵀ·dO                        (gemm_tn)
 *   dP  = dO·Vᵀ                        (gemm_f32 over the keys in fours, the last S % 4 keys here)
 *   dS  = P ⊙ (dP − rowsum(P ⊙ dP)) · rowScale      (rowScale: the softmax scale, 0 for a row that sees no key)
 *   dQ  = dS·K                         (gemm_nn; dQ starts at zero)
 *   dK += dSᵀ·Q                        (gemm_tn)
 *
 * P is exactly 0 past each row's causal limit and at masked keys, so the row
 * sums run over all S keys. D must be a multiple of 16 (gemm_nn's block).
 */
import { Code, F32, I32, V128, type FunctionDef } from "./wasm-asm.js";
import { readParams } from "./wasm-tasks.js";

/** Which gradients a call computes (bits of `parts`). */
export const ATTN_DV = 1, ATTN_DQ = 2, ATTN_DK = 4;

/** Where attn_bwd_group finds the products it calls (function indices in the kernel module). */
export interface AttentionProductIndices {
  gemmF32: number;
  gemmNn: number;
  gemmTn: number;
}

/**
 * attn_bwd_group(P, dO, Q, K, V, dQ, dK, dV, dS, rowScale, R, S, D, parts):
 * pointers to float32 arrays as in the file comment (dS: R·S floats of scratch,
 * rowScale: R floats); `parts` is a sum of ATTN_DV, ATTN_DQ, ATTN_DK.
 */
export function attentionBackwardGroupFn(ix: AttentionProductIndices): FunctionDef {
  const [P, dO, Q, K, V, dQ, dK, dV, dS, rowScale, R, S, D, parts] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const c = new Code(14);
  const S4 = c.local(I32), j = c.local(I32), r = c.local(I32), rowBytes = c.local(I32), sBytes = c.local(I32), s4Bytes = c.local(I32);
  const a = c.local(I32), b = c.local(I32), off = c.local(I32), pRow = c.local(I32), sRow = c.local(I32);
  const acc = c.local(V128), tmp = c.local(V128), dotV = c.local(V128), scaleV = c.local(V128), dot = c.local(F32), rs = c.local(F32);
  c.get(D).i32(2).shl().set(rowBytes);
  c.get(S).i32(2).shl().set(sBytes);
  c.get(S).i32(-4).and32().set(S4);
  c.get(S4).i32(2).shl().set(s4Bytes);

  c.get(parts).i32(ATTN_DV).and32().if(() => { c.get(P).get(R).get(S).get(S).get(dO).get(D).get(dV).call(ix.gemmTn); });
  c.get(parts).i32(ATTN_DQ | ATTN_DK).and32().if(() => {
    // dP = dO·Vᵀ: the keys in fours on gemm_f32, then each of the last S % 4 keys as one dot product per row.
    c.get(dO).get(R).get(V).get(D).get(dS).get(S).get(S4).call(ix.gemmF32);
    c.get(S4).set(j);
    c.loop(j, S, 1, () => {
      c.get(V).get(j).get(rowBytes).mul().add().set(b);
      c.i32(0).set(r);
      c.loop(r, R, 1, () => {
        c.get(dO).get(r).get(rowBytes).mul().add().set(a);
        c.i32x4const(0).set(acc);
        c.i32(0).set(off);
        c.loop(off, rowBytes, 16, () => { c.mulAdd(acc, () => c.sum(a, off).v128load().sum(b, off).v128load()); });
        c.get(dS).get(r).get(sBytes).mul().get(j).i32(2).shl().add().add(); // &dS[r, j]
        c.get(acc).hsum(tmp).f32store();
      });
    });
    // dS = P ⊙ (dP − Σ_j P·dP) · rowScale, row by row.
    c.i32(0).set(r);
    c.loop(r, R, 1, () => {
      c.get(P).get(r).get(sBytes).mul().add().set(pRow);
      c.get(dS).get(r).get(sBytes).mul().add().set(sRow);
      c.i32x4const(0).set(acc);
      c.i32(0).set(off);
      c.loop(off, s4Bytes, 16, () => { c.mulAdd(acc, () => c.sum(pRow, off).v128load().sum(sRow, off).v128load()); });
      c.get(acc).hsum(tmp).set(dot);
      c.get(s4Bytes).set(off);
      c.loop(off, sBytes, 4, () => { c.get(dot).sum(pRow, off).f32load().sum(sRow, off).f32load().f32mul().f32add().set(dot); });
      c.get(dot).f32x4splat().set(dotV);
      c.get(rowScale).get(r).i32(2).shl().add().f32load().set(rs);
      c.get(rs).f32x4splat().set(scaleV);
      c.i32(0).set(off);
      c.loop(off, s4Bytes, 16, () => {
        c.sum(sRow, off);
        c.sum(pRow, off).v128load().sum(sRow, off).v128load().get(dotV).f32x4sub().f32x4mul().get(scaleV).f32x4mul().v128store();
      });
      c.get(s4Bytes).set(off);
      c.loop(off, sBytes, 4, () => {
        c.sum(sRow, off);
        c.sum(pRow, off).f32load().sum(sRow, off).f32load().get(dot).f32sub().f32mul().get(rs).f32mul().f32store();
      });
    });
    c.get(parts).i32(ATTN_DQ).and32().if(() => {
      c.get(dS).get(R).get(S).get(K).get(D).i32(1).f32convertI32().get(dQ).call(ix.gemmNn);
    });
    c.get(parts).i32(ATTN_DK).and32().if(() => { c.get(dS).get(R).get(S).get(S).get(Q).get(D).get(dK).call(ix.gemmTn); });
  });
  return { name: "attn_bwd_group", params: new Array<number>(14).fill(I32), results: [], code: c };
}

/**
 * attn_bwd_groups(params, first, end, thread): attn_bwd_group for groups
 * first..end−1 (group u = batch row u / kvHeads, kv head u % kvHeads), with
 * the pointers and sizes of the parameter block (TASK_PARAMS.attn_bwd_groups, i32 each) at
 * `params`: group u's rows of P, dO, Q, dQ start u·R rows in, its K, V, dK,
 * dV u·S rows in, its rowScale at batch row u / kvHeads (R entries each);
 * `thread` picks its own R·S floats of dS scratch. A worker-pool task:
 * groups write disjoint outputs, so any split gives the same numbers.
 */
export function attentionBackwardGroupsFn(groupIndex: number): FunctionDef {
  const [params, first, end, thread] = [0, 1, 2, 3];
  const c = new Code(4);
  const f = readParams(c, "attn_bwd_groups", params);
  const u = c.local(I32), qBytes = c.local(I32), pBytes = c.local(I32), kBytes = c.local(I32);
  c.get(f.R).get(f.D).mul().i32(2).shl().set(qBytes);
  c.get(f.R).get(f.S).mul().i32(2).shl().set(pBytes);
  c.get(f.S).get(f.D).mul().i32(2).shl().set(kBytes);
  c.get(first).set(u);
  c.loop(u, end, 1, () => {
    const at = (base: number, bytes: number) => { c.get(base).get(u).get(bytes).mul().add(); };
    at(f.P, pBytes); at(f.dO, qBytes); at(f.Q, qBytes); at(f.K, kBytes); at(f.V, kBytes);
    at(f.dQ, qBytes); at(f.dK, kBytes); at(f.dV, kBytes);
    c.get(f.dS).get(thread).get(pBytes).mul().add();
    c.get(f.rowScale).get(u).get(f.kvHeads).divU().get(f.R).mul().i32(2).shl().add();
    c.get(f.R).get(f.S).get(f.D).get(f.parts).call(groupIndex);
  });
  return { name: "attn_bwd_groups", params: [I32, I32, I32, I32], results: [], code: c };
}
