/**
 * linearMany on WebGPU (q/k/v, gate/up as one GEMV dispatch) against linear
 * run per weight: bit-identical outputs (the same kernel body and summation
 * order), in every weight format and both f16 modes, for vec4 and scalar K,
 * decode-sized M, and the fallbacks (bias, prefill-sized M) unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { f32ToBf16, f32ToF16 } from "../lib/tensor/dtype.js";
import { randn, rng } from "./gpu-reference.js";

const modes = ["native", "packed"] as const;
const backends = new Map<string, WebGpuBackend>();
beforeAll(async () => {
  for (const m of modes) backends.set(m, await createWebGpuBackend({ f16: m }));
});
afterAll(() => backends.forEach((b) => b.dispose()));

function weight(values: Float32Array, shape: number[], dtype: "f32" | "f16" | "bf16"): Tensor {
  if (dtype === "f16") return new Tensor(f32ToF16(values), shape, "f16");
  if (dtype === "bf16") return new Tensor(f32ToBf16(values), shape, "bf16");
  return new Tensor(values, shape, "f32");
}

describe.each(modes)("linearMany fused GEMV (f16 %s)", (mode) => {
  it.each([
    { dtype: "f16", M: 1, K: 64, Ns: [64, 32, 32] },
    { dtype: "f32", M: 3, K: 36, Ns: [20, 12] },
    { dtype: "bf16", M: 8, K: 30, Ns: [9, 7, 5] },
    { dtype: "f16", M: 2, K: 258, Ns: [5, 300] },
  ] as const)("$dtype M=$M K=$K N=$Ns equals linear per weight, one dispatch", async ({ dtype, M, K, Ns }) => {
    const be = backends.get(mode)!;
    const r = rng(M * 1000 + K);
    const x = be.upload(new Tensor(randn(r, M * K), [1, M, K]));
    const ws = Ns.map((N) => be.upload(weight(randn(r, N * K, 0.5), [N, K], dtype)));
    const before = be.counters.dispatches;
    const fused = be.linearMany(x, ws);
    const fusedValues = await Promise.all(fused.map((t) => be.read(t))); // deferred until read: all of them in one GEMV
    expect(be.counters.dispatches - before).toBe(1);
    for (let i = 0; i < ws.length; i++) {
      const one = await be.read(be.linear(x, ws[i]!));
      const got = fusedValues[i]!;
      expect(got.shape).toEqual([1, M, Ns[i]!]);
      expect(Array.from(got.data)).toEqual(Array.from(one.data));
    }
  });

  it("with a bias or a prefill-sized input it runs the weights one by one", async () => {
    const be = backends.get(mode)!;
    const r = rng(5);
    const ws = [be.upload(new Tensor(randn(r, 8 * 16), [8, 16])), be.upload(new Tensor(randn(r, 4 * 16), [4, 16]))];
    const bias = be.upload(new Tensor(randn(r, 8), [8]));
    const x1 = be.upload(new Tensor(randn(r, 16), [1, 1, 16]));
    let before = be.counters.dispatches;
    const withBias = be.linearMany(x1, ws, [bias, undefined]);
    const biasValues = await be.read(withBias[0]!);
    await be.read(withBias[1]!);
    expect(be.counters.dispatches - before).toBe(2);
    expect(Array.from(biasValues.data)).toEqual(Array.from((await be.read(be.linear(x1, ws[0]!, bias))).data));
    const x20 = be.upload(new Tensor(randn(r, 20 * 16), [1, 20, 16]));
    before = be.counters.dispatches;
    be.linearMany(x20, ws);
    expect(be.counters.dispatches - before).toBe(2);
  });
});
