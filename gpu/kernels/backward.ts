/**
 * Backward kernels of the differentiable WebGPU backend (gpu/tape-backend.ts):
 * each is the derivative of one forward kernel, with respect to its activation
 * inputs and, for the weights a training run makes trainable (LoRA's A and B, a
 * head, the embedding table, RMSNorm weights, biases), its weights.
 *
 * Layouts are the forward's (see attention.ts): q/dQ [B, heads, T, D],
 * K/V/dK/dV [B, kvHeads, S, D] (dense), P/dS [B, heads, T, S] (post-softmax
 * weights and the gradient of the pre-softmax scores).
 *
 * No float atomics: every output element is written by one thread that sums
 * its terms in a fixed order, so gradients are the same bits on every run.
 */
import type { Kernel } from "../executor.js";
import { ROW_MAIN, flatKernel } from "./elementwise.js";
import { workgroupReduce } from "./reduce.js";
import { type WeightFormat, enables, weightDecl } from "./weights.js";

/**
 * Wᵀ widened to f32: W [N, K] in any weight format → y [K, N]. The input
 * gradient of a linear layer, dX = dY · W, then runs on the forward's tiled
 * kernel as dY · (Wᵀ)ᵀ. One thread per output element (a one-time copy per weight).
 */
export function transposeToF32Kernel(wf: WeightFormat): Kernel {
  return flatKernel(
    `transpose_f32:${wf}`,
    "N: u32, K: u32",
    [(b) => weightDecl("W", b, wf, false), "var<storage, read_write> y: array<f32>"],
    "let k = i / p.N; let n = i - k * p.N; y[i] = W_at(n * p.K + k);",
    enables(wf),
  );
}

/**
 * RMSNorm's input gradient. With r = rsqrt(mean(x²) + eps) and y = w·x·r:
 *   dx_h = r·w_h·g_h − x_h · r³ · (Σ_j w_j·g_j·x_j) / H.
 * Tiling: one 256-thread workgroup per row, two workgroup-memory reductions
 * (Σx² and Σw·g·x), then each thread writes its strided slice.
 */
export function rmsNormBackwardKernel(wf: WeightFormat): Kernel {
  return {
    key: `rmsnorm_bwd:${wf}`,
    wgsl: /* wgsl */ `${enables(wf)}
struct P { H: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
${weightDecl("w", 1, wf, false)}
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
${ROW_MAIN}
  var s = 0.0;
  var t = 0.0;
  for (var h = li; h < p.H; h += 256u) { let v = x[base + h]; s += v * v; t += w_at(h) * g[base + h] * v; }
  ${workgroupReduce("s", 256, "sum")}
  let sumSq = red[0];
  workgroupBarrier(); // everyone has read red[0] before the second reduction overwrites it
  ${workgroupReduce("t", 256, "sum")}
  let dot = red[0];
  let r = inverseSqrt(sumSq / f32(p.H) + p.eps);
  let c = r * r * r * dot / f32(p.H);
  for (var h = li; h < p.H; h += 256u) { dx[base + h] = r * w_at(h) * g[base + h] - x[base + h] * c; }
}
`,
  };
}

/**
 * SwiGLU's input gradients for y = silu(gate)·up, with σ = sigmoid(gate):
 *   d_up = g·silu(gate),  d_gate = g·up·σ·(1 + gate·(1 − σ)).
 * One thread per element, both outputs at once.
 */
export function siluMulBackwardKernel(): Kernel {
  return flatKernel(
    "silu_mul_bwd",
    "",
    [
      "var<storage, read> gate: array<f32>", "var<storage, read> up: array<f32>", "var<storage, read> g: array<f32>",
      "var<storage, read_write> dGate: array<f32>", "var<storage, read_write> dUp: array<f32>",
    ],
    /* wgsl */ `let v = gate[i];
  let s = 1.0 / (1.0 + exp(-v));
  dUp[i] = g[i] * v * s;
  dGate[i] = g[i] * up[i] * s * (1.0 + v * (1.0 - s));`,
  );
}

/** Parameters shared by the attention backward kernels. */
const ATTN_BWD_PARAMS = "heads: u32, kvHeads: u32, T: u32, S: u32, D: u32, scale: f32";

/**
 * The gradient of the pre-softmax scores of one query row (b, h, t):
 *   dP_s = dO · V_s,  dS_s = scale · P_s · (dP_s − Σ_j P_j·dP_j).
 * Masked keys have P = 0, so they get dS = 0. A row that sees no key at all
 * (a left-padding query) has uniform P in the forward, a constant in q and k:
 * its dS is 0 (the CPU tape's rule), found by counting visible keys with the
 * forward's causal offset and padding mask.
 * Tiling: one 256-thread workgroup per row; each thread computes dP for a
 * strided set of keys (kept in dS while the row sum is reduced), then rescales them.
 */
export function attentionScoresBackwardKernel(): Kernel {
  return {
    key: "attn_scores_bwd",
    wgsl: /* wgsl */ `
struct P { ${ATTN_BWD_PARAMS}, past: u32, hasMask: u32 }
@group(0) @binding(0) var<storage, read> probs: array<f32>;
@group(0) @binding(1) var<storage, read> dO: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> dS: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  let h = wg.y;
  let b = wg.z;
  let kvh = h / (p.heads / p.kvHeads);
  let row = (b * p.heads + h) * p.T + t;   // row of probs / dS
  let oBase = row * p.D;                   // dO is [B, heads, T, D]
  let vBase = (b * p.kvHeads + kvh) * p.S * p.D;
  var acc = 0.0;
  var seen = 0.0;
  for (var s = li; s < p.S; s += 256u) {
    var dp = 0.0;
    for (var d = 0u; d < p.D; d++) { dp += dO[oBase + d] * V[vBase + s * p.D + d]; }
    dS[row * p.S + s] = dp;
    acc += probs[row * p.S + s] * dp;
    if (s <= p.past + t && (p.hasMask == 0u || mask[b * p.S + s] != 0u)) { seen += 1.0; }
  }
  ${workgroupReduce("acc", 256, "sum")}
  let total = red[0];
  workgroupBarrier(); // everyone has read red[0] before the second reduction overwrites it
  ${workgroupReduce("seen", 256, "sum")}
  let blind = red[0] == 0.0;
  for (var s = li; s < p.S; s += 256u) {
    let k = row * p.S + s;
    dS[k] = select(p.scale * probs[k] * (dS[k] - total), 0.0, blind);
  }
}
`,
  };
}

/** dQ[b,h,t,:] = Σ_s dS[b,h,t,s] · K[b,kvh,s,:] (dS already carries the softmax scale). One thread per element. */
export function attentionQueryBackwardKernel(): Kernel {
  return flatKernel(
    "attn_q_bwd",
    ATTN_BWD_PARAMS,
    ["var<storage, read> dS: array<f32>", "var<storage, read> K: array<f32>", "var<storage, read_write> dQ: array<f32>"],
    /* wgsl */ `// i indexes dQ as [b, h, t, d]
  let d = i % p.D;
  let row = i / p.D;                 // (b * heads + h) * T + t
  let h = (row / p.T) % p.heads;
  let b = row / (p.T * p.heads);
  let kBase = (b * p.kvHeads + h / (p.heads / p.kvHeads)) * p.S * p.D + d;
  var acc = 0.0;
  for (var s = 0u; s < p.S; s++) { acc += dS[row * p.S + s] * K[kBase + s * p.D]; }
  dQ[i] = acc;`,
  );
}

/**
 * dK[b,kvh,s,:] = Σ_{h in group} Σ_t dS[b,h,t,s] · q[b,h,t,:] and
 * dV[b,kvh,s,:] = Σ_{h in group} Σ_t P[b,h,t,s] · dO[b,h,t,:], the group being
 * the query heads that share kv head kvh (GQA sums their contributions).
 * One thread per (b, kvh, s, d) element of both outputs.
 */
export function attentionKeyValueBackwardKernel(): Kernel {
  return flatKernel(
    "attn_kv_bwd",
    ATTN_BWD_PARAMS,
    [
      "var<storage, read> dS: array<f32>", "var<storage, read> q: array<f32>", "var<storage, read> probs: array<f32>",
      "var<storage, read> dO: array<f32>", "var<storage, read_write> dK: array<f32>", "var<storage, read_write> dV: array<f32>",
    ],
    /* wgsl */ `// i indexes dK/dV as [b, kvh, s, d]
  let d = i % p.D;
  let s = (i / p.D) % p.S;
  let kvh = (i / (p.D * p.S)) % p.kvHeads;
  let b = i / (p.D * p.S * p.kvHeads);
  let group = p.heads / p.kvHeads;
  var dk = 0.0;
  var dv = 0.0;
  for (var h = kvh * group; h < (kvh + 1u) * group; h++) {
    for (var t = 0u; t < p.T; t++) {
      let row = (b * p.heads + h) * p.T + t;
      dk += dS[row * p.S + s] * q[row * p.D + d];
      dv += probs[row * p.S + s] * dO[row * p.D + d];
    }
  }
  dK[i] = dk;
  dV[i] = dv;`,
  );
}

/**
 * The gradient of a row gather (embedding, selectBatch, selectPositions): the
 * gathered rows' gradients g [N, C] summed back into y [R, C] at the rows they
 * were read from, a row read several times getting the sum. The host groups the
 * N reads by source row (ops/backward.ts rowIndex): row r's reads are
 * positions[offsets[r] .. offsets[r+1]), ascending, so each sum runs in read
 * order (the CPU tape's order) and a row never read gets 0 (no zeroing pass).
 * One thread per output element.
 */
export function scatterRowsKernel(): Kernel {
  return flatKernel(
    "scatter_rows",
    "C: u32",
    ["var<storage, read> offsets: array<u32>", "var<storage, read> positions: array<u32>", "var<storage, read> g: array<f32>",
      "var<storage, read_write> y: array<f32>"],
    /* wgsl */ `let c = i % p.C;
  let r = i / p.C;
  var acc = 0.0;
  for (var j = offsets[r]; j < offsets[r + 1u]; j++) { acc += g[positions[j] * p.C + c]; }
  y[i] = acc;`,
  );
}

/**
 * Column sums over rows of C: y[c] = Σ_r g[r, c] (a bias gradient), or with
 * `weighted`, Σ_r g[r, c] · n[r, c] (an RMSNorm weight's gradient, n being the
 * normalized input x · rsqrt(mean(x²) + eps)). One thread per column, rows in order.
 */
export function columnSumKernel(weighted: boolean): Kernel {
  return flatKernel(
    `column_sum:${weighted ? "weighted" : "plain"}`,
    "R: u32",
    ["var<storage, read> g: array<f32>", ...(weighted ? ["var<storage, read> nrm: array<f32>"] : []),
      "var<storage, read_write> y: array<f32>"],
    /* wgsl */ `var acc = 0.0;
  for (var r = 0u; r < p.R; r++) { acc += g[r * p.n + i]${weighted ? " * nrm[r * p.n + i]" : ""}; }
  y[i] = acc;`,
  );
}

/** Parameters shared by the attendWith backward kernels; cap is V's rows per head (a KV-cache view may have spare ones). */
const ATTEND_BWD_PARAMS = "heads: u32, kvHeads: u32, T: u32, S: u32, D: u32, cap: u32";

/**
 * attendWith's weight gradient, for out [B, T, heads·D] = W [B, heads, T, S] · V
 * per head: dW[b,h,t,s] = Σ_d dO[b,t,h·D+d] · V[b,kvh,s,d] (query head h reads
 * kv head h / (heads/kvHeads)). One thread per element of dW.
 */
export function attendWithWeightsBackwardKernel(): Kernel {
  return flatKernel(
    "attend_with_w_bwd",
    ATTEND_BWD_PARAMS,
    ["var<storage, read> dO: array<f32>", "var<storage, read> V: array<f32>", "var<storage, read_write> dW: array<f32>"],
    /* wgsl */ `// i indexes dW as [b, h, t, s]
  let s = i % p.S;
  let t = (i / p.S) % p.T;
  let h = (i / (p.S * p.T)) % p.heads;
  let b = i / (p.S * p.T * p.heads);
  let vBase = ((b * p.kvHeads + h / (p.heads / p.kvHeads)) * p.cap + s) * p.D;
  let oBase = ((b * p.T + t) * p.heads + h) * p.D;
  var acc = 0.0;
  for (var d = 0u; d < p.D; d++) { acc += dO[oBase + d] * V[vBase + d]; }
  dW[i] = acc;`,
  );
}

/**
 * attendWith's value gradient: dV[b,kvh,s,d] = Σ_{h in group} Σ_t W[b,h,t,s] · dO[b,t,h·D+d],
 * the group being the query heads that read kv head kvh. One thread per element of dV (dense).
 */
export function attendWithValuesBackwardKernel(): Kernel {
  return flatKernel(
    "attend_with_v_bwd",
    ATTEND_BWD_PARAMS,
    ["var<storage, read> dO: array<f32>", "var<storage, read> W: array<f32>", "var<storage, read_write> dV: array<f32>"],
    /* wgsl */ `// i indexes dV as [b, kvh, s, d]
  let d = i % p.D;
  let s = (i / p.D) % p.S;
  let kvh = (i / (p.D * p.S)) % p.kvHeads;
  let b = i / (p.D * p.S * p.kvHeads);
  let group = p.heads / p.kvHeads;
  var acc = 0.0;
  for (var h = kvh * group; h < (kvh + 1u) * group; h++) {
    for (var t = 0u; t < p.T; t++) {
      acc += W[((b * p.heads + h) * p.T + t) * p.S + s] * dO[((b * p.T + t) * p.heads + h) * p.D + d];
    }
  }
  dV[i] = acc;`,
  );
}

/**
 * A trainable weight's gradient (the SEQ_CLS head trained with a soft prompt):
 * dW[n, k] = Σ_m g[m, n] · x[m, k] for y = x · Wᵀ. One thread per weight element,
 * a plain loop over the M rows (heads are small: num_labels × hidden, M = batch).
 */
export function linearWeightBackwardKernel(): Kernel {
  return flatKernel(
    "linear_weight_bwd",
    "M: u32, N: u32, K: u32",
    ["var<storage, read> g: array<f32>", "var<storage, read> x: array<f32>", "var<storage, read_write> dW: array<f32>"],
    /* wgsl */ `let k = i % p.K;
  let n = i / p.K;
  var acc = 0.0;
  for (var m = 0u; m < p.M; m++) { acc += g[m * p.N + n] * x[m * p.K + k]; }
  dW[i] = acc;`,
  );
}
