/**
 * WebGPU kernels for weights kept in their ggml blocks (gpu/ops/quant.ts), on
 * every type, in both f16 modes (native shader-f16 and packed, the H100 path):
 *  - the embedding gather gives each weight bit for bit as lib/io/gguf-dequant.ts
 *    (the per-weight exactness of the WGSL dequantizers);
 *  - GEMV and tiled products against dequantize-then-f32 (float64 reference)
 *    on odd shapes: rows not a multiple of the workgroup, an odd block count
 *    (rows starting at unaligned bytes), T = 1, 7, 129;
 *  - the input gradient g·W against the same reference.
 * Weights come from the bit-exact quantizers of lib/quant/. Lavapipe in CI: small shapes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { quantLinearInputGrad } from "../gpu/ops/quant.js";
import type { GpuTensor } from "../gpu/buffers.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { QUANT_LAYOUT, QUANT_TYPES, QuantizedTensor, dequantizeRows, type QuantType } from "../lib/tensor/quantized.js";
import { quantizeRows, type QuantizedType } from "../lib/quant/quantize.js";
import { randn, refLinear, relErr, rng } from "./gpu-reference.js";

type Mode = "native" | "packed";
const modes: Mode[] = ["native", "packed"];
const backends = new Map<Mode, WebGpuBackend>();

beforeAll(async () => {
  // Packed mode without subgroups (the H100 path), native with them: both reductions are covered.
  for (const m of modes) backends.set(m, await createWebGpuBackend({ f16: m, subgroups: m === "native" }));
});
afterAll(() => {
  for (const be of backends.values()) be.dispose();
});

/** A random [N, K] matrix quantized to `type`, rows of varied scale and offset (so mins and scales vary), and its exact values. */
function quantWeight(type: QuantType, N: number, K: number, seed: number): { q: QuantizedTensor; exact: Float32Array } {
  const r = rng(seed);
  const f = randn(r, N * K);
  for (let n = 0; n < N; n++) {
    const s = 0.05 + 2 * r(), off = n % 3 === 0 ? 0.7 * s : 0;
    for (let k = 0; k < K; k++) f[n * K + k] = f[n * K + k]! * s + off;
  }
  const bytes = quantizeRows(QUANT_LAYOUT[type].ggml as QuantizedType, f, K);
  const q = new QuantizedTensor(type, bytes, [N, K]);
  return { q, exact: dequantizeRows(type, bytes, K, 0, N, new Float32Array(N * K)) };
}

async function values(be: WebGpuBackend, t: unknown): Promise<Float32Array> {
  return (await be.read(t as GpuTensor)).data as Float32Array;
}

describe.each(modes)("quantized WebGPU kernels (f16 %s)", (mode) => {
  const be = () => backends.get(mode)!;

  for (const type of QUANT_TYPES) {
    const blk = QUANT_LAYOUT[type].elems;
    // K: an odd number of blocks (a row of 3 × 18 B starts at byte 54: unaligned), then an even one.
    const K1 = blk === 32 ? 96 : 256, K2 = blk === 32 ? 160 : 512;

    it(`${type}: the embedding gather gives every weight bit for bit; read() gives the dequantized matrix`, async () => {
      const V = 37;
      const { q, exact } = quantWeight(type, V, K1, 7);
      const table = be().uploadQuantized(q);
      expect(table.quant).toBe(type);
      const ids = Int32Array.from({ length: V + 3 }, (_, i) => (i * 11) % V);
      const got = await values(be(), be().embedding(table, ids, 2, ids.length / 2));
      const want = new Float32Array(ids.length * K1);
      ids.forEach((id, i) => want.set(exact.subarray(id * K1, (id + 1) * K1), i * K1));
      expect(got).toEqual(want);
      expect(await values(be(), table)).toEqual(exact);
    });

    // [M, K, N]: T = 1, 7 and 129 rows; N = 37 and 70 are not multiples of the GEMV's 4 rows nor the tile's 64.
    const shapes: [number, number, number][] = [[1, K1, 37], [7, K2, 70], [129, K1, 37]];
    for (const [M, K, N] of shapes) {
      for (const kernel of ["gemv", "tiled"] as const) {
        it(`${type}: linear [${M}x${K}]·[${N}x${K}]ᵀ via ${kernel}${N === 70 ? " with bias" : ""}`, async () => {
          const r = rng(M * 31 + N + K);
          const x = randn(r, M * K);
          const { q, exact } = quantWeight(type, N, K, M + N + K);
          const b = N === 70 ? randn(r, N) : undefined;
          const y = be().linear(be().upload(new Tensor(x, [M, K])), be().uploadQuantized(q), b && be().upload(new Tensor(b, [N])), { kernel });
          expect(y.shape).toEqual([M, N]);
          expect(relErr(await values(be(), y), refLinear(x, exact, b, M, K, N))).toBeLessThan(1e-6);
        });
      }
    }

    it(`${type}: input gradient g·W [129x70]·[70x${K2}] dequantizes in the kernel`, async () => {
      const M = 129, N = 70, K = K2;
      const r = rng(3);
      const g = randn(r, M * N);
      const { q, exact } = quantWeight(type, N, K, 11);
      // Wᵀ as a dense [K, N] matrix: g·W = g·(Wᵀ)ᵀ in refLinear's terms.
      const wt = new Float32Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = exact[n * K + k]!;
      const dx = quantLinearInputGrad(be().runtime, be().upload(new Tensor(g, [M, N])) as GpuTensor, be().uploadQuantized(q) as GpuTensor);
      expect(dx.shape).toEqual([M, K]);
      expect(relErr(await values(be(), dx), refLinear(g, wt, undefined, M, N, K))).toBeLessThan(1e-6);
    });
  }

  it("an op without quantized kernels names the weight's type instead of misreading its blocks", () => {
    const { q } = quantWeight("q4_0", 1, 32, 1);
    const w = be().uploadQuantized(q);
    const x = be().upload(new Tensor(new Float32Array(32), [1, 32]));
    expect(() => be().rmsNorm(x, w, 1e-5)).toThrow("webgpu: this op cannot read a q4_0 weight [1, 32] (only linear and embedding can)");
  });
});
