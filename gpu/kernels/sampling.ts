/**
 * Logits → next token on the GPU, so decode reads back 4 bytes per sequence
 * instead of a vocab-sized row.
 *
 * Order of candidates everywhere: value descending, then index ascending (the
 * tie rule of torch.topk/argmax on CPU). NaN logits are never chosen.
 */
import type { Kernel } from "../executor.js";

/** Largest k the GPU top-k/sampling kernels take (HF's default top_k is 50). */
export const MAX_TOP_K = 256;

const BETTER = `
// (va, ia) ranks before (vb, ib)
fn better(va: f32, ia: u32, vb: f32, ib: u32) -> bool { return va > vb || (va == vb && ia < ib); }`;

/**
 * Each thread publishes its best candidate (v, idx; idx 0xffffffff = none) to
 * workgroup memory bv/bi, then a tree halves the 256 slots until (bv[0], bi[0])
 * holds the workgroup's best. Shared by argmax and every top-k pass.
 */
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
 * argmax over each row of logits [R, V] → ids [R].
 * Tiling: one 256-thread workgroup per row; each thread keeps the best of a
 * strided slice, then a workgroup-memory tree picks the row's best.
 */
export function argmaxKernel(): Kernel {
  return {
    key: "argmax",
    wgsl: /* wgsl */ `
struct P { V: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<uniform> p: P;
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
${BETTER}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = wg.x * p.V;
  var v = -3.4e38;
  var idx = 0xffffffffu;
  for (var j = li; j < p.V; j += 256u) {
    let x0 = x[base + j];
    if (x0 == x0 && (idx == 0xffffffffu || better(x0, j, v, idx))) { v = x0; idx = j; }
  }
  ${BEST_TREE}
  if (li == 0u) { ids[wg.x] = select(bi[0], 0u, bi[0] == 0xffffffffu); }
}
`,
  };
}

/**
 * top-k over each row of logits [R, V] → values [R, k], indices [R, k], sorted.
 * Tiling: one 256-thread workgroup per row, k passes; pass r finds the best
 * element strictly after pass r−1's winner in the candidate order (so no
 * "already taken" list is needed): a strided scan per thread plus a tree
 * reduction in workgroup memory. O(k·V/256) per thread; k ≤ 256.
 */
export function topKKernel(): Kernel {
  return {
    key: "topk",
    wgsl: /* wgsl */ `
struct P { V: u32, k: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> outV: array<f32>;
@group(0) @binding(2) var<storage, read_write> outI: array<u32>;
@group(0) @binding(3) var<uniform> p: P;
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
var<workgroup> prev: vec2<u32>; // (bitcast value, index) of the last winner
${BETTER}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = wg.x * p.V;
  for (var r = 0u; r < p.k; r++) {
    workgroupBarrier();
    let pv = bitcast<f32>(prev.x);
    let pi = prev.y;
    var v = -3.4e38;
    var idx = 0xffffffffu;
    for (var j = li; j < p.V; j += 256u) {
      let x0 = x[base + j];
      let after = r == 0u || better(pv, pi, x0, j);
      if (x0 == x0 && after && (idx == 0xffffffffu || better(x0, j, v, idx))) { v = x0; idx = j; }
    }
    ${BEST_TREE}
    if (li == 0u) {
      outV[wg.x * p.k + r] = bv[0];
      outI[wg.x * p.k + r] = bi[0];
      prev = vec2<u32>(bitcast<u32>(bv[0]), bi[0]);
    }
  }
}
`,
  };
}

/**
 * Draws one token per row from its sorted top-k candidates with HF's warper
 * order: temperature → top-k → top-p → min-p, then multinomial with the
 * caller's uniform number u[row] (so a seeded host RNG makes runs repeatable).
 * Tiling: one thread per row (k ≤ 256 sequential steps).
 */
export function sampleKernel(): Kernel {
  return {
    key: "sample",
    wgsl: /* wgsl */ `
struct P { R: u32, k: u32, temperature: f32, topP: f32, minP: f32 }
@group(0) @binding(0) var<storage, read> topV: array<f32>;
@group(0) @binding(1) var<storage, read> topI: array<u32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.x;
  if (row >= p.R) { return; }
  let base = row * p.k;
  var n = 0u; // candidates that are real numbers (a row can hold fewer than k valid entries)
  for (var j = 0u; j < p.k; j++) { if (topI[base + j] != 0xffffffffu) { n = j + 1u; } }
  if (n == 0u) { ids[row] = 0u; return; }
  let z0 = topV[base] / p.temperature;
  var total = 0.0;
  for (var j = 0u; j < n; j++) { total += exp(topV[base + j] / p.temperature - z0); }
  // top-p: drop the tail whose cumulative mass (from the least likely up) is <= 1 - topP; keep >= 1.
  var keep = n;
  if (p.topP < 1.0) {
    var tail = 0.0;
    var j = n;
    loop {
      if (j <= 1u) { break; }
      let pj = exp(topV[base + j - 1u] / p.temperature - z0) / total;
      if (tail + pj > 1.0 - p.topP) { break; }
      tail += pj;
      j--;
    }
    keep = j;
  }
  // min-p: drop candidates below minP × the top probability; keep >= 1.
  if (p.minP > 0.0) {
    var j = 1u;
    loop {
      if (j >= keep) { break; }
      if (exp(topV[base + j] / p.temperature - z0) < p.minP) { break; }
      j++;
    }
    keep = j;
  }
  var kept = 0.0;
  for (var j = 0u; j < keep; j++) { kept += exp(topV[base + j] / p.temperature - z0); }
  let goal = u[row] * kept;
  var acc = 0.0;
  var pick = keep - 1u;
  for (var j = 0u; j < keep; j++) {
    acc += exp(topV[base + j] / p.temperature - z0);
    if (acc > goal) { pick = j; break; }
  }
  ids[row] = topI[base + pick];
}
`,
  };
}
