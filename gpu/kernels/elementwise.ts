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
 * WGSL statements that set `let inv = 1 / sqrt(mean(x²) + eps)` over the row
 * of H elements at `base` (element i read by `load(i)`): each of 256 threads
 * sums the squares of a strided slice, the workgroup tree in `red` adds them.
 * Shared by RMSNorm and the GEMV that folds RMSNorm into its input
 * (kernels/matmul.ts), so both compute the same scale bit for bit. Uniform
 * control flow; needs `li` and `var<workgroup> red: array<f32, 256>`.
 */
export function rmsInverse(load: (i: string) => string, base: string, H: string, eps: string): string {
  return `var ss = 0.0;
  for (var h = li; h < ${H}; h += 256u) { let v = ${load(`${base} + h`)}; ss += v * v; }
  ${workgroupReduce("ss", 256, "sum")}
  let inv = inverseSqrt(red[0] / f32(${H}) + ${eps});`;
}

/** RMSNorm's output element (or vec4 of them): weight · (x · inv), HF's order of the two products. */
export function rmsApply(w: string, x: string, inv: string): string {
  return `(${w} * (${x} * ${inv}))`;
}

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
  ${rmsInverse((i) => `x[${i}]`, "base", "p.H", "p.eps")}
  for (var h = li; h < p.H; h += 256u) { y[base + h] = ${rmsApply("w_at(h)", "x[base + h]", "inv")}; }
}
`,
  };
}

/**
 * Each row's 1/rms (RMSNorm's reduction alone, one float per row): what a GEMV
 * with RMSNorm folded into its input reads. Same grid and reduction as
 * rmsNormKernel, so the folded product equals RMSNorm then GEMV bit for bit.
 */
export function rmsInverseKernel(): Kernel {
  return {
    key: "rms_inverse",
    wgsl: /* wgsl */ `struct P { H: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
${ROW_MAIN}
  ${rmsInverse((i) => `x[${i}]`, "base", "p.H", "p.eps")}
  if (li == 0u) { y[row] = inv; }
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

/** SwiGLU's activation, silu(g) · u (HF's act_fn(gate_proj(x)) * up_proj(x)); also the gate/up GEMV's epilogue. */
export const SILU_MUL_FN = /* wgsl */ `fn silu_mul(g: f32, u: f32) -> f32 { return g / (1.0 + exp(-g)) * u; }`;

/** out = silu(gate) · up. One thread per element. */
export function siluMulKernel(): Kernel {
  return flatKernel(
    "silu_mul",
    "",
    ["var<storage, read> g: array<f32>", "var<storage, read> u: array<f32>", "var<storage, read_write> y: array<f32>"],
    "y[i] = silu_mul(g[i], u[i]);",
    SILU_MUL_FN,
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

/** Most head-split jobs one rope dispatch takes (q, k → cache, v → cache). */
export const ROPE_MAX_JOBS = 3;

/**
 * RoPE + layout change for up to 3 tensors in one dispatch (splitHeads, and
 * its fusion with the KV-cache append: q, k and v of a layer). Job j reads
 * x_j [B, T, heads_j, D] (a projection's output) and writes y_j [B, heads_j,
 * cap_j, D] at sequence offset off_j (a fresh tensor: cap = T, off = 0; the
 * KV cache: its capacity, off = past length). Job j rotates when
 * `rotations[j]` is "r" (HF's x·cos + rotate_half(x)·sin, with cos/sin
 * [B, T, D/2] at the start of `cs` and sin at p.sinOff; csB = 0 broadcasts
 * over the batch), else copies (values). The jobs' elements lie end to end
 * (job j from p.s_j); one thread per element.
 */
export function ropeKernel(rotations: string): Kernel {
  const jobs = [...rotations].map((r, j) => ({ j, rotate: r === "r" }));
  const anyRotate = jobs.some((job) => job.rotate);
  const bindings = [
    ...jobs.map(({ j }) => `var<storage, read> x${j}: array<f32>`),
    ...jobs.map(({ j }) => `var<storage, read_write> y${j}: array<f32>`),
    ...(anyRotate ? ["var<storage, read> cs: array<f32>"] : []),
  ];
  const fields = jobs.map(({ j }) => `heads${j}: u32, cap${j}: u32, off${j}: u32, s${j}: u32`).join(", ");
  // Element e of job j, as [b, t, h, d] of x_j.
  const element = (j: number, rotate: boolean) => /* wgsl */ `let d = e % p.D;
    let h = (e / p.D) % p.heads${j};
    let t = (e / (p.D * p.heads${j})) % p.T;
    let b = e / (p.D * p.heads${j} * p.T);
    ${
      rotate
        ? `let half = p.D / 2u;
    var partner: f32;
    if (d < half) { partner = -x${j}[e + half]; } else { partner = x${j}[e - half]; }
    let c = b * p.csB + t * half + (d % half); // tables are [B, T, D/2]: both halves share a frequency
    let v = x${j}[e] * cs[c] + partner * cs[p.sinOff + c];`
        : `let v = x${j}[e];`
    }
    y${j}[((b * p.heads${j} + h) * p.cap${j} + p.off${j} + t) * p.D + d] = v;`;
  const body = jobs
    .map(({ j, rotate }) => `if (i >= p.s${j}${j + 1 < jobs.length ? ` && i < p.s${j + 1}` : ""}) {
    let e = i - p.s${j};
    ${element(j, rotate)}
  }`)
    .join(" else ");
  return flatKernel(`rope:${rotations}`, `T: u32, D: u32, csB: u32, sinOff: u32, ${fields}`, bindings, body);
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
