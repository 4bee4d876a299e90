// The CPU tape's fast paths: trainable weights on the wasm gemm, siluMul on the wasm silu, and
// gradient arrays reused in place (copy on write when one array reaches two vars).
import { describe, it, expect, afterAll } from "vitest";
import { Var, backward } from "../lib/autograd/var.js";
import { gradCheck } from "../lib/autograd/gradcheck.js";
import { add, scale, rmsNorm, siluMul, reshape } from "../lib/autograd/ops.js";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { CpuBackend, CpuTensor } from "../lib/backend/cpu/cpu-backend.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { values, maxRel } from "./tape-helpers.js";

/** Float64 reference of y = x·wᵀ and its gradients for dY = g. */
function linearRef(x: Float32Array, w: Float32Array, g: Float32Array, M: number, K: number, N: number) {
  const y = new Float64Array(M * N), dx = new Float64Array(M * K), dw = new Float64Array(N * K);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      y[m * N + n]! += x[m * K + k]! * w[n * K + k]!;
      dx[m * K + k]! += g[m * N + n]! * w[n * K + k]!;
      dw[n * K + k]! += g[m * N + n]! * x[m * K + k]!;
    }
  }
  return { y, dx, dw };
}

const backends: { dispose(): void }[] = [];
afterAll(() => backends.forEach((b) => b.dispose()));

describe("CPU tape: trainable weights on the wasm gemm", () => {
  // Shapes on both sides of the kernel's blocks: K a multiple of 8 or not, N a multiple of 4 or not, one output row.
  for (const [M, K, N] of [[37, 64, 8], [5, 16, 6], [9, 12, 8], [7, 32, 1], [64, 256, 688], [300, 8, 128]] as const) {
    it(`x[${M},${K}]·w[${N},${K}]ᵀ: the frozen weight's bits forward, gradients as float64 within 1e-6`, async () => {
      const be = await TapeBackend.create();
      backends.push(be);
      const x = values(M * K, 1 + M, 2), w = values(N * K, 2 + N, 0.5), g = values(M * N, 3 + K);
      const xv = Var.param(x.slice(), [M, K]), wv = Var.param(w.slice(), [N, K]);
      const y = be.varOf(be.readSync(be.linear(be.upload(be.asTensor(xv)), be.upload(be.asTensor(wv)))));
      const frozen = be.readSync(be.linear(be.upload(be.asTensor(xv)), be.upload(new Tensor(w.slice(), [N, K], "f32")))).toFloat32();
      expect(Array.from(y.value)).toEqual(Array.from(frozen)); // bit for bit: a weight gives one answer, trained or loaded
      backward(y, g);
      const ref = linearRef(x, w, g, M, K, N);
      expect(maxRel(y.value, ref.y)).toBeLessThan(1e-6);
      expect(maxRel(xv.grad!, ref.dx)).toBeLessThan(1e-6);
      expect(maxRel(wv.grad!, ref.dw)).toBeLessThan(1e-6);
    });
  }
});

describe("CPU tape: weight gradients from cached activation transposes", () => {
  it("one backward pass: an activation read by several weights, the same array under another row width, more activations than cache slots", async () => {
    const be = await TapeBackend.create();
    backends.push(be);
    const M = 12, K = 16, N = 10;
    const up = (v: Var) => be.upload(be.asTensor(v));
    // x1..x5 are op outputs (cacheable); x1 is also read as [2M, K/2] (same values array, another K).
    const ps = [11, 12, 13, 14, 15].map((seed) => Var.param(values(M * K, seed), [M, K]));
    const xs = ps.map((p) => scale(p, 1));
    const ws = [0, 1, 2, 3, 4, 5].map((i) => Var.param(values(N * K, 20 + i, 0.5), [N, K]));
    const wr = Var.param(values((N / 2) * (K / 2), 30, 0.5), [N / 2, K / 2]);
    const outs = ws.map((w, i) => be.varOf(be.readSync(be.linear(up(xs[i % 5]!), up(w)))));
    const r = be.varOf(be.readSync(be.linear(up(reshape(xs[0]!, [2 * M, K / 2])), up(wr)))); // [2M, N/2]
    const total = outs.reduce((a, o) => add(a, o), reshape(r, [M, N]));
    const g = values(M * N, 40);
    backward(total, g);
    ws.forEach((w, i) => expect(maxRel(w.grad!, linearRef(ps[i % 5]!.value, w.value, g, M, K, N).dw)).toBeLessThan(1e-6));
    expect(maxRel(wr.grad!, linearRef(ps[0]!.value, wr.value, g, 2 * M, K / 2, N / 2).dw)).toBeLessThan(1e-6);
    expect(maxRel(ps[0]!.grad!, (() => {
      // x1's gradient: Σ over the weights that read it, both views.
      const d = new Float64Array(M * K);
      for (const i of [0, 5]) linearRef(ps[0]!.value, ws[i]!.value, g, M, K, N).dx.forEach((v, j) => { d[j]! += v; });
      linearRef(ps[0]!.value, wr.value, g, 2 * M, K / 2, N / 2).dx.forEach((v, j) => { d[j]! += v; });
      return d;
    })())).toBeLessThan(1e-6);
  });
});

describe("CPU tape: siluMul", () => {
  it("forward is the CPU backend's kernel bit for bit; gradients as float64 within 1e-6", async () => {
    const be = await TapeBackend.create();
    const cpu = await CpuBackend.create();
    backends.push(be, cpu);
    const n = 4 * 301; // not a multiple of the kernel's 4 lanes per row... and a few hundred values
    const gate = values(n, 7, 12), up = values(n, 8, 3), g = values(n, 9);
    gate[0] = 0; gate[1] = -100; gate[2] = 100; // sigmoid's edges: 1/2 at 0, silu ≈ 0 and ≈ x
    const gv = Var.param(gate.slice(), [4, 301]), uv = Var.param(up.slice(), [4, 301]);
    const y = be.varOf(be.readSync(be.siluMul(be.upload(be.asTensor(gv)), be.upload(be.asTensor(uv)))));
    const plain = (cpu.siluMul(new CpuTensor(gate, [4, 301], "f32"), new CpuTensor(up, [4, 301], "f32")) as CpuTensor).data as Float32Array;
    expect(Array.from(y.value)).toEqual(Array.from(plain));
    backward(y, g);
    const dGate = new Float64Array(n), dUp = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const x = gate[i]!, s = 1 / (1 + Math.exp(-x));
      dGate[i] = g[i]! * up[i]! * s * (1 + x * (1 - s));
      dUp[i] = g[i]! * x * s;
    }
    expect(maxRel(gv.grad!, dGate)).toBeLessThan(1e-6);
    expect(maxRel(uv.grad!, dUp)).toBeLessThan(1e-6);
    expect(gv.grad![0]).toBeCloseTo(g[0]! * up[0]! * 0.5, 7);
  });
});

describe("gradient arrays: reused in place only where nothing else holds them", () => {
  it("one array handed to two leaves: each gets its own; the caller's gradOutput is left as it was", () => {
    const p = Var.param(values(6, 1), [6]), q = Var.param(values(6, 2), [6]);
    const go = values(6, 3);
    const before = go.slice();
    backward(add(p, q), go);
    expect(p.grad).not.toBe(q.grad);
    expect(p.grad).not.toBe(go);
    expect(Array.from(p.grad!)).toEqual(Array.from(before));
    p.grad!.fill(0); // an optimizer scaling one grad in place must not touch the other
    expect(Array.from(q.grad!)).toEqual(Array.from(before));
    expect(Array.from(go)).toEqual(Array.from(before));
  });

  it("in-place backwards (scale, rmsNorm, siluMul) behind shared and accumulated gradients match finite differences", () => {
    // x feeds scale, rmsNorm and siluMul; add hands one array to both of its inputs; h is used twice.
    const r = gradCheck(([x, w, u]) => {
      const h = siluMul(x!, u!);
      const a = add(scale(x!, 0.7), rmsNorm(x!, w!, 1e-5));
      return add(add(a, h), scale(h, -1.3));
    }, [{ value: values(12, 4), shape: [3, 4] }, { value: values(4, 5), shape: [4] }, { value: values(12, 6), shape: [3, 4] }]);
    expect(r.maxRelError).toBeLessThan(1e-2);
  });

  it("a var used twice by one op (add(x, x)) gets twice the gradient", () => {
    const x = Var.param(values(5, 7), [5]);
    const go = values(5, 8);
    backward(scale(add(x, x), 1), go);
    for (let i = 0; i < 5; i++) expect(x.grad![i]).toBe(2 * go[i]!);
  });
});
