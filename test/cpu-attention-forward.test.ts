// Attention's forward on the wasm kernels (attn_fwd_groups: scores, softmax with exp_f64, P·V):
//  - against the JavaScript kernel (attentionInto, lib/tensor/ops.ts) on random inputs, within float32
//    rounding (the products sum in another order);
//  - bit for bit against the softmax as the kernel states it (each score·scale rounded to float32, max
//    and sum in float64, each Math.exp rounded to float32 when stored, divided by the unrounded sum, 1/S
//    for a row that sees no key, 0 past the causal limit) on inputs whose products are exact in any
//    order, so any difference is the softmax's. This is the formula the JavaScript loop over the same
//    products computed before the loop moved into the kernel, so the CPU backend's bits did not move.
// With causal rows, left padding, a row that sees no key, GQA, a KV prefix, key counts that are not a
// multiple of 4, groups split over the worker threads, the weights not asked for (per-thread blocks),
// a cache with room past S, and values in another memory than the keys.
import { describe, it, expect, afterAll } from "vitest";
import { WasmLinearEngine } from "../lib/backend/cpu/wasm-engine.js";
import { attentionInto, type AttentionShapes } from "../lib/tensor/ops.js";
import { values, maxRel } from "./tape-helpers.js";

const engines: WasmLinearEngine[] = [];
afterAll(() => engines.forEach((e) => e.dispose()));

interface Case { B: number; n: number; kh: number; T: number; P: number; D: number; mask?: number[]; capacity?: number }

const CASES: Case[] = [
  // row 1 is left-padded by 3: with queryOffset 0 its first query sees no key (uniform weights)
  { B: 2, n: 4, kh: 2, T: 7, P: 0, D: 32, mask: [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1] },
  { B: 1, n: 8, kh: 4, T: 63, P: 0, D: 32 },
  // enough work for the worker threads
  { B: 3, n: 8, kh: 4, T: 41, P: 0, D: 32, mask: [...new Array<number>(41).fill(1), ...new Array<number>(5).fill(0), ...new Array<number>(36).fill(1), ...new Array<number>(41).fill(1)] },
  // a KV prefix, one kv head, a cache with room past S (kvHeadStride > S·D)
  { B: 1, n: 2, kh: 1, T: 5, P: 6, D: 16, capacity: 20 },
  // decode: one query against 37 keys
  { B: 2, n: 8, kh: 4, T: 1, P: 36, D: 32, capacity: 40 },
];

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A cache tensor [B, kh, capacity, D] in the engine's memory holding `data` [B, kh, S, D] in its first S rows. */
function cache(e: WasmLinearEngine, data: Float32Array, c: Case, S: number, capacity: number): Float32Array {
  const view = e.allocF32(c.B * c.kh * capacity * c.D);
  for (let u = 0; u < c.B * c.kh; u++) view.set(data.subarray(u * S * c.D, (u + 1) * S * c.D), u * capacity * c.D);
  return view;
}

/** The engine's out [B, T, n·D] and weights [B, n, T, S] (undefined when not asked for), asserting it ran. */
function run(engine: WasmLinearEngine, c: Case, q: Float32Array, k: Float32Array, v: Float32Array, scale: number, withWeights: boolean) {
  const S = c.P + c.T, capacity = c.capacity ?? S;
  const shapes: AttentionShapes = { B: c.B, n: c.n, k: c.kh, T: c.T, S, D: c.D, kvHeadStride: capacity * c.D };
  const kd = cache(engine, k, c, S, capacity), vd = cache(engine, v, c, S, capacity);
  const out = new Float32Array(c.B * c.T * c.n * c.D), weights = withWeights ? new Float32Array(c.B * c.n * c.T * S) : undefined;
  expect(engine.attention(q, kd, vd, shapes, scale, c.P, c.mask && Uint8Array.from(c.mask), out, weights)).toBe(true);
  return { out, weights, shapes, kd, vd };
}

/** Random inputs: the engine against attentionInto, within float32 rounding. */
function againstJavaScript(engine: WasmLinearEngine, c: Case): void {
  const S = c.P + c.T;
  const q = values(c.B * c.n * c.T * c.D, 1 + c.T, 2), k = values(c.B * c.kh * S * c.D, 2 + S, 2), v = values(c.B * c.kh * S * c.D, 3 + c.D);
  const scale = 1 / Math.sqrt(c.D);
  const { out, weights, shapes, kd, vd } = run(engine, c, q, k, v, scale, true);
  const jsOut = new Float32Array(out.length), jsWeights = new Float32Array(weights!.length);
  attentionInto(q, kd, vd, shapes, scale, c.P, c.mask && Uint8Array.from(c.mask), jsOut, jsWeights, new Float64Array(S));
  expect(maxRel(out, jsOut)).toBeLessThan(1e-5);
  expect(maxRel(weights!, jsWeights)).toBeLessThan(1e-5);
}

/** Multiples of 1/8 in [-0.5, 0.5]: every q·k sum over D ≤ 64 is exact in float32, in any order. */
function eighths(n: number, seed: number): Float32Array {
  return values(n, seed).map((x) => Math.round(x * 4) / 8);
}

/**
 * Exact products: the weights bit for bit against the stated softmax, and with V's row j the unit
 * vector e_j (rows past D zero) out[r, d] = P[r, d], also exact. Both with and without the weights asked for.
 */
function againstStatedSoftmax(engine: WasmLinearEngine, c: Case): void {
  const S = c.P + c.T, { B, n, kh, T, D } = c, group = n / kh;
  const q = eighths(B * n * T * D, 5 + T), k = eighths(B * kh * S * D, 6 + S);
  const v = new Float32Array(B * kh * S * D);
  for (let u = 0; u < B * kh; u++) for (let j = 0; j < Math.min(S, D); j++) v[(u * S + j) * D + j] = 1;
  const scale = 1 / Math.sqrt(D); // a double: the kernel must round score · scale as stated
  const want = new Float32Array(B * n * T * S), wantOut = new Float32Array(B * T * n * D);
  for (let b = 0; b < B; b++) for (let h = 0; h < n; h++) for (let i = 0; i < T; i++) {
    const row = ((b * n + h) * T + i) * S, last = Math.min(S - 1, c.P + i);
    const s = new Float64Array(S).fill(-Infinity);
    let max = -Infinity;
    for (let j = 0; j <= last; j++) {
      if (c.mask && c.mask[b * S + j] === 0) continue;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[((b * n + h) * T + i) * D + d]! * k[((b * kh + Math.floor(h / group)) * S + j) * D + d]!;
      s[j] = Math.fround(dot * scale);
      max = Math.max(max, s[j]!);
    }
    if (max === -Infinity) want.fill(Math.fround(1 / S), row, row + S);
    else {
      let sum = 0;
      for (let j = 0; j <= last; j++) {
        const e = s[j] === -Infinity ? 0 : Math.exp(s[j]! - max);
        want[row + j] = e;
        sum += e;
      }
      for (let j = 0; j <= last; j++) want[row + j] = want[row + j]! / sum;
    }
    for (let d = 0; d < Math.min(S, D); d++) wantOut[(b * T + i) * n * D + h * D + d] = want[row + d]!;
  }
  const full = run(engine, c, q, k, v, scale, true);
  expect(bits(full.weights!).equals(bits(want))).toBe(true);
  expect(bits(full.out).equals(bits(wantOut))).toBe(true);
  expect(bits(run(engine, c, q, k, v, scale, false).out).equals(bits(wantOut))).toBe(true);
}

describe("attention forward on the wasm kernels: attentionInto's numbers, the stated softmax's bits", () => {
  for (const c of CASES) {
    const S = c.P + c.T;
    it(`B ${c.B}, ${c.n} query / ${c.kh} kv heads, T ${c.T}, S ${S}, D ${c.D}${c.mask ? ", padded" : ""}`, async () => {
      const engine = (await WasmLinearEngine.create(3))!;
      engines.push(engine);
      againstJavaScript(engine, c);
      againstStatedSoftmax(engine, c);
    });
  }

  it("values in another memory than the keys (copied next to them): the same bits", async () => {
    // 1 MiB per memory: the keys fill most of one, so the values get the next
    const engine = (await WasmLinearEngine.create(2, "exact", 1 << 20))!;
    engines.push(engine);
    const c: Case = { B: 2, n: 8, kh: 4, T: 40, P: 600, D: 32, mask: [...new Array<number>(640).fill(1), ...new Array<number>(7).fill(0), ...new Array<number>(633).fill(1)] };
    againstJavaScript(engine, c);
    againstStatedSoftmax(engine, c);
    expect(Number(/(\d+) memories/.exec(engine.description)?.[1] ?? 1)).toBeGreaterThanOrEqual(2);
  });

  it("refuses a head size that is not a multiple of 16 (the JavaScript kernel runs instead)", async () => {
    const engine = (await WasmLinearEngine.create(1))!;
    engines.push(engine);
    const kd = engine.allocF32(2 * 12), vd = engine.allocF32(2 * 12);
    const shapes: AttentionShapes = { B: 1, n: 1, k: 1, T: 2, S: 2, D: 12, kvHeadStride: 24 };
    expect(engine.attention(new Float32Array(24), kd, vd, shapes, 0.3, 0, undefined, new Float32Array(24), undefined)).toBe(false);
  });
});
