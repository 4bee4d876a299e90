// One op set: the CPU tape's forward of every op is the CPU backend's kernel, bit for bit
// (the autograd ops call lib/tensor/ops.ts and the wasm engine rather than their own copies).
import { describe, it, expect, afterAll } from "vitest";
import { Var } from "../lib/autograd/var.js";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { CpuBackend } from "../lib/backend/cpu/cpu-backend.js";
import type { Backend, DeviceTensor } from "../lib/backend/backend.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";
import { values } from "./tape-helpers.js";

let tape: TapeBackend, cpu: CpuBackend;
const ready = (async () => {
  cpu = await CpuBackend.create();
  tape = await TapeBackend.create();
})();
afterAll(() => { tape?.dispose(); cpu?.dispose(); });

/** Runs `op` on both backends (tape inputs are trainable Vars, so every op records) and compares the bits. */
async function same(inputs: Float32Array[], shapes: number[][], op: (be: Backend, x: DeviceTensor[]) => DeviceTensor): Promise<void> {
  await ready;
  const onTape = inputs.map((v, i) => tape.upload(tape.asTensor(Var.param(v.slice(), shapes[i]!))));
  const onCpu = inputs.map((v, i) => cpu.upload(new Tensor(v.slice(), shapes[i]!, "f32")));
  const got = tape.readSync(op(tape, onTape)).toFloat32();
  const want = cpu.readSync(op(cpu, onCpu)).toFloat32();
  expect(got.length).toBe(want.length);
  expect(Array.from(got)).toEqual(Array.from(want));
}

describe("CPU tape forward = CPU backend forward, bit for bit", () => {
  const B = 2, T = 5, n = 4, k = 2, H = 64;

  it("rmsNorm (f16 weight), add, scale by a factor float32 cannot hold, siluMul", async () => {
    const wf16 = new Tensor(f32ToF16(values(H, 3, 2)), [H], "f16");
    await same([values(B * T * H, 1, 3)], [[B, T, H]], (be, [x]) => be.rmsNorm(x!, be.upload(wf16), 1e-5));
    await same([values(B * T * H, 4), values(B * T * H, 5)], [[B, T, H], [B, T, H]], (be, [a, b]) => be.add(a!, b!));
    await same([values(B * T * H, 6)], [[B, T, H]], (be, [x]) => be.scale(x!, 16 / 12));
    await same([values(B * T * H, 7, 8), values(B * T * H, 8)], [[B, T, H], [B, T, H]], (be, [g, u]) => be.siluMul(g!, u!));
  });

  it("embedding from an f16 table, linear with a frozen f16 weight and bias, linear with a trainable weight", async () => {
    const table = new Tensor(f32ToF16(values(50 * H, 9)), [50, H], "f16");
    const ids = Int32Array.from([3, 49, 0, 7, 7, 12]);
    await ready;
    const te = tape.readSync(tape.embedding(tape.upload(table), ids, 2, 3)).toFloat32();
    const ce = cpu.readSync(cpu.embedding(cpu.upload(table), ids, 2, 3)).toFloat32();
    expect(Array.from(te)).toEqual(Array.from(ce));
    const wf16 = new Tensor(f32ToF16(values(37 * H, 10, 0.3)), [37, H], "f16");
    const bias = new Tensor(values(37, 11), [37], "f32");
    await same([values(B * T * H, 12)], [[B, T, H]], (be, [x]) => be.linear(x!, be.upload(wf16), be.upload(bias)));
    // A trained weight (a Var on the tape, an uploaded f32 tensor on the CPU backend): one answer.
    await same([values(B * T * H, 13), values(37 * H, 14, 0.3)], [[B, T, H], [37, H]], (be, [x, wt]) => be.linear(x!, wt!));
  });

  for (const D of [32, 6]) { // 32: the wasm attention; 6: the JavaScript kernel
    it(`splitHeads with rope, attention (GQA, left padding, KV prefix) with its weights, attendWith, mergeHeads; head dim ${D}`, async () => {
      const half = D / 2;
      const ang = values(B * T * half, 15, 3);
      const rope = { cos: ang.map(Math.cos), sin: ang.map(Math.sin) };
      const keyMask = Uint8Array.from([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]); // [B, S = P + T], row 0 left-padded
      const P = 2;
      const attend = (be: Backend, [q, kNew, kPast, vIn]: DeviceTensor[], part: "out" | "weights" | "with" | "merged"): DeviceTensor => {
        const qh = be.splitHeads(q!, n, rope);
        const v = be.kvAppend(undefined, vIn!); // (the CPU backend's cache layout, as keys)
        const kh = be.kvAppend(be.splitHeads(kPast!, k), be.splitHeads(kNew!, k, rope));
        const r = be.attention(qh, kh, v, { queryOffset: P, keyMask }, { scale: Math.fround(1 / Math.sqrt(D)), returnWeights: true });
        if (part === "out") return r.out;
        if (part === "weights") return r.weights!;
        if (part === "with") return be.attendWith(r.weights!, v);
        return be.mergeHeads(qh);
      };
      const inputs = [values(B * T * n * D, 16), values(B * T * k * D, 17), values(B * P * k * D, 18), values(B * k * (P + T) * D, 19)];
      const shapes = [[B, T, n * D], [B, T, k * D], [B, P, k * D], [B, k, P + T, D]];
      for (const part of ["out", "weights", "with", "merged"] as const) await same(inputs, shapes, (be, x) => attend(be, x, part));
    });
  }
});
