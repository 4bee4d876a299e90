/**
 * Linear layers: y[M,N] = x[M,K] · W[N,K]ᵀ (+ b[N]), W in any weight format
 * (f32, f16 native/packed, bf16), x and y float32, accumulation float32.
 */
import type { Kernel } from "../executor.js";
import { SILU_MUL_FN, rmsApply } from "./elementwise.js";
import { SPLIT_MERGE_FNS } from "./attention-decode.js";
import { type WeightFormat, enables, weightDecl } from "./weights.js";
import { QUANT_LAYOUT, type QuantType, isQuantType } from "../../lib/tensor/quantized.js";
import { quantDecl } from "./quant-formats.js";

/** Largest M the GEMV kernel handles (decode: one row per sequence in the batch). */
export const GEMV_MAX_M = 8;
/** A merging GEMV keeps every (row, head, split)'s weight in workgroup memory: at most this many (8 KiB). */
export const GEMV_MERGE_MAX_WEIGHTS = 2048;
/** … and every (row, head)'s softmax sum. */
export const GEMV_MERGE_MAX_SUMS = 512;

/**
 * Tiled matmul for prefill (M > GEMV_MAX_M).
 *
 * Tiling: a 16×16 workgroup computes a 64×64 output tile; each thread owns a
 * 4×4 block (rows ty*4.., cols tx*4..). K advances in steps of 16: the x tile
 * [64 rows × 16 k] and the W tile [64 rows × 16 k] are staged in workgroup
 * memory transposed to [k][row] (so the inner loop reads two vec4s per k and
 * does 16 FMAs); each thread loads 4 consecutive k of one row, as one vec4
 * when K % 4 == 0 (`vec4`) and element by element with bounds checks otherwise.
 * W dense, or in ggml blocks dequantized four weights at a time as the tile
 * is loaded (vec4 only: K is a multiple of the block).
 */
export function tiledMatmulKernel(wf: LinearWeight, vec4: boolean, bias: WeightFormat | undefined): Kernel {
  if (isQuantType(wf) && !vec4) throw new Error("tiledMatmulKernel: quantized weights are read as vec4");
  const key = `matmul_tiled:${wf}:${vec4 ? "v4" : "s"}:${bias ?? "nobias"}`;
  const wRead = isQuantType(wf)
    ? `W_dq4(n * ${rowBytesWgsl(wf)}, k)`
    : "W_at4((n * p.K + k) >> 2u)";
  const wgsl = /* wgsl */ `${enables(isQuantType(wf) ? "f32" : wf, bias ?? "f32")}
struct P { M: u32, N: u32, K: u32, ldo: u32 }
@group(0) @binding(0) var<storage, read> x: array<${vec4 ? "vec4<f32>" : "f32"}>;
${isQuantType(wf) ? quantDecl(wf, 1) : weightDecl("W", 1, wf, vec4)}
${bias ? weightDecl("B", 2, bias, false) : ""}
@group(0) @binding(${bias ? 3 : 2}) var<storage, read_write> y: array<f32>;
@group(0) @binding(${bias ? 4 : 3}) var<uniform> p: P;

var<workgroup> As: array<array<vec4<f32>, 16>, 16>; // [k][row/4]: x tile, transposed
var<workgroup> Bs: array<array<vec4<f32>, 16>, 16>; // [k][col/4]: W tile, transposed

fn loadX(m: u32, k: u32) -> vec4<f32> {
  if (m >= p.M) { return vec4<f32>(0.0); }
  ${
    vec4
      ? "if (k >= p.K) { return vec4<f32>(0.0); } return x[(m * p.K + k) >> 2u];"
      : `var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) { if (k + e < p.K) { v[e] = x[m * p.K + k + e]; } }
  return v;`
  }
}

fn loadW(n: u32, k: u32) -> vec4<f32> {
  if (n >= p.N) { return vec4<f32>(0.0); }
  ${
    vec4
      ? `if (k >= p.K) { return vec4<f32>(0.0); } return ${wRead};`
      : `var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) { if (k + e < p.K) { v[e] = W_at(n * p.K + k + e); } }
  return v;`
  }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let lr = li >> 2u;        // row of the tile this thread loads (0..63)
  let lk = (li & 3u) * 4u;  // first of its 4 k (0, 4, 8, 12)
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {
    let a = loadX(m0 + lr, k0 + lk);
    let b = loadW(n0 + lr, k0 + lk);
    for (var e = 0u; e < 4u; e++) {
      As[lk + e][lr >> 2u][lr & 3u] = a[e];
      Bs[lk + e][lr >> 2u][lr & 3u] = b[e];
    }
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
      let n = n0 + lid.x * 4u + j;
      if (n < p.N) { y[m * p.ldo + n] = acc[i][j]${bias ? " + B_at(n)" : ""}; }
    }
  }
}
`;
  return { key, wgsl };
}

/** The merging GEMV's extra uniforms: attention's shape (rows of x are (b, qi) = divmod(row, T)). */
const MERGE_FIELDS = ", heads: u32, kvHeads: u32, T: u32, Tkv: u32, cap: u32, D: u32, nSplit: u32";

/** x for a merging GEMV (x binds the partials [B, heads, T, nSplit, D] as vec4s). */
const MERGE_READ = /* wgsl */ `${SPLIT_MERGE_FNS}
var<workgroup> splitW: array<f32, ${GEMV_MERGE_MAX_WEIGHTS}>;
var<workgroup> sumL: array<f32, ${GEMV_MERGE_MAX_SUMS}>;
fn partBase(m: u32, h: u32) -> u32 {
  let row = p.m0 + m;
  return (((row / p.T) * p.heads + h) * p.T + row % p.T) * p.nSplit;
}
fn mergeWeights(li: u32) {
  for (var i = li; i < p.M * p.heads; i += 256u) {
    let base = partBase(i / p.heads, i % p.heads);
    let M = splitMax(base, p.nSplit);
    for (var s = 0u; s < p.nSplit; s++) { splitW[i * p.nSplit + s] = splitWeight(base + s, M); }
    sumL[i] = splitSum(base, p.nSplit, M);
  }
  workgroupBarrier();
}
fn mergedX4(m: u32, j: u32) -> vec4<f32> {
  let h = (j * 4u) / p.D;
  let d = (j * 4u) % p.D;
  let base = partBase(m, h);
  let wi = (m * p.heads + h) * p.nSplit;
  var o = vec4<f32>(0.0);
  for (var s = 0u; s < p.nSplit; s++) { o += x[((base + s) * p.D + d) >> 2u] * splitW[wi + s]; }
  let L = sumL[m * p.heads + h];
  if (L > 0.0) { return o / L; }
  let row = p.m0 + m;
  let kvBase = ((row / p.T) * p.kvHeads + h / (p.heads / p.kvHeads)) * p.cap * p.D;
  return vec4<f32>(meanValue(kvBase, p.D, p.Tkv, d), meanValue(kvBase, p.D, p.Tkv, d + 1u),
                   meanValue(kvBase, p.D, p.Tkv, d + 2u), meanValue(kvBase, p.D, p.Tkv, d + 3u));
}
`;

/** A Linear weight's storage in the GEMV and tiled kernels: a dense format, or a ggml block type. */
export type LinearWeight = WeightFormat | QuantType;

/** WGSL: the bytes of one row of a [N, p.K] weight in ggml blocks of `type`. */
function rowBytesWgsl(type: QuantType): string {
  return `((p.K / ${QUANT_LAYOUT[type].elems}u) * ${QUANT_LAYOUT[type].bytes}u)`;
}

/** What a GEMV does with each output value besides storing it (ops/fused-linear.ts picks these). */
export type GemvEpilogue =
  /** y = x·Wᵀ (+ b). */
  | "none"
  /** y = r + (x·Wᵀ (+ b)): the residual add after o_proj / down_proj. */
  | "residual"
  /** Two weights (gate, up) of N rows each → y = silu(x·Gᵀ) · (x·Uᵀ), [M, N]: the SwiGLU MLP's first half. */
  | "swiglu";

/**
 * GEMV for decode (M ≤ 8 rows of x).
 *
 * Tiling: a workgroup of 256 threads computes 4 output features; 64 threads
 * share one W row and stride through it in vec4 steps (consecutive threads
 * read consecutive 8/16-byte chunks, so a W row is read once, coalesced, for
 * all M rows of x). Partial sums are reduced with `subgroupAdd` when the
 * device has subgroups (then across subgroups in workgroup memory), else by a
 * workgroup-memory tree.
 *
 * Each weight is dense (weights.ts) or in ggml blocks (quant-formats.ts,
 * dequantized four weights at a time as it is read: vec4 only, K being a
 * multiple of the block), each in its own format.
 *
 * Several weights (no bias): the same GEMV over up to 3 weights that share x
 * (q/k/v, gate/up) in one dispatch. The workgroups are laid end to end —
 * the first ceil(N0/4) compute W0's outputs into y0, the next ceil(N1/4) W1's
 * into y1, … — so each workgroup still reads one weight's rows exactly once.
 *
 * `norm` (the RMSNorm weight's format): x is the RMSNorm *input* and `inv`
 * holds each row's 1/rms (rmsInverseKernel: RMSNorm's own reduction, run once
 * per row, since a reduction repeated in every workgroup made decode 2.3×
 * slower on lavapipe); the GEMV normalizes x as it reads it, so the
 * normalized row is never written. `epilogue`: see
 * GemvEpilogue; "swiglu" (parts = 2) gives each workgroup 2 features, the
 * gate and up rows of each, and multiplies them after the reduction.
 * `merge` (one weight, no norm, vec4): x is split-K decode attention's
 * output not yet merged; the GEMV reads the partials (bound as x) and merges
 * them as it reads (SPLIT_MERGE_FNS, the combine kernel's math), so o_proj
 * needs no combine dispatch. Each workgroup first computes every (row, head)'s
 * split weights once into workgroup memory: n·nSplit exps, against the
 * n·nSplit·D reads the merge adds; a vec4 never straddles two heads (D % 4 = 0).
 * Every row's products and reduction are those of the plain GEMV, so the
 * fused results equal the separate ops' bit for bit.
 */
export function gemvKernel(weights: string, vec4: boolean, bias: WeightFormat | undefined, subgroups: boolean,
  norm?: WeightFormat, epilogue: GemvEpilogue = "none", merge = false): Kernel {
  const formats = weights.split("+") as LinearWeight[];
  const parts = formats.length;
  if (parts > 3) throw new Error("gemvKernel: at most 3 weights");
  if (!vec4 && formats.some(isQuantType)) throw new Error("gemvKernel: quantized weights are read as vec4");
  if (parts > 1 && bias) throw new Error("gemvKernel: several weights take no bias");
  if (merge && (parts !== 1 || norm || !vec4)) throw new Error("gemvKernel: a merged input takes one weight, no norm, vec4 reads");
  if (epilogue === "swiglu" && parts !== 2) throw new Error("gemvKernel: swiglu takes two weights (gate, up)");
  if (epilogue === "residual" && parts !== 1) throw new Error("gemvKernel: a residual follows one weight");
  const key = `gemv:${weights}:${vec4 ? "v4" : "s"}:${bias ?? "nobias"}:${subgroups ? "sg" : "wg"}` +
    `${norm ? `:norm-${norm}` : ""}${epilogue === "none" ? "" : `:${epilogue}`}${merge ? ":merge" : ""}`;
  const segs = Array.from({ length: parts }, (_, i) => i);
  const swiglu = epilogue === "swiglu";
  const single = parts === 1;
  // Bindings after x and the weights.
  let next = 1 + parts;
  const biasAt = bias ? next++ : -1;
  const normAt = norm ? next++ : -1;
  const invAt = norm ? next++ : -1;
  const residualAt = epilogue === "residual" ? next++ : -1;
  const mergeAt = merge ? next : -1;
  if (merge) next += 2; // partML, V
  const outAt = next;
  const outs = single || swiglu ? 1 : parts;
  const uniformAt = outAt + outs;
  // What the row's reduced dot product t becomes.
  const finish = (t: string): string => {
    const v = bias ? `${t} + B_at(n)` : t;
    if (swiglu) return `gu[r] = ${v};`;
    if (single) {
      const at = "(p.m0 + m) * p.ldo + n";
      return `y[${at}] = ${epilogue === "residual" ? `R[${at}] + (${v})` : v};`;
    }
    return `store(seg, (p.m0 + m) * N + n, ${v});`;
  };
  const reduce = subgroups
    ? `let s = subgroupAdd(acc[m]);
    if (sgid == 0u) { red[li / sgsize] = s; }
    workgroupBarrier();
    if (lane == 0u && n < N) {
      let per = 64u / sgsize;
      var t = 0.0;
      for (var i = 0u; i < per; i++) { t += red[r * per + i]; }
      ${finish("t")}
    }
    workgroupBarrier();`
    : `red[li] = acc[m];
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
      if (lane < s) { red[li] += red[li + s]; }
      workgroupBarrier();
    }
    if (lane == 0u && n < N) { ${finish("red[li]")} }
    workgroupBarrier();`;
  // swiglu: threads 0 and 1 combine the gate (gu[0..1]) and up (gu[2..3]) sums of the workgroup's two features.
  const swigluStore = swiglu
    ? `
    if (li < 2u && wg.x * 2u + li < N) { y[(p.m0 + m) * N + wg.x * 2u + li] = silu_mul(gu[li], gu[li + 2u]); }`
    : "";
  const load4 = single ? "W_row4(" : "Wseg_row4(seg, ";
  const load1 = single ? "W_row1(" : "Wseg_row1(seg, ";
  // Weight i's declaration and its row reader: W_row4(n, j) = elements 4j..4j+3 of row n (W_row1: element k).
  const weightAt = (i: number): string => {
    const name = single ? "W" : `W${i}`, f = formats[i]!;
    if (isQuantType(f)) {
      return `${quantDecl(f, 1 + i, name)}fn ${name}_row4(n: u32, j: u32) -> vec4<f32> { return ${name}_dq4(n * ${rowBytesWgsl(f)}, j << 2u); }\n`;
    }
    return weightDecl(name, 1 + i, f, vec4) + (vec4
      ? `fn ${name}_row4(n: u32, j: u32) -> vec4<f32> { return ${name}_at4(n * (p.K >> 2u) + j); }\n`
      : `fn ${name}_row1(n: u32, k: u32) -> f32 { return ${name}_at(n * p.K + k); }\n`);
  };
  const xDecl = `@group(0) @binding(0) var<storage, read> x: array<${vec4 ? "vec4<f32>" : "f32"}>;`;
  const extras = `${bias ? weightDecl("B", biasAt, bias, false) : ""}${norm ? `${weightDecl("NW", normAt, norm, vec4)}@group(0) @binding(${invAt}) var<storage, read> inv: array<f32>;
` : ""}${
    residualAt >= 0 ? `@group(0) @binding(${residualAt}) var<storage, read> R: array<f32>;\n` : ""}${
    merge ? `@group(0) @binding(${mergeAt}) var<storage, read> partML: array<f32>;
@group(0) @binding(${mergeAt + 1}) var<storage, read> V: array<f32>;
` : ""}`;
  const decls = single
    ? `struct P { M: u32, N: u32, K: u32, ldo: u32, m0: u32${merge ? MERGE_FIELDS : ""} } // rows m0..m0+M-1 of x and y
${xDecl}
${weightAt(0)}${extras}@group(0) @binding(${outAt}) var<storage, read_write> y: array<f32>;
@group(0) @binding(${uniformAt}) var<uniform> p: P;`
    : `// rows m0..m0+M-1 of x and of every y<i>; weight i has N<i> rows and its first workgroup is g<i>
struct P { M: u32, K: u32, m0: u32, N0: u32, N1: u32, N2: u32, g1: u32, g2: u32 }
${xDecl}
${segs.map(weightAt).join("")}${extras}${
  swiglu
    ? `@group(0) @binding(${outAt}) var<storage, read_write> y: array<f32>;`
    : segs.map((i) => `@group(0) @binding(${outAt + i}) var<storage, read_write> y${i}: array<f32>;`).join("\n")}
@group(0) @binding(${uniformAt}) var<uniform> p: P;
${vec4 ? `fn Wseg_row4(seg: u32, n: u32, j: u32) -> vec4<f32> {
${segs.map((i) => `  if (seg == ${i}u) { return W${i}_row4(n, j); }`).join("\n")}
  return vec4<f32>(0.0);
}` : `fn Wseg_row1(seg: u32, n: u32, k: u32) -> f32 {
${segs.map((i) => `  if (seg == ${i}u) { return W${i}_row1(n, k); }`).join("\n")}
  return 0.0;
}`}
${swiglu ? `${SILU_MUL_FN}
var<workgroup> gu: array<f32, 4>;` : `fn store(seg: u32, i: u32, v: f32) {
${segs.map((i) => `  if (seg == ${i}u) { y${i}[i] = v; }`).join("\n")}
}`}`;
  // Which weight this workgroup serves, how many rows it has, and the row n of it this thread's group reads.
  const locate = single
    ? "let N = p.N;\n  let n = wg.x * 4u + r;"
    : swiglu
      ? "let seg = r >> 1u;  // rows 0, 1: gate; rows 2, 3: up\n  let N = p.N0;\n  let n = wg.x * 2u + (r & 1u);"
      : `let seg = select(select(0u, 1u, wg.x >= p.g1), 2u, ${parts > 2 ? "wg.x >= p.g2" : "false"});
  let N = select(select(p.N0, p.N1, seg == 1u), p.N2, seg == 2u);
  let n = (wg.x - select(select(0u, p.g1, seg == 1u), p.g2, seg == 2u)) * 4u + r;`;
  // x as the products read it: the stored row, RMSNorm of it, or the merged attention partials.
  const xAt = (i: string) => (norm ? rmsApply("g", i, "inv[p.m0 + m]") : merge ? "mergedX4(m, j)" : i);
  const wgsl = /* wgsl */ `${enables(...formats.filter((f): f is WeightFormat => !isQuantType(f)), bias ?? "f32", norm ?? "f32")}${
    subgroups ? "enable subgroups;\n" : ""}
${decls}

var<workgroup> red: array<f32, 256>;
${merge ? MERGE_READ : ""}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32${
    subgroups ? ",\n        @builtin(subgroup_invocation_id) sgid: u32, @builtin(subgroup_size) sgsize: u32" : ""
  }) {${merge ? "\n  mergeWeights(li);" : ""}
  let r = li >> 6u;     // which of the 4 rows
  let lane = li & 63u;  // position within the row's 64 threads
  ${locate}
  var acc: array<f32, ${GEMV_MAX_M}>;
  if (n < N) {
    ${
      vec4
        ? `let k4 = p.K >> 2u;
    for (var j = lane; j < k4; j += 64u) {
      let w = ${load4}n, j);${norm ? "\n      let g = NW_at4(j);" : ""}
      for (var m = 0u; m < p.M; m++) { acc[m] += dot(w, ${xAt("x[(p.m0 + m) * k4 + j]")}); }
    }`
        : `for (var k = lane; k < p.K; k += 64u) {
      let w = ${load1}n, k);${norm ? "\n      let g = NW_at(k);" : ""}
      for (var m = 0u; m < p.M; m++) { acc[m] += w * ${xAt("x[(p.m0 + m) * p.K + k]")}; }
    }`
    }
  }
  for (var m = 0u; m < p.M; m++) {
    ${reduce}${swigluStore}
  }
}
`;
  return { key, wgsl };
}
