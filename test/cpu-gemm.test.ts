// The CPU backend's small-matrix product on the wasm SIMD kernel (used by the autograd tape's
// attention): any M, N, K (K padded to 8 and N to 4 inside), offsets, accumulation — equal to the
// blocked JavaScript kernel up to float32 summation order.
import { describe, it, expect, afterAll } from "vitest";
import { CpuBackend } from "../lib/backend/cpu/cpu-backend.js";
import { matmulABt } from "../lib/autograd/matmul.js";

function noise(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

describe("CpuBackend.gemm (wasm)", () => {
  let be: CpuBackend | undefined;
  afterAll(() => be?.dispose());

  it("matches matmulABt for ragged shapes, offsets and accumulation", async () => {
    be = await CpuBackend.create();
    const cases: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [49, 49, 32], [20, 16, 49], [7, 33, 9], [64, 4, 8]];
    let ran = 0;
    for (const [M, N, K] of cases) {
      for (const accumulate of [false, true]) {
        const aOff = 3, bOff = 5, outOff = 2;
        const a = noise(aOff + M * K, M * 7 + K), b = noise(bOff + N * K, N * 11 + K);
        const start = noise(outOff + M * N, 99);
        const want = start.slice(), got = start.slice();
        matmulABt(a, b, want, M, N, K, accumulate, aOff, bOff, outOff);
        if (!be.gemm(a, b, got, M, N, K, accumulate, aOff, bOff, outOff)) continue; // no wasm engine: nothing to compare
        ran++;
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 * Math.max(1, K));
        // Elements before the output offset are untouched.
        expect(Array.from(got.subarray(0, outOff))).toEqual(Array.from(start.subarray(0, outOff)));
      }
    }
    // This machine's node has WebAssembly SIMD: the wasm path must actually run.
    expect(ran).toBe(cases.length * 2);
  });
});
