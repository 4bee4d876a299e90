/**
 * Products with a weight kept in its ggml blocks (quant-formats.ts): every
 * kernel reads the blocks and dequantizes four weights at a time in
 * registers with the format's `dq4`, accumulating in f32. W is [N, K] (a
 * Linear's [out, in]); K is a multiple of the block (32 or 256), so it is
 * always a multiple of 4 and x rows load as vec4.
 *
 * The forward products run matmul.ts's gemvKernel (decode, M ≤ GEMV_MAX_M)
 * and tiledMatmulKernel (prefill), which read these formats too; so the
 * GEMV's fusions (RMSNorm in, q/k/v and gate/up as one product, SwiGLU and
 * residual epilogues) serve quantized models as well.
 *   quantMatmulTKernel  y[M,K] = g·W  (the input gradient of a frozen quantized Linear)
 *   quantGatherKernel   rows of W (an embedding table) → f32
 */
import { memoKernel, type Kernel } from "../executor.js";
import type { QuantType } from "../../lib/tensor/quantized.js";
import { quantDecl } from "./quant-formats.js";
import { FLAT, FLAT_INDEX } from "./elementwise.js";

/**
 * Backward: y[M,K] = g[M,N]·W[N,K], the reduction over N (p.R = N), W's rows.
 * The tiling of tiledMatmulKernel (matmul.ts): a 16×16 workgroup computes a
 * 64×64 output tile, each thread a 4×4 block, the reduction advancing 16 at a
 * time through two tiles staged in workgroup memory as [r][output/4]. Each
 * thread loads 4 consecutive n of one g row (N may be any size) and 4
 * consecutive k of one of 16 W rows, dequantized.
 */
function quantMatmulT(type: QuantType): Kernel {
  const wgsl = /* wgsl */ `
struct P { M: u32, R: u32, K: u32, rowBytes: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
${quantDecl(type, 1)}
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: P;

var<workgroup> As: array<array<vec4<f32>, 16>, 16>; // [r][row/4]: g tile, transposed
var<workgroup> Bs: array<array<vec4<f32>, 16>, 16>; // [r][col/4]: dequantized weight tile

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let c0 = wg.x * 64u;
  var acc: array<vec4<f32>, 4>;
  for (var r0 = 0u; r0 < p.R; r0 += 16u) {
    let lr = li >> 2u;
    let lk = (li & 3u) * 4u;
    let m = m0 + lr;
    var a = vec4<f32>(0.0);
    if (m < p.M) {
      for (var e = 0u; e < 4u; e++) { if (r0 + lk + e < p.R) { a[e] = x[m * p.R + r0 + lk + e]; } }
    }
    for (var e = 0u; e < 4u; e++) { As[lk + e][lr >> 2u][lr & 3u] = a[e]; }
    let wn = r0 + (li >> 4u);
    let wk = c0 + (li & 15u) * 4u;
    var b = vec4<f32>(0.0);
    if (wn < p.R && wk < p.K) { b = W_dq4(wn * p.rowBytes, wk); }
    Bs[li >> 4u][li & 15u] = b;
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let av = As[kk][lid.y];
      let bv = Bs[kk][lid.x];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let c = c0 + lid.x * 4u + j;
      if (c < p.K) { y[m * p.K + c] = acc[i][j]; }
    }
  }
}
`;
  return { key: `qmatmulT:${type}`, wgsl };
}

/** Embedding gather: y[i, h..h+3] = W[ids[i], h..h+3], one thread per 4 outputs (H is a multiple of 4). */
function quantGather(type: QuantType): Kernel {
  return {
    key: `qgather:${type}`,
    wgsl: /* wgsl */ `struct P { n: u32, H4: u32, rowBytes: u32 } // n = rows · H/4
@group(0) @binding(0) var<storage, read> ids: array<u32>;
${quantDecl(type, 1)}
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(256)
fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  let r = i / p.H4;
  y[i] = W_dq4(ids[r] * p.rowBytes, (i - r * p.H4) * 4u);
}
`,
  };
}

export const quantMatmulTKernel = memoKernel(quantMatmulT);
export const quantGatherKernel = memoKernel(quantGather);
