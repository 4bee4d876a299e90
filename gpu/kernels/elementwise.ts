/**
 * Row-wise and element-wise kernels: RMSNorm, residual add, SwiGLU, embedding
 * gather, RoPE (fused with the [B,T,heads,hd] → [B,heads,T,hd] transpose and
 * the KV-cache write), and a 4-D permute.
 *
 * Element-wise kernels use 256 threads per workgroup over a flat index; large
 * tensors spill into the y dimension of the grid (index = (wg.y * nx + wg.x) * 256 + lid).
 */
import type { Kernel } from "../executor.js";
import { workgroupReduce } from "./reduce.js";
import { type WeightFormat, enables, weightDecl } from "./weights.js";

/** WGSL for the flat element index of 1-D launches (see `flatGrid`). */
export const FLAT = `@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32`;
export const FLAT_INDEX = `let i = (wg.y * nwg.x + wg.x) * 256u + li;`;

/** Workgroup counts for `n` elements at 256 per workgroup, 2-D when above the per-dimension limit. */
export function flatGrid(n: number, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(n / 256);
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

/**
 * The template of every one-thread-per-element kernel: `struct P { n: u32, … }`
 * (`params` are the fields after n), the storage `bindings` numbered from 0 in
 * order (a string is a `var<storage, …>` declaration; a function gets its
 * binding number and returns whole declaration lines, e.g. weightDecl), the
 * uniform after them, and `body`, which runs with the flat index `i` already
 * checked against p.n (threads past the end return).
 */
export function flatKernel(
  key: string,
  params: string,
  bindings: readonly (string | ((binding: number) => string))[],
  body: string,
  prelude = "",
): Kernel {
  const decls = bindings.map((b, k) => (typeof b === "string" ? `@group(0) @binding(${k}) ${b};\n` : b(k))).join("");
  return {
    key,
    wgsl: /* wgsl */ `${prelude}
struct P { n: u32${params ? `, ${params}` : ""} }
${decls}@group(0) @binding(${bindings.length}) var<uniform> p: P;
@compute @workgroup_size(256)
fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  ${body}
}
`,
  };
}

/**
 * The entry of a one-workgroup-per-row kernel over rows of p.H elements (RMSNorm
 * and its backward): 256 threads, the reduction array `red`, and `row`/`base`
 * (the row's first element) from a 1-D or 2-D grid.
 */
export const ROW_MAIN = `var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * nwg.x + wg.x;
  let base = row * p.H;`;

/**
 * RMSNorm over rows of H: y = x · rsqrt(mean(x²) + eps) · w (HF's LlamaRMSNorm, in f32).
 * Tiling: one 256-thread workgroup per row; each thread sums squares of a
 * strided slice, a workgroup-memory tree reduces them, then every thread
 * scales its slice.
 */
export function rmsNormKernel(wf: WeightFormat): Kernel {
  return {
    key: `rmsnorm:${wf}`,
    wgsl: /* wgsl */ `${enables(wf)}
struct P { H: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
${weightDecl("w", 1, wf, false)}
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
${ROW_MAIN}
  var s = 0.0;
  for (var h = li; h < p.H; h += 256u) { let v = x[base + h]; s += v * v; }
  ${workgroupReduce("s", 256, "sum")}
  let inv = inverseSqrt(red[0] / f32(p.H) + p.eps);
  for (var h = li; h < p.H; h += 256u) { y[base + h] = w_at(h) * (x[base + h] * inv); }
}
`,
  };
}

/** out = a + b (same shape); the residual connections. One thread per element. */
export function addKernel(): Kernel {
  return flatKernel(
    "add",
    "",
    ["var<storage, read> a: array<f32>", "var<storage, read> b: array<f32>", "var<storage, read_write> y: array<f32>"],
    "y[i] = a[i] + b[i];",
  );
}

/** out = x · factor. One thread per element. */
export function scaleKernel(): Kernel {
  return flatKernel(
    "scale",
    "factor: f32",
    ["var<storage, read> x: array<f32>", "var<storage, read_write> y: array<f32>"],
    "y[i] = x[i] * p.factor;",
  );
}

/** out = silu(gate) · up (the SwiGLU MLP's activation, HF's act_fn(gate_proj(x)) * up_proj(x)). One thread per element. */
export function siluMulKernel(): Kernel {
  return flatKernel(
    "silu_mul",
    "",
    ["var<storage, read> g: array<f32>", "var<storage, read> u: array<f32>", "var<storage, read_write> y: array<f32>"],
    "let v = g[i]; y[i] = v / (1.0 + exp(-v)) * u[i];",
  );
}

/** out[r, :] = table[ids[r], :] widened to f32. One thread per output element. */
export function embeddingKernel(wf: WeightFormat): Kernel {
  return flatKernel(
    `embedding:${wf}`,
    "H: u32",
    ["var<storage, read> ids: array<u32>", (b) => weightDecl("table", b, wf, false), "var<storage, read_write> y: array<f32>"],
    "let r = i / p.H; y[i] = table_at(ids[r] * p.H + (i - r * p.H));",
    enables(wf),
  );
}

/**
 * RoPE + layout change: x [B, T, heads, hd] (a projection's output) → out
 * [B, heads, cap, hd] at sequence offset `off` (q: cap = T, off = 0; k/v: the
 * KV cache, off = past length). With `rotate`, applies HF's
 * x·cos + rotate_half(x)·sin with cos/sin [B, T, hd/2] (csB = 0 broadcasts over
 * the batch); without it, a plain layout copy (values).
 * One thread per output element.
 */
export function ropeKernel(rotate: boolean): Kernel {
  const io = ["var<storage, read> x: array<f32>", "var<storage, read_write> y: array<f32>"];
  const tables = ["var<storage, read> cosT: array<f32>", "var<storage, read> sinT: array<f32>"];
  return flatKernel(
    `rope:${rotate ? "rot" : "copy"}`,
    "T: u32, heads: u32, hd: u32, cap: u32, off: u32, csB: u32",
    rotate ? [...io, ...tables] : io,
    /* wgsl */ `// i indexes x as [b, t, h, d]
  let d = i % p.hd;
  let h = (i / p.hd) % p.heads;
  let t = (i / (p.hd * p.heads)) % p.T;
  let b = i / (p.hd * p.heads * p.T);
  ${
    rotate
      ? `let half = p.hd / 2u;
  var partner: f32;
  if (d < half) { partner = -x[i + half]; } else { partner = x[i - half]; }
  let cs = b * p.csB + t * half + (d % half); // tables are [B, T, hd/2]: both halves share a frequency
  let v = x[i] * cosT[cs] + partner * sinT[cs];`
      : "let v = x[i];"
  }
  y[((b * p.heads + h) * p.cap + p.off + t) * p.hd + d] = v;`,
  );
}

/** out = x.permute(0, 2, 1, 3): [A, B, C, D] → [A, C, B, D]. One thread per element. */
export function permute0213Kernel(): Kernel {
  return flatKernel(
    "permute0213",
    "B: u32, C: u32, D: u32",
    ["var<storage, read> x: array<f32>", "var<storage, read_write> y: array<f32>"],
    /* wgsl */ `let d = i % p.D;
  let c = (i / p.D) % p.C;
  let b = (i / (p.D * p.C)) % p.B;
  let a = i / (p.D * p.C * p.B);
  y[((a * p.C + c) * p.B + b) * p.D + d] = x[i];`,
  );
}

/** Copies rows [rowStart, rowStart+rows) of a [R, W] f32 matrix (e.g. the last position's hidden state before lm_head). */
export function sliceRowsKernel(): Kernel {
  return flatKernel(
    "slice_rows",
    "W: u32, rowsPerBatch: u32, keep: u32",
    ["var<storage, read> x: array<f32>", "var<storage, read_write> y: array<f32>"],
    /* wgsl */ `// y is [B, keep, W]: the last \`keep\` rows of each batch's [rowsPerBatch, W] block
  let w = i % p.W;
  let r = (i / p.W) % p.keep;
  let b = i / (p.W * p.keep);
  y[i] = x[(b * p.rowsPerBatch + p.rowsPerBatch - p.keep + r) * p.W + w];`,
  );
}
