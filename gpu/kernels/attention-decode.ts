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
 * Merges split-K partials: out = Σ_s O_s·exp(m_s − M) / Σ_s l_s·exp(m_s − M), M = max m_s.
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
const NEG = -3.0e38;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wg.x % p.heads;
  let qi = wg.x / p.heads;
  let b = wg.y;
  let base = ((b * p.heads + h) * p.T + qi) * p.nSplit;
  var M = NEG;
  for (var i = 0u; i < p.nSplit; i++) {
    if (partML[(base + i) * 2u + 1u] > 0.0) { M = max(M, partML[(base + i) * 2u]); }
  }
  var L = 0.0;
  for (var i = 0u; i < p.nSplit; i++) {
    let l = partML[(base + i) * 2u + 1u];
    if (l > 0.0) { L += l * exp(partML[(base + i) * 2u] - M); }
  }
  let kvh = h / (p.heads / p.kvHeads);
  let kvBase = (b * p.kvHeads + kvh) * p.cap * p.D;
  for (var d = li; d < p.D; d += 64u) {
    var o = 0.0;
    for (var i = 0u; i < p.nSplit; i++) {
      let l = partML[(base + i) * 2u + 1u];
      if (l > 0.0) { o += partO[(base + i) * p.D + d] * exp(partML[(base + i) * 2u] - M); }
    }
    var v = 0.0;
    if (L > 0.0) { v = o / L; } else {
      for (var j = 0u; j < p.Tkv; j++) { v += V[kvBase + j * p.D + d]; }
      v = v / f32(max(p.Tkv, 1u));
    }
    out[((b * p.T + qi) * p.heads + h) * p.D + d] = v;
  }
}
`,
  };
}
