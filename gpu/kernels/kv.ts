/**
 * KV-cache copies and the "attend with given weights" product.
 */
import type { Kernel } from "../executor.js";
import { flatKernel } from "./elementwise.js";

/**
 * Copies a [B, heads, T, D] block between two cache layouts: element (b, h, t, d)
 * of src (capS rows per head, starting at row offS) → dst (capD rows per head,
 * starting at row offD). Appending: src dense (capS = T, offS = 0), offD = P.
 * Growing: offS = offD = 0, T = P. One thread per element.
 */
export function kvCopyKernel(): Kernel {
  return flatKernel(
    "kv_copy",
    "heads: u32, T: u32, D: u32, capS: u32, offS: u32, capD: u32, offD: u32",
    ["var<storage, read> src: array<f32>", "var<storage, read_write> dst: array<f32>"],
    /* wgsl */ `let d = i % p.D;
  let t = (i / p.D) % p.T;
  let bh = i / (p.D * p.T);
  dst[(bh * p.capD + p.offD + t) * p.D + d] = src[(bh * p.capS + p.offS + t) * p.D + d];`,
  );
}

/**
 * out [B, T, heads*D] = weights [B, heads, T, S] · V [B, kvHeads, cap, D] per head (GQA by index).
 * Tiling: one 64-thread workgroup per (query row, head, batch); each thread
 * owns dims lane, lane+64, … and walks the S weights of its row.
 */
export function attendWithKernel(): Kernel {
  return {
    key: "attend_with",
    wgsl: /* wgsl */ `
struct P { heads: u32, kvHeads: u32, T: u32, S: u32, D: u32, cap: u32 }
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read> V: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let qi = wg.x;
  let h = wg.y;
  let b = wg.z;
  let kvh = h / (p.heads / p.kvHeads);
  let vBase = (b * p.kvHeads + kvh) * p.cap * p.D;
  let wBase = ((b * p.heads + h) * p.T + qi) * p.S;
  for (var d = li; d < p.D; d += 64u) {
    var acc = 0.0;
    for (var j = 0u; j < p.S; j++) { acc += w[wBase + j] * V[vBase + j * p.D + d]; }
    out[((b * p.T + qi) * p.heads + h) * p.D + d] = acc;
  }
}
`,
  };
}
