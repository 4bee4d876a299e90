// The CPU tape's elementwise backwards on the wasm SIMD kernels (silu_mul_backward, rms_norm_backward,
// rope_backward; and the forwards rope_forward and rms_norm_rows, bit for bit against splitHeadsInto and
// rmsNormInto) and their JavaScript fallbacks, each against a float64 reference: lengths the kernels' 4 lanes
// do not divide, one row, sigmoid's edges (0, ±100, the exp clamp at ±87..88), zero gradients, a zero row and a
// large one, head sizes the kernel declines.
import { describe, it, expect, afterAll } from "vitest";
import { Var, backward } from "../lib/autograd/var.js";
import { jsRmsNorm, jsSiluMul } from "../lib/autograd/ops.js";
import { jsRope, splitHeads } from "../lib/autograd/attention-ops.js";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { CpuBackend, CpuTensor } from "../lib/backend/cpu/cpu-backend.js";
import { rmsNormInto, splitHeadsInto } from "../lib/tensor/ops.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { values, maxRel } from "./tape-helpers.js";

/** Every third gradient zero (the kernels must give exact zeros there too). */
function gradients(n: number, seed: number): Float32Array {
  const g = values(n, seed);
  for (let i = 0; i < n; i += 3) g[i] = 0;
  return g;
}

/** The worst |got − want| / (1e-6 · tolerance scale) over the elements: below 1 passes. */
function worst(got: Float32Array, want: Float64Array, scale: Float64Array, floor = 1e-30): number {
  let w = 0;
  for (let i = 0; i < want.length; i++) w = Math.max(w, Math.abs(got[i]! - want[i]!) / (1e-6 * scale[i]! + floor));
  return w;
}

const backends: { dispose(): void }[] = [];
afterAll(() => backends.forEach((b) => b.dispose()));

async function cpuAndTape(): Promise<{ cpu: CpuBackend; be: TapeBackend; wasm: boolean }> {
  const cpu = await CpuBackend.create();
  const be = await TapeBackend.create(cpu);
  backends.push(cpu);
  return { cpu, be, wasm: cpu.description.includes("wasm") };
}

/** Gates covering sigmoid's edges: 0 (s = 1/2), −0, ±100 (beyond the exp clamp), around the clamp, tiny, silu′'s zero. */
const EDGES = [0, -0, 100, -100, 87.5, -87.5, 88.5, -88.5, 1e-30, -1e-30, -1.2784645, 20, -20, 3, -3];

function siluInputs(n: number, seed: number) {
  const gate = values(n, seed, 12), up = values(n, seed + 1, 3), g = gradients(n, seed + 2);
  gate.set(EDGES.slice(0, n));
  return { gate, up, g };
}

/** d/dgate and d/dup of silu(gate)·up for gradient g in float64, and each element's tolerance scale. */
function siluRef(gate: Float32Array, up: Float32Array, g: Float32Array) {
  const n = gate.length;
  const dGate = new Float64Array(n), dUp = new Float64Array(n), gateScale = new Float64Array(n), upScale = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = gate[i]!, s = 1 / (1 + Math.exp(-x)), silu = x * s;
    dGate[i] = g[i]! * up[i]! * (s + silu * (1 - s));
    dUp[i] = g[i]! * silu;
    // s + silu·(1 − s) cancels near its zero (x ≈ −1.28): the error scales with its terms, not with it.
    gateScale[i] = Math.abs(g[i]! * up[i]!) * (s + Math.abs(silu * (1 - s)));
    upScale[i] = Math.abs(dUp[i]!);
  }
  return { dGate, dUp, gateScale, upScale };
}

describe("siluMul backward: the wasm kernel and the JavaScript fallback against float64", () => {
  // [503, 687]: long enough for the forward and backward to be split over the worker threads.
  for (const [rows, cols] of [[1, 1], [1, 3], [1, 7], [3, 5], [4, 301], [2, 688], [503, 687]] as const) {
    const n = rows * cols;
    it(`[${rows}, ${cols}] through the CPU tape`, async () => {
      const { be } = await cpuAndTape();
      const { gate, up, g } = siluInputs(n, 10 + n);
      const gv = Var.param(gate.slice(), [rows, cols]), uv = Var.param(up.slice(), [rows, cols]);
      const y = be.varOf(be.readSync(be.siluMul(be.upload(be.asTensor(gv)), be.upload(be.asTensor(uv)))));
      backward(y, g);
      const ref = siluRef(gate, up, g);
      expect(worst(gv.grad!, ref.dGate, ref.gateScale)).toBeLessThan(1);
      expect(worst(uv.grad!, ref.dUp, ref.upScale)).toBeLessThan(1);
      expect(maxRel(gv.grad!, ref.dGate)).toBeLessThan(1e-6);
      expect(maxRel(uv.grad!, ref.dUp)).toBeLessThan(1e-6);
    });
  }

  it("the engine's kernel directly: separate outputs, dUp over g, one output only; and the JavaScript fallback", async () => {
    const { cpu, wasm } = await cpuAndTape();
    const n = 4 * 77 + 3;
    const { gate, up, g } = siluInputs(n, 3);
    const ref = siluRef(gate, up, g);
    const dGate = new Float32Array(n), dUp = new Float32Array(n);
    expect(cpu.siluMulBackward(gate, up, g, dGate, dUp)).toBe(wasm);
    if (wasm) {
      expect(worst(dGate, ref.dGate, ref.gateScale)).toBeLessThan(1);
      expect(worst(dUp, ref.dUp, ref.upScale)).toBeLessThan(1);
      const inPlace = g.slice(), onlyGate = new Float32Array(n);
      expect(cpu.siluMulBackward(gate, up, inPlace, onlyGate, inPlace)).toBe(true);
      expect(Array.from(onlyGate)).toEqual(Array.from(dGate));
      expect(Array.from(inPlace)).toEqual(Array.from(dUp));
      const upOnly = g.slice();
      expect(cpu.siluMulBackward(gate, up, upOnly, null, upOnly)).toBe(true);
      expect(Array.from(upOnly)).toEqual(Array.from(dUp));
    }
    const jsGate = new Float32Array(n), jsUp = g.slice();
    jsSiluMul.backward(gate, up, jsUp, jsGate, jsUp);
    expect(worst(jsGate, ref.dGate, ref.gateScale)).toBeLessThan(1);
    expect(worst(jsUp, ref.dUp, ref.upScale)).toBeLessThan(1);
  });
});

/** x [rows, H]: random, then a zero row (rstd = 1/√eps) and a large one (|x| ~ 100) when there are rows for them. */
function normInputs(rows: number, H: number, seed: number) {
  const x = values(rows * H, seed, 3), w = values(H, seed + 1, 2), g = gradients(rows * H, seed + 2);
  if (rows > 1) x.fill(0, H, 2 * H);
  if (rows > 2) for (let i = 2 * H; i < 3 * H; i++) x[i] = x[i]! * 40;
  return { x, w, g };
}

/** RMSNorm's gradients in float64 (rstd from x in float64) and each element's tolerance scale. */
function normRef(x: Float32Array, w: Float32Array, g: Float32Array, H: number, eps: number) {
  const rows = x.length / H;
  const dx = new Float64Array(x.length), dw = new Float64Array(H), dxScale = new Float64Array(x.length), dwScale = new Float64Array(H);
  for (let r = 0; r < rows; r++) {
    const o = r * H;
    let ss = 0;
    for (let h = 0; h < H; h++) ss += x[o + h]! ** 2;
    const rs = 1 / Math.sqrt(ss / H + eps);
    let dot = 0, absDot = 0;
    for (let h = 0; h < H; h++) {
      const t = g[o + h]! * w[h]! * x[o + h]! * rs;
      dot += t;
      absDot += Math.abs(t);
    }
    for (let h = 0; h < H; h++) {
      const n = x[o + h]! * rs;
      dx[o + h] = rs * (g[o + h]! * w[h]! - n * (dot / H));
      // The kernel sums the row's mean in float32, H/4 terms per lane: up to ~64 roundings of 6e-8 on Σ|terms| at
      // H = 256, hence 4 · 1e-6 on that part (times |n|, as dx uses it).
      dxScale[o + h] = rs * (Math.abs(g[o + h]! * w[h]!) + Math.abs(n) * (absDot / H) * 4);
      dw[h]! += g[o + h]! * n;
      dwScale[h]! += Math.abs(g[o + h]! * n);
    }
  }
  return { dx, dw, dxScale, dwScale };
}

describe("rmsNorm backward: the wasm kernel and the JavaScript fallback against float64", () => {
  const eps = 1e-5;
  // H = 6: the kernel wants a multiple of 4 and declines; the tape falls back to JavaScript.
  for (const [rows, H] of [[1, 4], [3, 12], [5, 256], [37, 64], [1, 256], [4, 6]] as const) {
    for (const trainable of [true, false]) {
      it(`[${rows}, ${H}], ${trainable ? "trainable" : "frozen"} weight, through the CPU tape`, async () => {
        const { be } = await cpuAndTape();
        const { x, w, g } = normInputs(rows, H, rows * H + (trainable ? 1 : 0));
        const xv = Var.param(x.slice(), [rows, H]), wv = Var.param(w.slice(), [H]);
        const weight = trainable ? be.upload(be.asTensor(wv)) : be.upload(new Tensor(w.slice(), [H], "f32"));
        const y = be.varOf(be.readSync(be.rmsNorm(be.upload(be.asTensor(xv)), weight, eps)));
        backward(y, g);
        const ref = normRef(x, w, g, H, eps);
        expect(worst(xv.grad!, ref.dx, ref.dxScale)).toBeLessThan(1);
        expect(maxRel(xv.grad!, ref.dx)).toBeLessThan(1e-6);
        if (trainable) {
          expect(worst(wv.grad!, ref.dw, ref.dwScale)).toBeLessThan(1);
          expect(maxRel(wv.grad!, ref.dw)).toBeLessThan(1e-6);
        } else expect(wv.grad).toBeNull();
      });
    }
  }

  it("the forward on the engine's kernel (rms_norm_rows) = rmsNormInto, bit for bit: outputs and rstd", async () => {
    const { cpu } = await cpuAndTape();
    // one row, an odd count (the pair loop's last row), rows split over the threads, a zero row, big values
    for (const [rows, H, eps, amp] of [[1, 16, 1e-5, 1], [3, 256, 1e-6, 3], [1300, 256, 1e-5, 2], [41, 688, 1e-5, 1e3], [2, 12, 1e-5, 1]] as const) {
      const x = values(rows * H, rows + H, amp), w = values(H, H + 1, 1.5);
      x.fill(0, 0, H); // row 0: rstd = 1/√eps
      const rstd = new Float32Array(rows), want = new Float32Array(rows);
      const got = cpu.rmsNormValues(x, w, eps, H, rstd);
      const ref = rmsNormInto(x, w, eps, H, new Float32Array(rows * H), want);
      const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      expect(bits(got).equals(bits(ref)), `[${rows}, ${H}] out`).toBe(true);
      expect(bits(rstd).equals(bits(want)), `[${rows}, ${H}] rstd`).toBe(true);
    }
  });

  it("the engine's kernel directly: dx apart or over g, dw added to, one output only; and the JavaScript fallback", async () => {
    const { cpu, wasm } = await cpuAndTape();
    const rows = 9, H = 20;
    const { x, w, g } = normInputs(rows, H, 5);
    const rstd = new Float32Array(rows);
    rmsNormInto(x, w, eps, H, new Float32Array(x.length), rstd);
    const ref = normRef(x, w, g, H, eps);
    const dx = new Float32Array(x.length), dw = new Float32Array(H).fill(0.25);
    expect(cpu.rmsNormBackward(x, w, g, rstd, H, dx, dw)).toBe(wasm);
    if (wasm) {
      expect(worst(dx, ref.dx, ref.dxScale)).toBeLessThan(1);
      expect(worst(dw, ref.dw.map((v) => v + 0.25), ref.dwScale.map((v) => v + 0.25))).toBeLessThan(1);
      const inPlace = g.slice();
      expect(cpu.rmsNormBackward(x, w, inPlace, rstd, H, inPlace, null)).toBe(true);
      expect(Array.from(inPlace)).toEqual(Array.from(dx));
      const dwOnly = new Float32Array(H).fill(0.25), gKept = g.slice();
      expect(cpu.rmsNormBackward(x, w, gKept, rstd, H, null, dwOnly)).toBe(true);
      expect(Array.from(dwOnly)).toEqual(Array.from(dw));
      expect(Array.from(gKept)).toEqual(Array.from(g)); // no dx wanted: g is left alone
      expect(cpu.rmsNormBackward(x.subarray(0, rows * 6), w.subarray(0, 6), g, rstd, 6, dx, null)).toBe(false); // H % 4: declined
    }
    const jsDx = g.slice(), jsDw = new Float32Array(H);
    jsRmsNorm.backward(x, w, jsDx, rstd, H, jsDx, jsDw);
    expect(worst(jsDx, ref.dx, ref.dxScale)).toBeLessThan(1);
    expect(worst(jsDw, ref.dw, ref.dwScale)).toBeLessThan(1);
  });
});

/** Rotary tables [B, T, D/2] at angles up to ±4 rad (any angles do: the kernel reads cos and sin as given). */
function ropeTables(B: number, T: number, D: number, seed: number) {
  const angles = values(B * T * (D / 2), seed, 4);
  return { cos: angles.map(Math.cos), sin: angles.map(Math.sin) };
}

/** splitHeads' RoPE gradient in float64: g [B, heads, T, D] → dx [B, T, heads·D], and each element's tolerance scale. */
function ropeRef(g: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, heads: number, D: number) {
  const half = D / 2, dx = new Float64Array(g.length), scale = new Float64Array(g.length);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) {
    const d = ((b * T + t) * heads + h) * D, src = ((b * heads + h) * T + t) * D, tab = (b * T + t) * half;
    for (let i = 0; i < half; i++) {
      const g1 = g[src + i]!, g2 = g[src + half + i]!, c = cos[tab + i]!, s = sin[tab + i]!;
      dx[d + i] = g1 * c + g2 * s;
      dx[d + half + i] = g2 * c - g1 * s;
      scale[d + i] = scale[d + half + i] = Math.abs(g1 * c) + Math.abs(g2 * s) + Math.abs(g2 * c) + Math.abs(g1 * s);
    }
  }
  return { dx, scale };
}

describe("splitHeads' RoPE backward: the wasm kernel and the JavaScript fallback against float64", () => {
  // D = 6 and 12: D/2 is not a multiple of 4, the kernel declines and the tape falls back to JavaScript.
  for (const [B, T, heads, D] of [[1, 1, 1, 8], [1, 5, 3, 16], [2, 3, 4, 32], [3, 7, 2, 64], [2, 3, 2, 6], [1, 4, 3, 12]] as const) {
    it(`[${B}, ${T}, ${heads}·${D}] through the CPU tape: the CPU backend's forward bits, the gradient within 1e-6`, async () => {
      const { cpu, be } = await cpuAndTape();
      const n = B * T * heads * D;
      const x = values(n, n, 3), g = gradients(n, n + 1);
      const rope = ropeTables(B, T, D, n + 2);
      const xv = Var.param(x.slice(), [B, T, heads * D]);
      const y = be.varOf(be.readSync(be.splitHeads(be.upload(be.asTensor(xv)), heads, rope)));
      const plain = (cpu.splitHeads(new CpuTensor(x, [B, T, heads * D], "f32"), heads, rope) as CpuTensor).data as Float32Array;
      expect(Array.from(y.value)).toEqual(Array.from(plain));
      backward(y, g);
      const ref = ropeRef(g, rope.cos, rope.sin, B, T, heads, D);
      expect(worst(xv.grad!, ref.dx, ref.scale)).toBeLessThan(1);
      expect(maxRel(xv.grad!, ref.dx)).toBeLessThan(1e-6);
      // the same gradient as attention-ops.ts's splitHeads (JavaScript) to float32 rounding
      const xj = Var.param(x.slice(), [B, T, heads * D]);
      backward(splitHeads(xj, heads, rope), g);
      expect(maxRel(xv.grad!, Float64Array.from(xj.grad!))).toBeLessThan(1e-6);
    });
  }

  it("the forward on the engine's kernel (rope_forward) = splitHeadsInto, bit for bit", async () => {
    const { cpu } = await cpuAndTape();
    for (const [B, T, heads, D] of [[1, 1, 1, 8], [1, 5, 3, 16], [2, 3, 4, 32], [3, 7, 2, 64], [2, 3, 2, 6], [40, 30, 8, 32]] as const) {
      const n = B * T * heads * D;
      const x = values(n, n + 5, 3);
      const rope = ropeTables(B, T, D, n + 6);
      const want = splitHeadsInto(x, B, T, heads, D, rope.cos, rope.sin, new Float32Array(n));
      const got = cpu.splitHeadsValues(x, B, T, heads, D, rope);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `[${B}, ${T}, ${heads}·${D}]`).toBe(true);
    }
  });

  it("the engine's kernel directly: dx apart or over g; and the JavaScript fallback", async () => {
    const { cpu, wasm } = await cpuAndTape();
    const [B, T, heads, D] = [2, 5, 3, 24];
    const n = B * T * heads * D;
    const g = gradients(n, 8);
    const { cos, sin } = ropeTables(B, T, D, 9);
    const ref = ropeRef(g, cos, sin, B, T, heads, D);
    const dx = new Float32Array(n);
    expect(cpu.ropeBackward(g, cos, sin, B, T, heads, D, dx)).toBe(wasm);
    if (wasm) {
      expect(worst(dx, ref.dx, ref.scale)).toBeLessThan(1);
      const inPlace = g.slice();
      expect(cpu.ropeBackward(inPlace, cos, sin, B, T, heads, D, inPlace)).toBe(true);
      expect(Array.from(inPlace)).toEqual(Array.from(dx));
      expect(cpu.ropeBackward(g, cos, sin, B, T, heads * 2, D / 2, dx)).toBe(false); // D/2 = 6: declined
    }
    const js = jsRope.backward(g, cos, sin, B, T, heads, D, false);
    expect(worst(js, ref.dx, ref.scale)).toBeLessThan(1);
  });
});
