/**
 * Decode attention (few query rows over a long KV cache), flash-decoding style.
 * Layouts and masking rules: see attention.ts.
 *
 * Split-K: the visible keys are cut into chunks of DECODE_CHUNK; a workgroup
 * handles one (chunk, query row, head, batch). With one chunk it normalizes
 * and writes the output directly; with several, each writes its unnormalized
 * partial output with its running max and sum, and `decodeCombineKernel`
 * merges them (rescaling each partial by exp(m_s − M)).
 */
import type { Kernel } from "../executor.js";
import { workgroupReduce } from "./reduce.js";
import { ATTN_HELPERS, ATTN_PARAMS } from "./attention.js";

/** Keys per split (also the workgroup-memory score buffer). */
export const DECODE_CHUNK = 256;

const BINDINGS = `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;`;

/**
 * Tiling: 64 threads per workgroup (grid: splits × (T·heads) × B). The
 * query row is staged in workgroup memory (pre-scaled); each thread scores
 * keys lane, lane+64, … of the chunk (a dot product over hd, vec4 when hd % 4
 * == 0) into workgroup memory; max and sum are tree-reduced; then each thread
 * owns dims lane, lane+64, … and sums p_j·V[j, d] over the chunk (coalesced V rows).
 */
export function decodeAttentionKernel(hdMax: number, vec4: boolean, split: boolean): Kernel {
  const hd = hdMax;
  const outDecl = split
    ? `@group(0) @binding(4) var<storage, read_write> partO: array<f32>;
@group(0) @binding(5) var<storage, read_write> partML: array<f32>;
@group(0) @binding(6) var<uniform> p: P;`
    : `@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: P;`;
  const dot =
    vec4
      ? `for (var d = 0u; d < p.D; d += 4u) {
        s += dot(vec4<f32>(qs[d], qs[d + 1u], qs[d + 2u], qs[d + 3u]),
                 vec4<f32>(K[kb + d], K[kb + d + 1u], K[kb + d + 2u], K[kb + d + 3u]));
      }`
      : `for (var d = 0u; d < p.D; d++) { s += qs[d] * K[kb + d]; }`;
  const write = split
    ? `let slot = ((b * p.heads + h) * p.T + qi) * nSplit + wg.x;
    partO[slot * p.D + d] = o;
    if (d == 0u) { partML[slot * 2u] = m; partML[slot * 2u + 1u] = l; }`
    : `let outIdx = ((b * p.T + qi) * p.heads + h) * p.D + d;
    if (l > 0.0) { out[outIdx] = o / l; } else { out[outIdx] = meanV(kvBase, d); }`;
  return {
    key: `attn_decode:${hd}:${vec4 ? "v4" : "s"}:${split ? "split" : "direct"}`,
    wgsl: /* wgsl */ `
${ATTN_PARAMS}
${BINDINGS}
${outDecl}
const CHUNK = ${DECODE_CHUNK}u;
${ATTN_HELPERS}
var<workgroup> qs: array<f32, ${hd}>;
var<workgroup> sc: array<f32, ${DECODE_CHUNK}>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let nSplit = nwg.x;
  let h = wg.y % p.heads;
  let qi = wg.y / p.heads;
  let b = wg.z;
  let kvh = h / (p.heads / p.kvHeads);
  let kvBase = (b * p.kvHeads + kvh) * p.cap * p.D;
  let qpos = p.past + qi;
  let kStart = wg.x * CHUNK;
  let kEnd = min(min(p.Tkv, qpos + 1u), kStart + CHUNK);
  let qBase = ((b * p.heads + h) * p.T + qi) * p.D;
  for (var d = li; d < p.D; d += 64u) { qs[d] = q[qBase + d] * p.scale; }
  workgroupBarrier();
  var mx = NEG;
  for (var j = kStart + li; j < kEnd; j += 64u) {
    var s = NEG;
    if (keyVisible(b, qpos, j)) {
      s = 0.0;
      let kb = kvBase + j * p.D;
      ${dot}
      mx = max(mx, s);
    }
    sc[j - kStart] = s;
  }
  ${workgroupReduce("mx", 64, "max")}
  let m = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var j = kStart + li; j < kEnd; j += 64u) {
    let s = sc[j - kStart];
    var pv = 0.0;
    if (s > NEG) { pv = exp(s - m); }
    sc[j - kStart] = pv;
    sum += pv;
  }
  ${workgroupReduce("sum", 64, "sum")}
  let l = red[0];
  for (var d = li; d < p.D; d += 64u) {
    var o = 0.0;
    for (var j = kStart; j < kEnd; j++) { o += sc[j - kStart] * V[kvBase + j * p.D + d]; }
    ${write}
  }
}
`,
  };
}

/**
 * The split-K merge, shared by decodeCombineKernel and the o_proj GEMV that
 * folds the merge into its input read (gemvKernel's `merge`). Needs the
 * bindings partML (each split's running max m_s and sum l_s) and V.
 *   out = Σ_s O_s·w_s / L,  w_s = exp(m_s − M) (0 for a split that saw no key),  M = max m_s,  L = Σ_s l_s·w_s
 */
export const SPLIT_MERGE_FNS = /* wgsl */ `
fn splitMax(base: u32, nSplit: u32) -> f32 {
  var M = -3.0e38;
  for (var i = 0u; i < nSplit; i++) {
    if (partML[(base + i) * 2u + 1u] > 0.0) { M = max(M, partML[(base + i) * 2u]); }
  }
  return M;
}
fn splitWeight(slot: u32, M: f32) -> f32 {
  if (partML[slot * 2u + 1u] > 0.0) { return exp(partML[slot * 2u] - M); }
  return 0.0;
}
fn splitSum(base: u32, nSplit: u32, M: f32) -> f32 {
  var L = 0.0;
  for (var i = 0u; i < nSplit; i++) { L += partML[(base + i) * 2u + 1u] * splitWeight(base + i, M); }
  return L;
}
// No visible key at all (L = 0): HF's softmax over an all-masked row is uniform, so the mean of V.
fn meanValue(kvBase: u32, D: u32, Tkv: u32, d: u32) -> f32 {
  var v = 0.0;
  for (var j = 0u; j < Tkv; j++) { v += V[kvBase + j * D + d]; }
  return v / f32(max(Tkv, 1u));
}`;

/**
 * Merges split-K partials (SPLIT_MERGE_FNS) into the attention output.
 * Tiling: 64 threads per (query row · head, batch); each owns dims lane, lane+64, …
 */
export function decodeCombineKernel(): Kernel {
  return {
    key: "attn_combine",
    wgsl: /* wgsl */ `
${ATTN_PARAMS}
@group(0) @binding(0) var<storage, read> partO: array<f32>;
@group(0) @binding(1) var<storage, read> partML: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
${SPLIT_MERGE_FNS}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wg.x % p.heads;
  let qi = wg.x / p.heads;
  let b = wg.y;
  let base = ((b * p.heads + h) * p.T + qi) * p.nSplit;
  let M = splitMax(base, p.nSplit);
  let L = splitSum(base, p.nSplit, M);
  let kvh = h / (p.heads / p.kvHeads);
  let kvBase = (b * p.kvHeads + kvh) * p.cap * p.D;
  for (var d = li; d < p.D; d += 64u) {
    var o = 0.0;
    for (var i = 0u; i < p.nSplit; i++) { o += partO[(base + i) * p.D + d] * splitWeight(base + i, M); }
    var v: f32;
    if (L > 0.0) { v = o / L; } else { v = meanValue(kvBase, p.D, p.Tkv, d); }
    out[((b * p.T + qi) * p.heads + h) * p.D + d] = v;
  }
}
`,
  };
}
