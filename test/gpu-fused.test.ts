/**
 * The WebGPU decode fusions (gpu/ops/fused-linear.ts, gpu/ops/heads.ts)
 * against the same ops run one by one (each deferred tensor read first, so
 * the plain kernel runs): RMSNorm folded into the q/k/v and gate/up GEMVs
 * (its per-row 1/rms one small dispatch before each),
 * SwiGLU in the gate/up epilogue, the residual add in a linear's epilogue,
 * q rope + k rope/append + v append as one dispatch. Bit-identical results
 * (the fused kernels are the single ops' snippets), the dispatch counts, and
 * every scratch buffer back in the pool afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import type { DeviceTensor } from "../lib/backend/backend.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { f32ToBf16, f32ToF16 } from "../lib/tensor/dtype.js";
import { randn, rng } from "./gpu-reference.js";
import { QUANT_LAYOUT, QuantizedTensor } from "../lib/tensor/quantized.js";
import { quantizeRows, type QuantizedType } from "../lib/quant/quantize.js";

const setups = [
  { f16: "native", subgroups: true },
  { f16: "packed", subgroups: false },
] as const;
const backends = new Map<string, WebGpuBackend>();
beforeAll(async () => {
  for (const s of setups) backends.set(s.f16, await createWebGpuBackend(s));
});
afterAll(() => backends.forEach((b) => b.dispose()));

type WeightDtype = "f32" | "f16" | "bf16" | "q4_0" | "q8_0" | "q6_k";

function weight(be: WebGpuBackend, values: Float32Array, shape: number[], dtype: WeightDtype): DeviceTensor {
  if (dtype === "q4_0" || dtype === "q8_0" || dtype === "q6_k") {
    const K = shape[shape.length - 1]!;
    return be.uploadQuantized(new QuantizedTensor(dtype, quantizeRows(QUANT_LAYOUT[dtype].ggml as QuantizedType, values, K), shape));
  }
  if (dtype === "f16") return be.upload(new Tensor(f32ToF16(values), shape, "f16"));
  if (dtype === "bf16") return be.upload(new Tensor(f32ToBf16(values), shape, "bf16"));
  return be.upload(new Tensor(values, shape, "f32"));
}

const bits = async (be: WebGpuBackend, t: DeviceTensor) => Array.from((await be.read(t)).data);

describe.each(setups)("decode fusions (f16 $f16, subgroups $subgroups)", ({ f16 }) => {
  it.each([
    { dtype: "f16", M: 1, K: 64, I: 48 },
    { dtype: "f32", M: 3, K: 36, I: 20 },
    { dtype: "bf16", M: 8, K: 30, I: 9 },
    { dtype: "f16", M: 2, K: 300, I: 301 },
    // ggml blocks, read by the same GEMV: v in another format than q and k (as Q4_K_M's Q6_K v)
    { dtype: "q4_0", M: 2, K: 64, I: 96 },
    { dtype: "q6_k", M: 1, K: 256, I: 256 },
  ] as const)("$dtype M=$M K=$K I=$I: one decoder layer's products equal the ops one by one", async ({ dtype, M, K, I }) => {
    const be = backends.get(f16)!;
    const r = rng(M * 7919 + K);
    const quant = dtype.startsWith("q");
    const h = be.upload(new Tensor(randn(r, M * K), [1, M, K]));
    const normW = weight(be, randn(r, K, 0.5), [K], quant ? "f32" : dtype);
    const [wq, wk, wv] = [K, 8, 8].map((N, i) => weight(be, randn(r, N * K, 0.3), [N, K], quant && i === 2 ? "q8_0" : dtype));
    const wo = weight(be, randn(r, K * K, 0.3), [K, K], dtype);
    const [wg, wu] = [I, I].map((N) => weight(be, randn(r, N * K, 0.3), [N, K], dtype));
    const wd = weight(be, randn(r, K * I, 0.3), [K, I], dtype);
    const scratch0 = be.memory().scratchInUse;

    // Fused: what the model's decode step asks for.
    let before = be.counters.dispatches;
    const x = be.rmsNorm(h, normW, 1e-5);
    const [q, k, v] = be.linearMany(x, [wq!, wk!, wv!]);
    be.release(x);
    const qkv = [await bits(be, q!), await bits(be, k!), await bits(be, v!)];
    expect(be.counters.dispatches - before).toBe(2); // 1/rms, then the one q/k/v GEMV normalizing as it reads
    before = be.counters.dispatches;
    const a = be.linear(q!, wo!);
    const mid = be.add(h, a);
    be.release(a);
    const x2 = be.rmsNorm(mid, normW, 1e-6);
    const [g, u] = be.linearMany(x2, [wg!, wu!]);
    be.release(x2);
    const act = be.siluMul(g!, u!);
    be.release(g!); be.release(u!);
    const down = be.linear(act, wd!);
    const out = be.add(mid, down);
    be.release(down);
    const fused = { mid: await bits(be, mid), act: await bits(be, act), out: await bits(be, out) };
    expect(be.counters.dispatches - before).toBe(4); // o_proj + add, 1/rms, norm + gate/up + silu·mul, down_proj + add
    for (const t of [q, k, v, mid, act, out]) be.release(t!);

    // One by one: every intermediate read (so recorded by its own kernel) before the next op.
    const read = async (t: DeviceTensor) => { await be.read(t); return t; };
    const xs = await read(be.rmsNorm(h, normW, 1e-5));
    const [q1, k1, v1] = be.linearMany(xs, [wq!, wk!, wv!]);
    expect([await bits(be, q1!), await bits(be, k1!), await bits(be, v1!)]).toEqual(qkv);
    const a1 = await read(be.linear(q1!, wo!));
    const mid1 = be.add(h, a1);
    expect(await bits(be, mid1)).toEqual(fused.mid);
    const x21 = await read(be.rmsNorm(mid1, normW, 1e-6));
    const [g1, u1] = be.linearMany(x21, [wg!, wu!]);
    await read(g1!);
    const act1 = be.siluMul(g1!, u1!);
    expect(await bits(be, act1)).toEqual(fused.act);
    const d1 = await read(be.linear(act1, wd!));
    const out1 = be.add(mid1, d1);
    expect(await bits(be, out1)).toEqual(fused.out);
    // A deferred product read after its fused use still gives its own values.
    const a2 = be.linear(q1!, wo!);
    const mid2 = be.add(h, a2);
    expect(await bits(be, a2)).toEqual(await bits(be, a1));
    expect(await bits(be, mid2)).toEqual(fused.mid);
    for (const t of [xs, q1, k1, v1, a1, mid1, x21, g1, u1, act1, d1, out1, a2, mid2]) be.release(t!);
    expect(be.memory().scratchInUse).toBe(scratch0);
  });

  it.each([
    { B: 1, T: 1, n: 4, kv: 2, D: 8, P: 5 },
    { B: 2, T: 3, n: 2, kv: 1, D: 6, P: 15 }, // grows the cache (capacity 16) while appending
  ])("B=$B T=$T heads $n/$kv D=$D after P=$P: q rope + k rope/append + v append in one dispatch", async ({ B, T, n, kv, D, P }) => {
    const be = backends.get(f16)!;
    const r = rng(B * 100 + T * 10 + D);
    const xq = be.upload(new Tensor(randn(r, B * T * n * D), [B, T, n * D]));
    const xk = be.upload(new Tensor(randn(r, B * T * kv * D), [B, T, kv * D]));
    const xv = be.upload(new Tensor(randn(r, B * T * kv * D), [B, T, kv * D]));
    const cos = randn(r, B * T * (D / 2));
    const sin = randn(r, B * T * (D / 2));
    const past = () => be.kvAppend(undefined, be.upload(new Tensor(randn(rng(P), B * kv * P * D), [B, kv, P, D])));
    const scratch0 = be.memory().scratchInUse;

    const step = async (oneByOne: boolean) => {
      let [kc, vc] = [past(), past()];
      const before = be.counters.dispatches;
      const q = be.splitHeads(xq, n, { cos, sin });
      const k = be.splitHeads(xk, kv, { cos, sin });
      const v = be.splitHeads(xv, kv);
      if (oneByOne) for (const t of [q, k, v]) await be.read(t);
      kc = be.kvAppend(kc, k);
      vc = be.kvAppend(vc, v);
      be.release(k); be.release(v);
      const got = [await bits(be, q), await bits(be, kc), await bits(be, vc)];
      const dispatches = be.counters.dispatches - before;
      for (const t of [q, kc, vc]) be.release(t);
      return { got, dispatches };
    };
    const fused = await step(false);
    const plain = await step(true);
    expect(fused.got).toEqual(plain.got);
    const growth = P + T > 16 ? 2 : 0; // the old rows copied into the bigger k and v caches
    expect(fused.dispatches).toBe(1 + growth);
    expect(plain.dispatches).toBe(5 + growth);
    expect(be.memory().scratchInUse).toBe(scratch0);
  });

  it.each([
    { B: 1, n: 4, kv: 2, D: 8, S: 600, masked: false, merged: true },
    { B: 2, n: 4, kv: 2, D: 8, S: 300, masked: true, merged: true }, // row 1 sees no key: the mean of V
    { B: 1, n: 2, kv: 1, D: 6, S: 520, masked: false, merged: false }, // a vec4 would straddle heads: the combine runs
  ])("B=$B heads $n/$kv D=$D over S=$S keys: split-K attention merged by o_proj's GEMV", async ({ B, n, kv, D, S, masked, merged }) => {
    const be = backends.get(f16)!;
    const r = rng(S + D);
    const H = n * D;
    const cache = () => be.kvAppend(undefined, be.upload(new Tensor(randn(r, B * kv * S * D), [B, kv, S, D])));
    const [kc, vc] = [cache(), cache()];
    const q = be.upload(new Tensor(randn(r, B * n * D), [B, n, 1, D]));
    const h = be.upload(new Tensor(randn(r, B * H), [B, 1, H]));
    const wo = weight(be, randn(r, H * H, 0.3), [H, H], "f16");
    const keyMask = masked ? Uint8Array.from({ length: B * S }, (_, i) => (i < S && i % 3 !== 0 ? 1 : 0)) : undefined;
    const mask = { queryOffset: S - 1, keyMask };
    const scratch0 = be.memory().scratchInUse;

    const step = async (oneByOne: boolean) => {
      const before = be.counters.dispatches;
      const z = be.attention(q, kc, vc, mask, { scale: 0.3 }).out;
      if (oneByOne) await be.read(z);
      const a = be.linear(z, wo);
      const mid = be.add(h, a);
      be.release(a);
      const got = await bits(be, mid);
      const dispatches = be.counters.dispatches - before;
      const attn = await bits(be, z); // read after its merged use: the combine runs now, same values
      for (const t of [z, mid]) be.release(t);
      return { got, attn, dispatches };
    };
    const fused = await step(false);
    const plain = await step(true);
    expect(fused.got).toEqual(plain.got);
    expect(fused.attn).toEqual(plain.attn);
    expect(fused.got.every(Number.isFinite)).toBe(true);
    expect(plain.dispatches).toBe(3); // split attention, combine, o_proj + add
    expect(fused.dispatches).toBe(merged ? 2 : 3);
    if (masked) { // row 1 of z is the mean of its values, HF's uniform softmax over an all-masked row
      const values = await be.read(vc);
      const z1 = fused.attn.slice(H, 2 * H);
      for (let h0 = 0; h0 < n; h0++) {
        for (let d = 0; d < D; d++) {
          let mean = 0;
          for (let j = 0; j < S; j++) mean += values.data[((1 * kv + Math.floor(h0 / (n / kv))) * S + j) * D + d]!;
          expect(z1[h0 * D + d]).toBeCloseTo(mean / S, 4);
        }
      }
    }
    for (const t of [kc, vc, q, h, wo]) be.release(t);
    expect(be.memory().scratchInUse).toBe(scratch0);
  });
});
