/**
 * generate's next-token step on the GPU (lib/backend/token-select.ts): HF's
 * processors applied on the fly to each logit, the choice (argmax, or top-k
 * candidates then the top-p / min-p / multinomial draw), then the stopping
 * bookkeeping of each row — all without a vocab-sized row leaving the GPU.
 *
 * The buffers of a step (each kernel binds those it uses, in its own order):
 *   x        logits [R, V] f32 (the lm_head output, read only)
 *   eos      EOS ids [nEos] u32
 *   seen     [R, V] u32: 1 where the id is in the row's sequence (repetition penalty)
 *   finished [R] u32: 1 once the row stopped (it then receives the pad id)
 *   out      [R] u32: chosen id | EOS_BIT (row stops now) | ERR_BIT (no token has probability > 0)
 *   cand     [R, cap] (value bits, id): sampling's top-k candidates;  u [R] f32: the row's uniform
 * Candidate order everywhere: value descending, then index ascending (torch's
 * argmax/topk tie rule; HF's top-p sorts the same values ascending, ties by index).
 */
import { memoKernel, type Kernel } from "../executor.js";

/** Largest top_k the GPU sampler takes (HF's default is 50); larger or 0 (off) samples on the host. */
export const SELECT_MAX_K = 256;
export const EOS_BIT = 0x80000000;
export const ERR_BIT = 0x40000000;

/** The uniform block shared by the step's kernels. */
const PARAMS = /* wgsl */ `
struct P {
  V: u32, nEos: u32, usePenalty: u32, suppressEos: u32,
  pad: u32, usePad: u32, k: u32, cap: u32,
  penalty: f32, temperature: f32, topP: f32, minP: f32,
  negInf: f32,
}`;

/** A storage binding line. */
const bind = (i: number, name: string, access: "read" | "read_write", type: string) =>
  `@group(0) @binding(${i}) var<storage, ${access}> ${name}: ${type};`;
/** The uniform block, bound after the storage buffers (the executor's rule). */
const uniformAt = (i: number) => `@group(0) @binding(${i}) var<uniform> p: P;`;

/**
 * HF's processors for one logit, in HF's order: repetition penalty (÷ or ×
 * by the sign, as torch.where), min-length EOS suppression, then temperature
 * (sampling only; `p.temperature` is 1 for greedy, and x / 1 is exact).
 */
const IS_EOS = /* wgsl */ `
fn isEos(i: u32) -> bool {
  for (var e = 0u; e < p.nEos; e++) { if (eos[e] == i) { return true; } }
  return false;
}`;

const SCORE = /* wgsl */ `
fn score(row: u32, i: u32) -> f32 {
  var s = x[row * p.V + i];
  if (p.usePenalty != 0u && seen[row * p.V + i] != 0u) { s = select(s / p.penalty, s * p.penalty, s < 0.0); }
  if (p.suppressEos != 0u && isEos(i)) { s = p.negInf; }
  if (p.temperature != 1.0) { s = s / p.temperature; }
  return s;
}
// (va, ia) ranks before (vb, ib)
fn better(va: f32, ia: u32, vb: f32, ib: u32) -> bool { return va > vb || (va == vb && ia < ib); }`;

/**
 * The end of every step for one row (thread 0): a finished row gets the pad
 * id (HF: next_tokens * unfinished + pad * (1 - unfinished)); an unfinished
 * row that drew an EOS id finishes; the id joins the row's sequence for the
 * repetition penalty of the next step.
 */
const FINISH = /* wgsl */ `
fn finishRow(row: u32, chosen: u32, err: u32) {
  var tok = chosen;
  var flags = err;
  if (p.usePad != 0u && finished[row] != 0u) {
    tok = p.pad;
    flags = 0u;
  } else if (isEos(tok)) {
    finished[row] = 1u;
    flags = flags | ${EOS_BIT}u;
  }
  if (p.usePenalty != 0u) { seen[row * p.V + tok] = 1u; }
  out[row] = tok | flags;
}`;

/** Each thread publishes (v, idx) (idx 0xffffffff = none); a tree leaves the workgroup's best in (bv[0], bi[0]). */
const BEST_TREE = /* wgsl */ `bv[li] = v;
  bi[li] = idx;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s && bi[li + s] != 0xffffffffu && (bi[li] == 0xffffffffu || better(bv[li + s], bi[li + s], bv[li], bi[li]))) {
      bv[li] = bv[li + s];
      bi[li] = bi[li + s];
    }
    workgroupBarrier();
  }`;

/**
 * Greedy: argmax of the processed scores (first index on ties, NaN never
 * chosen; an all-NaN row gives 0 as torch.argmax's first index would), then
 * finishRow. Tiling: one 256-thread workgroup per row, strided scan + tree.
 */
function selectArgmaxKernel(): Kernel {
  return {
    key: "select_argmax",
    wgsl: /* wgsl */ `${PARAMS}
${bind(0, "x", "read", "array<f32>")}
${bind(1, "eos", "read", "array<u32>")}
${bind(2, "seen", "read_write", "array<u32>")}
${bind(3, "finished", "read_write", "array<u32>")}
${bind(4, "out", "read_write", "array<u32>")}
${uniformAt(5)}
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
${IS_EOS}
${SCORE}
${FINISH}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.x;
  var v = 0.0;
  var idx = 0xffffffffu;
  for (var j = li; j < p.V; j += 256u) {
    let s = score(row, j);
    if (s == s && (idx == 0xffffffffu || better(s, j, v, idx))) { v = s; idx = j; }
  }
  ${BEST_TREE}
  if (li == 0u) { finishRow(row, select(bi[0], 0u, bi[0] == 0xffffffffu), 0u); }
}
`,
  };
}

/**
 * Sampling, part 1: the top-k candidates of the processed, temperature-scaled
 * scores → cand [R, cap] as (bitcast value, index) pairs, sorted. HF's top-k
 * keeps every score ≥ the k-th largest, so passes go on past k while the next
 * candidate ties the k-th (up to `cap`); an index of 0xffffffff ends the list.
 * Tiling: one 256-thread workgroup per row; pass r finds the best element
 * strictly after pass r−1's winner in candidate order.
 */
function selectTopKKernel(): Kernel {
  return {
    key: "select_topk",
    wgsl: /* wgsl */ `${PARAMS}
${bind(0, "x", "read", "array<f32>")}
${bind(1, "eos", "read", "array<u32>")}
${bind(2, "seen", "read", "array<u32>")}
${bind(3, "cand", "read_write", "array<vec2<u32>>")}
${uniformAt(4)}
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
var<workgroup> prev: vec2<u32>;
var<workgroup> stop: u32;
${IS_EOS}
${SCORE}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.x;
  let base = row * p.cap;
  if (li == 0u) { stop = 0u; }
  for (var r = 0u; r < p.cap; r++) {
    if (workgroupUniformLoad(&stop) != 0u) { break; }
    let pv = bitcast<f32>(prev.x);
    let pi = prev.y;
    var v = 0.0;
    var idx = 0xffffffffu;
    for (var j = li; j < p.V; j += 256u) {
      let s = score(row, j);
      if (s == s && (r == 0u || better(pv, pi, s, j)) && (idx == 0xffffffffu || better(s, j, v, idx))) { v = s; idx = j; }
    }
    ${BEST_TREE}
    if (li == 0u) {
      // Past k, only a tie with the k-th value is still a top-k survivor.
      let kth = bitcast<f32>(cand[base + p.k - 1u].x);
      if (bi[0] == 0xffffffffu || (r >= p.k && bv[0] != kth)) {
        cand[base + r] = vec2<u32>(0u, 0xffffffffu);
        stop = 1u;
      } else {
        cand[base + r] = vec2<u32>(bitcast<u32>(bv[0]), bi[0]);
        prev = cand[base + r];
      }
    }
  }
}
`,
  };
}

/**
 * Sampling, part 2 (one 256-thread workgroup per row; candidate j on thread j):
 *  - probabilities e_j = exp(s_j − max) over the candidates (the rest are 0);
 *  - top-p: walking the candidates in ascending order (ties by index), drop
 *    while the cumulative probability is ≤ 1 − top_p, keeping at least one;
 *  - min-p: drop kept candidates below min_p × the top probability (the top
 *    ones stay);
 *  - the draw: inverse CDF in vocabulary order (as the host's
 *    sampleCategorical) with the row's uniform u: the smallest kept index
 *    whose cumulative mass exceeds u × total; then finishRow.
 */
function selectDrawKernel(): Kernel {
  return {
    key: "select_draw",
    wgsl: /* wgsl */ `${PARAMS}
${bind(0, "cand", "read", "array<vec2<u32>>")}
${bind(1, "u", "read", "array<f32>")}
${bind(2, "eos", "read", "array<u32>")}
${bind(3, "seen", "read_write", "array<u32>")}
${bind(4, "finished", "read_write", "array<u32>")}
${bind(5, "out", "read_write", "array<u32>")}
${uniformAt(6)}
var<workgroup> ev: array<f32, 256>;
var<workgroup> ci: array<u32, 256>;
var<workgroup> kept: array<u32, 256>;
var<workgroup> info: vec3<u32>; // n candidates, error flag, kept mass (f32 bits)
var<workgroup> pick: atomic<u32>;
var<workgroup> last: atomic<u32>;
${IS_EOS}
${FINISH}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.x;
  let base = row * p.cap;
  if (li == 0u) {
    atomicStore(&pick, 0xffffffffu);
    atomicStore(&last, 0u);
    var n = 0u;
    loop {
      if (n >= p.cap || cand[base + n].y == 0xffffffffu) { break; }
      n++;
    }
    let m = bitcast<f32>(cand[base].x);
    var err = 0u;
    if (n == 0u || m == p.negInf) { err = 1u; }
    var total = 0.0;
    for (var j = 0u; j < n; j++) {
      let e = select(exp(bitcast<f32>(cand[base + j].x) - m), 0.0, err != 0u);
      ev[j] = e;
      ci[j] = cand[base + j].y;
      kept[j] = 1u;
      total += e;
    }
    // top-p: ascending order = groups of equal values from the last, each group in index order.
    if (p.topP < 1.0 && err == 0u) {
      let cut = 1.0 - p.topP;
      var cum = 0.0;
      var removed = 0u;
      var g1 = n; // end of the current group
      loop {
        if (g1 == 0u) { break; }
        var g0 = g1 - 1u;
        loop {
          if (g0 == 0u || bitcast<f32>(cand[base + g0 - 1u].x) != bitcast<f32>(cand[base + g1 - 1u].x)) { break; }
          g0--;
        }
        var go = true;
        for (var j = g0; j < g1; j++) {
          if (removed + 1u >= n) { go = false; break; }
          cum += ev[j] / total;
          if (cum <= cut) { kept[j] = 0u; removed++; } else { go = false; break; }
        }
        if (!go) { break; }
        g1 = g0;
      }
    }
    // min-p against the top probability of what top-p kept (softmax again over the kept).
    if (p.minP > 0.0 && err == 0u) {
      var keptSum = 0.0;
      var top = 0.0;
      for (var j = 0u; j < n; j++) { if (kept[j] != 0u) { keptSum += ev[j]; top = max(top, ev[j]); } }
      let threshold = p.minP * (top / keptSum);
      for (var j = 0u; j < n; j++) {
        if (kept[j] != 0u && ev[j] / keptSum < threshold && ev[j] != top) { kept[j] = 0u; }
      }
    }
    var mass = 0.0;
    for (var j = 0u; j < n; j++) { if (kept[j] != 0u) { mass += ev[j]; } }
    info = vec3<u32>(n, err, bitcast<u32>(mass));
  }
  workgroupBarrier();
  let n = info.x;
  let err = info.y;
  let goal = u[row] * bitcast<f32>(info.z);
  if (li < n && kept[li] != 0u && err == 0u) {
    let me = ci[li];
    var cum = 0.0;
    for (var j = 0u; j < n; j++) { if (kept[j] != 0u && ci[j] <= me) { cum += ev[j]; } }
    if (cum > goal) { atomicMin(&pick, me); }
    atomicMax(&last, me);
  }
  workgroupBarrier();
  if (li == 0u) {
    var tok = atomicLoad(&pick);
    if (tok == 0xffffffffu) { tok = atomicLoad(&last); } // u × total rounded up to the total
    finishRow(row, tok, select(0u, ${ERR_BIT}u, err != 0u));
  }
}
`,
  };
}

export const selectArgmax = memoKernel(selectArgmaxKernel);
export const selectTopK = memoKernel(selectTopKKernel);
export const selectDraw = memoKernel(selectDrawKernel);
