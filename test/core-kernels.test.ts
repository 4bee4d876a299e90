/**
 * CPU kernels: the wasm SIMD matmuls (f32/f16/bf16 weights, gemv and gemm,
 * remainder rows, thread split) against a float64 reference on the widened
 * weights; the JavaScript fallback path of the whole forward; the wasm heap.
 */
import { describe, it, expect } from "vitest";
import * as path from "node:path";
import { createLinearEngine, JsLinearEngine, type LinearEngine } from "../lib/backend/cpu/linear-engine.js";
import { WasmLinearEngine } from "../lib/backend/cpu/wasm-engine.js";
import { WasmHeap } from "../lib/backend/cpu/wasm-heap.js";
import { wasm } from "../lib/backend/cpu/wasm-api.js";
import { fusedMultiplyAdd } from "../lib/backend/cpu/wasm-asm.js";
import { CpuBackend } from "../lib/backend/cpu/cpu-backend.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, type DType } from "../lib/tensor/dtype.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { HF, golden, maskedMaxDiff } from "./core-helpers.js";

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s / 4294967296 - 0.5) * scale;
  });
}

/** y = x @ W^T in float64 on the weights as stored (widened exactly). */
function reference(x: Float32Array, M: number, K: number, w: Float32Array | Uint16Array, dtype: DType, N: number): Float64Array {
  const wf = dtype === "f32" ? (w as Float32Array) : dtype === "f16" ? f16ToF32(w as Uint16Array) : bf16ToF32(w as Uint16Array);
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let a = 0;
    for (let k = 0; k < K; k++) a += x[m * K + k]! * wf[n * K + k]!;
    y[m * N + n] = a;
  }
  return y;
}

function relErr(got: Float32Array, ref: Float64Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) { num = Math.max(num, Math.abs(got[i]! - ref[i]!)); den = Math.max(den, Math.abs(ref[i]!)); }
  return num / den;
}

async function check(engine: LinearEngine, M: number, K: number, N: number, dtype: DType, bias = false) {
  const x = rand(M * K, 7 + M, 2);
  const wf = rand(N * K, 11 + N, 0.2);
  wf[3] = 1e-6; wf[4] = -3e-8; wf[5] = 0; // f16 subnormals and zero
  const stored = dtype === "f32" ? wf : dtype === "f16" ? f32ToF16(wf) : f32ToBf16(wf);
  const w = engine.adopt(stored, dtype);
  const b = bias ? rand(N, 3) : undefined;
  const y = new Float32Array(M * N);
  engine.run(x, M, K, [{ w, dtype, N, bias: b, y }]);
  const ref = reference(x, M, K, stored, dtype, N);
  if (b) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) { const i = m * N + n; ref[i] = ref[i]! + b[n]!; }
  return relErr(y, ref);
}

describe("wasm matmul kernels", async () => {
  const single = await WasmLinearEngine.create(1);
  const threaded = await WasmLinearEngine.create(3);
  it("are available on this runtime", () => {
    expect(single).toBeDefined();
    expect(threaded!.threads).toBe(3);
  });
  it("multiply-accumulate fused (relaxed SIMD, turned on by V8's flag on Node 20), one thread or several alike", () => {
    expect(fusedMultiplyAdd()).toBe(true);
    // lane 0 sums 1·(−1 − 2⁻¹¹) then a·a with a = 1 + 2⁻¹², a² = 1 + 2⁻¹¹ + 2⁻²⁴: exactly 2⁻²⁴ when
    // fused, 0 when a² is rounded first (to 1 + 2⁻¹¹, the tie to even)
    const K = 8, N = 4096, a = 1 + 2 ** -12; // 128 KiB of weights: split over the threads
    const x = Float32Array.from([1, 0, 0, 0, a, 0, 0, 0]);
    const w = new Float32Array(N * K);
    for (let n = 0; n < N; n++) { w[n * K] = -1 - 2 ** -11; w[n * K + 4] = a; }
    for (const M of [1, 2, 3]) {
      for (const e of [single!, threaded!]) {
        const y = new Float32Array(M * N);
        e.run(Float32Array.from({ length: M * K }, (_, i) => x[i % K]!), M, K, [{ w: e.adopt(w, "f32"), dtype: "f32", N, y }]);
        expect(new Set(y)).toEqual(new Set([2 ** -24]));
      }
    }
  });
  for (const dtype of ["f32", "f16", "bf16"] as const) {
    for (const [M, K, N] of [[1, 64, 36], [1, 256, 131], [3, 96, 10], [8, 200, 517]] as const) {
      it(`${dtype} M=${M} K=${K} N=${N} (1 and 3 threads)`, async () => {
        expect(await check(single!, M, K, N, dtype, N === 10)).toBeLessThan(1e-6);
        expect(await check(threaded!, M, K, N, dtype)).toBeLessThan(1e-6);
      });
    }
  }
  it("split across threads gives the same numbers as one thread (large N triggers the split)", async () => {
    const K = 512, N = 1024;
    const x = rand(K, 5);
    const w16 = f32ToF16(rand(N * K, 9, 0.1));
    const ys = [single!, threaded!].map((e) => {
      const y = new Float32Array(N);
      e.run(x, 1, K, [{ w: e.adopt(w16, "f16"), dtype: "f16", N, y }]);
      return y;
    });
    expect(Array.from(ys[1]!)).toEqual(Array.from(ys[0]!));
  });
  it("falls back to JavaScript when K is not a multiple of 8", async () => {
    expect(await check(single!, 2, 30, 9, "f16")).toBeLessThan(1e-6);
  });
  it("the JavaScript engine agrees", async () => {
    expect(await check(new JsLinearEngine(), 3, 40, 7, "bf16", true)).toBeLessThan(1e-6);
    expect((await createLinearEngine({ wasm: false })).description).toMatch(/javascript/);
  });
  it("silu_mul (float32 exp) is within 4 ulp of float64 silu(g)·u, and tiny where exp is clamped", () => {
    const n = 20_003; // not a multiple of 4: the padded tail
    const g = rand(n, 11, 60); // |g| < 30
    g.set([0, -0, 87.5, -87.5, 120, -120, 1e-30, -1e-30, 88, -88], 0);
    const u = rand(n, 12, 4);
    const out = new Float32Array(n);
    expect(single!.siluMul(g, u, out)).toBe(true);
    let worstUlp = 0;
    for (let i = 0; i < n; i++) {
      const ref = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
      if (Math.abs(g[i]!) > 87) {
        expect(Math.abs(out[i]! - ref)).toBeLessThan(Math.abs(ref) * 1e-6 + 1e-30);
        continue;
      }
      const ulp = Math.abs(out[i]! - ref) / Math.max(Math.abs(ref) * 2 ** -23, 2 ** -149);
      worstUlp = Math.max(worstUlp, ulp);
    }
    expect(worstUlp).toBeLessThan(4);
    expect(worstUlp).toBeGreaterThan(0); // float32 math really ran (the reference is float64)
  });
});

describe("wasm heap", () => {
  it("reuses and coalesces freed blocks, and grows the memory when full", () => {
    const memory = new wasm!.Memory({ initial: 1, maximum: 100, shared: true });
    const heap = new WasmHeap(memory, 64);
    const a = heap.alloc(1000), b = heap.alloc(1000), c = heap.alloc(1000);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(a % 64).toBe(0);
    heap.release(a, 1000);
    heap.release(b, 1000);
    expect(heap.alloc(2000)).toBe(a); // a and b coalesced
    const big = heap.alloc(200_000);
    expect(big + 200_000).toBeLessThanOrEqual(memory.buffer.byteLength);
    heap.release(c, 1000);
    expect(() => heap.alloc(10 * 2 ** 20)).toThrow(/cannot grow the WebAssembly memory/);
  });
});

describe("the JavaScript kernels alone reach parity too", () => {
  it("tiny-llama-gqa-llama3rope, left-padded batch, without wasm", async () => {
    const backend = await CpuBackend.create({ wasm: false });
    const model = await LlamaForCausalLM.fromPretrained(path.join(HF, "tiny-llama-gqa-llama3rope"), { backend });
    const g = golden("tiny-llama-gqa-llama3rope");
    const c = g.json.cases.batch_left_padded!;
    const out = await model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, outputAttentions: true });
    expect(maskedMaxDiff(out.logits, g.tensors.read("batch_left_padded.logits"), c.attention_mask, 1)).toBeLessThanOrEqual(1e-4);
    expect(maskedMaxDiff(out.attentions![2]!, g.tensors.read("batch_left_padded.attentions.2"), c.attention_mask, 2)).toBeLessThanOrEqual(1e-4);
  });
});

describe("non-finite f16 weights", () => {
  it("stay exact (inf and NaN propagate as in torch)", async () => {
    const e = (await WasmLinearEngine.create(1))!;
    const K = 16, N = 8;
    const wf = rand(N * K, 4, 0.1);
    wf[2 * K + 3] = Infinity; // row 2
    wf[5 * K + 1] = NaN; // row 5
    const w = e.adopt(f32ToF16(wf), "f16");
    const y = new Float32Array(N);
    e.run(rand(K, 8).map(Math.abs), 1, K, [{ w, dtype: "f16", N, y }]);
    expect(y[2]).toBe(Infinity);
    expect(Number.isNaN(y[5])).toBe(true);
    expect(Number.isFinite(y[0]!)).toBe(true);
  });
});
