/**
 * Attention over the KV cache, shared layouts:
 *   q     [B, heads, T, hd]          (after RoPE)
 *   K, V  [B, kvHeads, cap, hd]      (the cache; keys 0..Tkv-1 are valid)
 *   mask  u32 [B, maskStride]        (key padding mask, 1 = attend; used when hasMask)
 *   out   [B, T, heads, hd]          (= [B, T, hidden], ready for o_proj)
 * Query i sits at cache position past + i and sees keys j ≤ past + i (the
 * causal mask's offset when a cache is used). GQA: head h reads kv head
 * h / (heads / kvHeads) straight from the cache, nothing is copied.
 *
 * Masked scores are the sentinel NEG and contribute exactly 0, as HF's
 * additive min-float mask does. A row with no visible key (a left-padding
 * query) gets, like HF's eager softmax over an all-min row, uniform weights:
 * the mean of V over all Tkv keys.
 */
import type { Kernel } from "../executor.js";
import { workgroupReduce } from "./reduce.js";

export const ATTN_PARAMS = "struct P { B: u32, heads: u32, kvHeads: u32, T: u32, Tkv: u32, cap: u32, past: u32, hasMask: u32, maskStride: u32, scale: f32, nSplit: u32, D: u32 }";

const BINDINGS = `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;`;

/** WGSL helpers shared by the attention kernels (need the P struct and the mask binding; ATTN_HELPERS also V). */
export const KEY_VISIBLE = `
const NEG = -3.0e38;
fn keyVisible(b: u32, qpos: u32, key: u32) -> bool {
  if (key >= p.Tkv || key > qpos) { return false; }
  if (p.hasMask != 0u && mask[b * p.maskStride + key] == 0u) { return false; }
  return true;
}`;
export const ATTN_HELPERS = `${KEY_VISIBLE}
// HF's softmax over an all-masked row is uniform over all keys: the mean of V.
fn meanV(kvBase: u32, d: u32) -> f32 {
  var s = 0.0;
  for (var j = 0u; j < p.Tkv; j++) { s += V[kvBase + j * p.D + d]; }
  return s / f32(max(p.Tkv, 1u));
}`;

/**
 * Kernels are compiled per head-size bucket (the workgroup arrays' size) and
 * take the actual head size D at run time, so any even D shares a few pipelines.
 */
export function headDimBucket(D: number): number {
  for (const b of [32, 64, 128, 256, 512]) if (D <= b) return b;
  throw new Error(`head_dim ${D} above 512`);
}

/** Block sizes of the flash kernel for a head size (workgroup memory stays under 18 KiB up to hd 256). */
export function flashBlocks(hd: number): { bq: number; bk: number } {
  return hd <= 128 ? { bq: 16, bk: 16 } : { bq: 8, bk: 8 };
}

/**
 * Flash-attention prefill: online softmax, no T×Tkv matrix.
 *
 * Tiling: a workgroup of BQ·BK threads owns BQ query rows of one (batch, head)
 * (grid: ceil(T/BQ) × heads × B). Q rows are staged once in workgroup memory
 * (pre-scaled); key blocks of BK rows stream through one shared K/V buffer:
 * thread (row, key) computes one score, one thread per row updates the
 * running max/sum and turns scores into probabilities, then V replaces K and
 * thread (row, lane) accumulates dims lane, lane+BK, … of its row's output.
 * Key blocks past the block's last visible key are skipped.
 */
export function flashAttentionKernel(hdMax: number): Kernel {
  const hd = hdMax;
  const { bq, bk } = flashBlocks(hd);
  const dpt = Math.ceil(hd / bk);
  const wg = bq * bk;
  return {
    key: `attn_flash:${hd}`,
    wgsl: /* wgsl */ `
${ATTN_PARAMS}
${BINDINGS}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
const BQ = ${bq}u;
const BK = ${bk}u;
const WG = ${wg}u;
${ATTN_HELPERS}
var<workgroup> Qs: array<f32, ${bq * hd}>;
var<workgroup> KV: array<f32, ${bk * hd}>;
var<workgroup> S: array<f32, ${bq * bk}>;
var<workgroup> rowM: array<f32, ${bq}>;
var<workgroup> rowL: array<f32, ${bq}>;
var<workgroup> alpha: array<f32, ${bq}>;

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let h = wg.y;
  let q0 = wg.x * BQ;
  let kvh = h / (p.heads / p.kvHeads);
  let kvBase = (b * p.kvHeads + kvh) * p.cap * p.D;
  let qBase = (b * p.heads + h) * p.T * p.D;
  for (var e = li; e < BQ * p.D; e += WG) {
    let qq = q0 + e / p.D;
    var v = 0.0;
    if (qq < p.T) { v = q[qBase + qq * p.D + e % p.D] * p.scale; }
    Qs[e] = v;
  }
  if (li < BQ) { rowM[li] = NEG; rowL[li] = 0.0; }
  let qEnd = min(p.T, q0 + BQ);
  let kEnd = min(p.Tkv, p.past + qEnd);
  let qi = li / BK;
  let kj = li % BK;
  let qpos = p.past + q0 + qi;
  let rowOk = q0 + qi < p.T;
  var o: array<f32, ${dpt}>;
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    for (var e = li; e < BK * p.D; e += WG) {
      let key = k0 + e / p.D;
      var v = 0.0;
      if (key < p.Tkv) { v = K[kvBase + key * p.D + e % p.D]; }
      KV[e] = v;
    }
    workgroupBarrier();
    var s = NEG;
    if (rowOk && keyVisible(b, qpos, k0 + kj)) {
      s = 0.0;
      for (var d = 0u; d < p.D; d++) { s += Qs[qi * p.D + d] * KV[kj * p.D + d]; }
    }
    S[li] = s;
    workgroupBarrier();
    if (kj == 0u) {
      let mOld = rowM[qi];
      var mNew = mOld;
      for (var j = 0u; j < BK; j++) { let sv = S[qi * BK + j]; if (sv > NEG) { mNew = max(mNew, sv); } }
      var sum = 0.0;
      for (var j = 0u; j < BK; j++) {
        let sv = S[qi * BK + j];
        var pv = 0.0;
        if (sv > NEG) { pv = exp(sv - mNew); }
        S[qi * BK + j] = pv;
        sum += pv;
      }
      let a = exp(mOld - mNew);
      alpha[qi] = a;
      rowL[qi] = rowL[qi] * a + sum;
      rowM[qi] = mNew;
    }
    for (var e = li; e < BK * p.D; e += WG) {
      let key = k0 + e / p.D;
      var v = 0.0;
      if (key < p.Tkv) { v = V[kvBase + key * p.D + e % p.D]; }
      // K is no longer read after the barrier above; every thread wrote its score first.
      KV[e] = v;
    }
    workgroupBarrier();
    let a = alpha[qi];
    for (var c = 0u; c < ${dpt}u; c++) {
      let d = kj + c * BK;
      if (d < p.D) {
        var acc = o[c] * a;
        for (var j = 0u; j < BK; j++) { acc += S[qi * BK + j] * KV[j * p.D + d]; }
        o[c] = acc;
      }
    }
    workgroupBarrier();
  }
  if (!rowOk) { return; }
  let l = rowL[qi];
  let outBase = ((b * p.T + q0 + qi) * p.heads + h) * p.D;
  for (var c = 0u; c < ${dpt}u; c++) {
    let d = kj + c * BK;
    if (d < p.D) {
      if (l > 0.0) { out[outBase + d] = o[c] / l; } else { out[outBase + d] = meanV(kvBase, d); }
    }
  }
}
`,
  };
}

/**
 * Post-softmax attention weights [B, heads, T, Tkv], materialized only when
 * attentions (or the `pattern` hook) are asked for.
 *
 * Tiling: one 256-thread workgroup per (query, head, batch); threads stride
 * over keys writing raw scores into the output row, then the row is reduced
 * (max, then sum) in workgroup memory and normalized in place. Each thread
 * rereads only the entries it wrote, so no cross-thread global hazard.
 */
export function attentionWeightsKernel(): Kernel {
  return {
    key: "attn_weights",
    wgsl: /* wgsl */ `
${ATTN_PARAMS}
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> P_out: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
${KEY_VISIBLE}
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let qi = wg.x;
  let h = wg.y;
  let b = wg.z;
  let kvh = h / (p.heads / p.kvHeads);
  let kvBase = (b * p.kvHeads + kvh) * p.cap * p.D;
  let qBase = ((b * p.heads + h) * p.T + qi) * p.D;
  let rowBase = ((b * p.heads + h) * p.T + qi) * p.Tkv;
  let qpos = p.past + qi;
  var mx = NEG;
  for (var j = li; j < p.Tkv; j += 256u) {
    var s = NEG;
    if (keyVisible(b, qpos, j)) {
      s = 0.0;
      for (var d = 0u; d < p.D; d++) { s += (q[qBase + d] * p.scale) * K[kvBase + j * p.D + d]; }
      mx = max(mx, s);
    }
    P_out[rowBase + j] = s;
  }
  ${workgroupReduce("mx", 256, "max")}
  let m = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var j = li; j < p.Tkv; j += 256u) {
    let s = P_out[rowBase + j];
    var pv = 0.0;
    if (s > NEG) { pv = exp(s - m); }
    P_out[rowBase + j] = pv;
    sum += pv;
  }
  ${workgroupReduce("sum", 256, "sum")}
  let l = red[0];
  for (var j = li; j < p.Tkv; j += 256u) {
    if (l > 0.0) { P_out[rowBase + j] = P_out[rowBase + j] / l; } else { P_out[rowBase + j] = 1.0 / f32(p.Tkv); }
  }
}
`,
  };
}
