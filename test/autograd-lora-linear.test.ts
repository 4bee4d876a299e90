// The CPU tape's fused LoRA layer (ops.loraLinear: one node instead of linear + linear + linear +
// scale + add) and the two rank-r products it runs on (the engine's gemm_nn and gemm_tn, with their
// JavaScript fallbacks), against float64 references; the layer in one engine call against its
// composed products, bit for bit.
import { describe, it, expect, afterAll } from "vitest";
import { Var, backward } from "../lib/autograd/var.js";
import { loraLinear, loraLinearMany } from "../lib/autograd/ops.js";
import { jsLinearKernel, matmulNN, matmulTN, type LinearKernel } from "../lib/autograd/matmul.js";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { CpuBackend } from "../lib/backend/cpu/cpu-backend.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";
import { values, maxRel } from "./tape-helpers.js";

const backends: { dispose(): void }[] = [];
afterAll(() => backends.forEach((b) => b.dispose()));

describe("rank-r products: out += s·a·b (gemmNN) and out += aᵀ·b (gemmTN)", () => {
  // N multiples of 16 run on the wasm kernel; 20 and 6 are the engine's refusals (the caller's JavaScript runs).
  // [1000, 8, 688]: enough multiply-adds for the worker threads (rows of a·b, columns of aᵀ·b split over them).
  for (const [M, J, N] of [[33, 8, 688], [1000, 8, 688], [5, 4, 16], [64, 63, 32], [7, 8, 20], [3, 2, 6]] as const) {
    it(`a[${M},${J}]·b[${J},${N}] and a[${M},${N}]ᵀ·b[${M},${J}]: engine and JavaScript within 1e-6 of float64`, async () => {
      const cpu = await CpuBackend.create();
      backends.push(cpu);
      const a = values(M * J, 1 + M), b = values(J * N, 2 + N), start = values(M * N, 3), s = 0.75;
      const nnRef = Float64Array.from(start);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let d = 0;
        for (let j = 0; j < J; j++) d += a[m * J + j]! * b[j * N + n]!;
        nnRef[m * N + n]! += s * d;
      }
      const viaJs = start.slice();
      matmulNN(a, b, viaJs, M, J, N, s);
      expect(maxRel(viaJs, nnRef)).toBeLessThan(1e-6);
      const viaEngine = start.slice();
      expect(cpu.gemmNN(a, b, viaEngine, M, J, N, s)).toBe(N % 16 === 0);
      if (N % 16 === 0) expect(maxRel(viaEngine, nnRef)).toBeLessThan(1e-6);

      // aᵀ·b: g [M, N], u [M, J] → [N, J], summed over the M rows
      const g = values(M * N, 4), u = values(M * J, 5), acc = values(N * J, 6);
      const tnRef = Float64Array.from(acc);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let j = 0; j < J; j++) tnRef[n * J + j]! += g[m * N + n]! * u[m * J + j]!;
      const tnJs = acc.slice();
      matmulTN(g, u, tnJs, M, N, J);
      expect(maxRel(tnJs, tnRef)).toBeLessThan(1e-6);
      const tnEngine = acc.slice();
      expect(cpu.gemmTN(g, u, tnEngine, M, N, J)).toBe(J % 4 === 0);
      // The kernel sums the M rows in order in float32 (the rounding grows like √M).
      if (J % 4 === 0) expect(maxRel(tnEngine, tnRef)).toBeLessThan(1e-6 * Math.max(1, Math.sqrt(M / 64)));
    });
  }
});

/** Float64 reference of y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ and every gradient for dY = g. */
function loraRef(x: Float32Array, W: Float32Array, bias: Float32Array, A: Float32Array, B: Float32Array, s: number, g: Float32Array,
  M: number, K: number, N: number, r: number) {
  const u = new Float64Array(M * r), y = new Float64Array(M * N), G = new Float64Array(M * r);
  const dx = new Float64Array(M * K), dA = new Float64Array(r * K), dB = new Float64Array(N * r);
  for (let m = 0; m < M; m++) for (let j = 0; j < r; j++) for (let k = 0; k < K; k++) u[m * r + j]! += x[m * K + k]! * A[j * K + k]!;
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let base = bias[n]!, low = 0;
    for (let k = 0; k < K; k++) base += x[m * K + k]! * W[n * K + k]!;
    for (let j = 0; j < r; j++) low += u[m * r + j]! * B[n * r + j]!;
    y[m * N + n] = base + s * low;
    for (let j = 0; j < r; j++) {
      G[m * r + j]! += s * g[m * N + n]! * B[n * r + j]!;
      dB[n * r + j]! += s * g[m * N + n]! * u[m * r + j]!;
    }
    for (let k = 0; k < K; k++) dx[m * K + k]! += g[m * N + n]! * W[n * K + k]!;
  }
  for (let m = 0; m < M; m++) for (let j = 0; j < r; j++) for (let k = 0; k < K; k++) {
    dx[m * K + k]! += G[m * r + j]! * A[j * K + k]!;
    dA[j * K + k]! += G[m * r + j]! * x[m * K + k]!;
  }
  return { y, dx, dA, dB };
}

describe("CPU tape: a LoRA layer as one node (loraLinear)", () => {
  // [M, K, N, r, scaling, weight dtype]: the default model's gate_proj shape, odd sizes (the JavaScript
  // fallbacks), a rank the gemmTN kernel refuses (r 6), and a scaling that is not a power of two.
  for (const [M, K, N, r, s, dtype] of [[40, 256, 688, 8, 2, "f16"], [9, 24, 20, 4, 0.75, "f32"], [17, 32, 48, 6, 1 / 3, "f32"]] as const) {
    for (const kernel of ["engine", "javascript"] as const) {
      it(`x[${M},${K}], W[${N},${K}] ${dtype}, r ${r}, scaling ${s.toFixed(3)} on the ${kernel} kernels: output and x/A/B gradients within 1e-5 of float64`, async () => {
        const be = await TapeBackend.create();
        backends.push(be);
        const w32 = values(N * K, 10 + N, 0.2);
        const W = dtype === "f16" ? new Tensor(f32ToF16(w32), [N, K], "f16") : new Tensor(w32, [N, K], "f32");
        const wv = W.toFloat32(); // the values the kernels multiply by
        const bias = values(N, 11);
        const x = values(M * K, 12), A = values(r * K, 13, 0.3), B = values(N * r, 14, 0.3), g = values(M * N, 15);
        const xv = Var.param(x.slice(), [M, K]), Av = Var.param(A.slice(), [r, K]), Bv = Var.param(B.slice(), [N, r]);
        const y = kernel === "engine"
          ? be.varOf(be.readSync(be.loraLinear(be.upload(be.asTensor(xv)), [{ weight: be.upload(W), bias: be.upload(new Tensor(bias, [N], "f32")),
            lora: { A: be.upload(be.asTensor(Av)), B: be.upload(be.asTensor(Bv)), scaling: s } }])[0]!))
          : loraLinear(xv, W, new Tensor(bias, [N], "f32"), Av, Bv, s, jsLinearKernel);
        backward(y, g);
        const ref = loraRef(x, wv, bias, A, B, Math.fround(s), g, M, K, N, r);
        expect(maxRel(y.value, ref.y)).toBeLessThan(1e-5);
        expect(maxRel(xv.grad!, ref.dx)).toBeLessThan(1e-5);
        expect(maxRel(Av.grad!, ref.dA)).toBeLessThan(1e-5);
        expect(maxRel(Bv.grad!, ref.dB)).toBeLessThan(1e-5);
      });
    }
  }

  // The layer in one engine call (the low-rank term added where the kernels keep y and dX) against the
  // same products composed (forwardPair + gemmNN, backwardInputPair + scaling + gemmNN): the same bits.
  // [800, 256, 688]: the low-rank term on the worker threads; [33, 688, 256]: down_proj's shape; r 6: refused, composed.
  for (const [M, K, N, r] of [[40, 256, 688, 8], [800, 256, 688, 8], [33, 688, 256, 8], [17, 256, 688, 6]] as const) {
    it(`x[${M},${K}], W[${N},${K}] f16, r ${r}, no bias: one engine call = the composed products, bit for bit`, async () => {
      const be = await TapeBackend.create();
      backends.push(be);
      const W = new Tensor(f32ToF16(values(N * K, 30 + N, 0.2)), [N, K], "f16");
      const x = values(M * K, 31), A = values(r * K, 32, 0.3), B = values(N * r, 33, 0.3), g = values(M * N, 34);
      const composed: LinearKernel = Object.assign(Object.create(be.kernel) as LinearKernel, { forwardLowRank: undefined, backwardInputLowRank: undefined });
      const run = (kernel: LinearKernel) => {
        const xv = Var.param(x.slice(), [M, K]), Av = Var.param(A.slice(), [r, K]), Bv = Var.param(B.slice(), [N, r]);
        const y = loraLinear(xv, W, undefined, Av, Bv, 2, kernel);
        backward(y, g);
        return [y.value, xv.grad!, Av.grad!, Bv.grad!];
      };
      const fused = run(be.kernel), apart = run(composed);
      const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      ["y", "dx", "dA", "dB"].forEach((name, i) => expect(bits(fused[i]!).equals(bits(apart[i]!)), name).toBe(true));
    });
  }

  it("q/k/v as one call (loraLinearMany: x read once) = each layer on its own, bit for bit, outputs and gradients", async () => {
    const be = await TapeBackend.create();
    backends.push(be);
    const M = 700, K = 256, r = 8;
    const x = values(M * K, 41);
    const layers = [256, 128, 128].map((N, i) => ({
      N, W: new Tensor(f32ToF16(values(N * K, 42 + i, 0.2)), [N, K], "f16"), A: values(r * K, 45 + i, 0.3), B: values(N * r, 48 + i, 0.3), g: values(M * N, 51 + i),
    }));
    const run = (many: boolean) => {
      const xv = Var.param(x.slice(), [M, K]);
      const vars = layers.map((l) => ({ A: Var.param(l.A.slice(), [r, K]), B: Var.param(l.B.slice(), [l.N, r]) }));
      const operands = layers.map((l, i) => ({ weight: l.W, bias: undefined, A: vars[i]!.A, B: vars[i]!.B, scaling: 2 }));
      const ys = many ? loraLinearMany(xv, operands, be.kernel) : operands.map((o) => loraLinear(xv, o.weight, o.bias, o.A, o.B, o.scaling, be.kernel));
      ys.forEach((y, i) => backward(y, layers[i]!.g)); // x's gradient accumulates over the three
      return [...ys.map((y) => y.value), xv.grad!, ...vars.flatMap((v) => [v.A.grad!, v.B.grad!])];
    };
    const together = run(true), apart = run(false);
    const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    together.forEach((t, i) => expect(bits(t).equals(bits(apart[i]!)), `output ${i}`).toBe(true));
  });

  it("frozen A and B (the adapter under no_grad) give the trained forward's numbers and record nothing", async () => {
    const be = await TapeBackend.create();
    backends.push(be);
    const M = 6, K = 16, N = 32, r = 4;
    const W = new Tensor(values(N * K, 20), [N, K], "f32");
    const x = Var.constant(values(M * K, 21), [M, K]);
    const A = values(r * K, 22), B = values(N * r, 23);
    const trained = loraLinear(x, W, undefined, Var.param(A, [r, K]), Var.param(B, [N, r]), 2);
    const frozen = loraLinear(x, W, undefined, new Tensor(A, [r, K], "f32"), new Tensor(B, [N, r], "f32"), 2);
    expect(Array.from(frozen.value)).toEqual(Array.from(trained.value));
    expect(frozen.requiresGrad).toBe(false);
    expect(frozen.gradFn).toBeNull();
  });

  it("bad shapes: one line naming the matrix and the expected shape", () => {
    const x = Var.constant(values(8, 1), [2, 4]);
    const W = new Tensor(values(12, 2), [3, 4], "f32");
    expect(() => loraLinear(x, W, undefined, Var.param(values(10, 3), [2, 5]), Var.param(values(6, 4), [3, 2]), 1))
      .toThrow("loraLinear: lora_A has shape [2, 5], expected [*, 4]");
    expect(() => loraLinear(x, W, undefined, Var.param(values(8, 3), [2, 4]), Var.param(values(6, 4), [2, 3]), 1))
      .toThrow("loraLinear: lora_B has shape [2, 3], expected [3, 2]");
  });
});
