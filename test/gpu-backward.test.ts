// The WebGPU backward kernels op by op, on random shapes including odd ones (rows wider than a
// workgroup, T = 1 and 7, MQA with one kv head, odd head counts, repeated gather indices): each op's
// input gradients through the differentiable WebGPU backend equal the CPU tape's within 1e-3 relative.
// The CPU tape itself is checked against finite differences in autograd-ops.test.ts.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { createDifferentiableBackend, backprop, type DifferentiableBackend } from "../lib/autograd/differentiable.js";
import { causalLMLoss, crossEntropy } from "../lib/autograd/loss.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { reshape, scale } from "../lib/autograd/ops.js";
import { Var } from "../lib/autograd/var.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";
import { diffStats } from "./peft-helpers.js";
import type { DeviceTensor } from "../lib/backend/backend.js";
import type { WebGpuTapeBackend } from "../gpu/tape-backend.js";

function noise(n: number, seed: number, a = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 * 2 - 1) * a;
  });
}

/** Relative error; an exactly-zero reference gradient must be matched exactly. */
function relErr(a: Float32Array, b: Float32Array): number {
  const d = diffStats(a, b);
  return d.abs === 0 ? 0 : d.rel; // d.rel is ∞ when the reference is zero and a is not
}

type Op = (be: DifferentiableBackend, xs: DeviceTensor[], leaves: Var[]) => DeviceTensor;

describe("WebGPU backward kernels vs the CPU tape", () => {
  let gpu: DifferentiableBackend;
  let cpu: TapeBackend;
  beforeAll(async () => {
    gpu = await createDifferentiableBackend("webgpu");
    cpu = await TapeBackend.create();
  });
  afterAll(() => {
    gpu?.dispose();
    cpu?.dispose();
  });

  /** d CE(op(inputs) viewed as [rows, last]) / d inputs on both backends; returns the worst relative error. */
  async function compare(shapes: number[][], op: Op, seed: number): Promise<number> {
    const grads: Float32Array[][] = [];
    for (const be of [gpu, cpu] as DifferentiableBackend[]) {
      const leaves = shapes.map((s, i) => Var.param(noise(s.reduce((a, b) => a * b, 1), seed + i), s));
      const out = op(be, leaves.map((v) => be.upload(be.asTensor(v))), leaves);
      const host = be.varOf(await be.read(out));
      const last = host.shape[host.shape.length - 1]!;
      const rows = host.size / last;
      const targets = Int32Array.from({ length: rows }, (_, r) => (r * 7 + seed) % last);
      await backprop(be, crossEntropy(reshape(host, [rows, last]), targets));
      grads.push(leaves.map((v) => v.grad!));
    }
    // Not vacuous: some input gets a real gradient.
    expect(Math.max(...grads[1]!.map((g) => Math.max(...Array.from(g, Math.abs))))).toBeGreaterThan(1e-4);
    return Math.max(...grads[0]!.map((g, i) => relErr(g, grads[1]![i]!)));
  }

  const weight = (be: DifferentiableBackend, n: number, seed: number) => be.upload(new Tensor(noise(n, seed, 2), [n], "f32"));

  for (const H of [8, 100, 300, 600]) {
    it(`rmsNorm, rows of ${H}`, async () => {
      expect(await compare([[3, 5, H]], (be, [x]) => be.rmsNorm(x!, weight(be, H, 9), 1e-5), H)).toBeLessThan(1e-3);
    });
  }

  it("siluMul (both inputs), 1,037 elements", async () => {
    expect(await compare([[1, 61, 17], [1, 61, 17]], (be, [g, u]) => be.siluMul(g!, u!), 4)).toBeLessThan(1e-3);
  });

  it("linear with an f16 weight: input gradient through Wᵀ", async () => {
    const w = new Tensor(f32ToF16(noise(37 * 24, 5)), [37, 24], "f16");
    expect(await compare([[2, 9, 24]], (be, [x]) => be.linear(x!, be.upload(w)), 5)).toBeLessThan(1e-3);
  });

  it("add and scale (one gradient feeding two inputs)", async () => {
    expect(await compare([[2, 3, 10], [2, 3, 10]], (be, [a, b]) => be.scale(be.add(a!, be.add(a!, b!)), 0.7), 6)).toBeLessThan(1e-3);
  });

  it("a non-leaf host Var uploaded twice: both uses reach the parameter behind it", async () => {
    const op: Op = (be, _xs, [v]) => {
      const w = scale(v!, 2); // like the prompt + embeddings concat: a host node in front of the upload
      return be.add(be.upload(be.asTensor(w)), be.upload(be.asTensor(w)));
    };
    expect(await compare([[2, 6]], op, 13)).toBeLessThan(1e-3);
  });

  it("splitHeads with RoPE (3 heads of 10) then mergeHeads", async () => {
    const B = 2, T = 7, half = 5;
    const cos = noise(B * T * half, 11), sin = noise(B * T * half, 12);
    expect(await compare([[B, T, 30]], (be, [x]) => be.mergeHeads(be.splitHeads(x!, 3, { cos, sin })), 7)).toBeLessThan(1e-3);
  });

  it("selectPositions with repeated indices", async () => {
    const index = Int32Array.from([0, 4, 4, 2, 1, 1]);
    expect(await compare([[2, 5, 12]], (be, [x]) => be.selectPositions(x!, index, 3), 8)).toBeLessThan(1e-3);
  });

  const attentionCases: { name: string; B: number; n: number; k: number; T: number; D: number; keyMask?: number[] }[] = [
    { name: "MHA, T = 7, head_dim 8", B: 1, n: 2, k: 2, T: 7, D: 8 },
    { name: "GQA 6 → 2 heads, head_dim 24, left padding (blind rows)", B: 2, n: 6, k: 2, T: 9, D: 24, keyMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1] },
    { name: "MQA (one kv head), T = 1 (one key: q and k get exactly zero)", B: 3, n: 4, k: 1, T: 1, D: 16 },
    { name: "MQA, T = 33 (keys beyond one 32-wide pass), head_dim 64", B: 1, n: 2, k: 1, T: 33, D: 64 },
  ];
  for (const c of attentionCases) {
    it(`attention: ${c.name}`, async () => {
      const { B, n, k, T, D } = c;
      const mask = { queryOffset: 0, keyMask: c.keyMask ? Uint8Array.from(c.keyMask) : undefined };
      const err = await compare([[B, n, T, D], [B, k, T, D], [B, k, T, D]], (be, [q, kk, v]) =>
        be.attention(q!, kk!, v!, mask, { scale: Math.fround(1 / Math.sqrt(D)) }).out, T + D);
      expect(err).toBeLessThan(1e-3);
    });
  }

  // The default model's weights are f16: on adapters without shader-f16 (the H100 through Dawn) they are
  // bound packed in u32. Both modes must give the CPU tape's gradient through every layer.
  for (const f16 of ["native", "packed"] as const) {
    it(`default model (f16 weights, ${f16} in the shaders): d loss / d inputs_embeds equals the CPU tape's`, async () => {
      const be = await createDifferentiableBackend("webgpu", { f16 });
      try {
        expect((be as WebGpuTapeBackend).gpu.f16Mode).toBe(f16);
        const grads: Float32Array[] = [];
        for (const b of [be, cpu] as DifferentiableBackend[]) {
          const model = await LlamaForCausalLM.fromPretrained("models/tiny-stories", { backend: b });
          const H = model.config.hidden_size, T = 6;
          const x = Var.param(noise(T * H, 21, 0.05), [1, T, H]);
          const out = await model.forward({ inputsEmbeds: b.asTensor(x), useCache: false });
          await backprop(b, causalLMLoss(b.varOf(out.logits), [[-100, 9, 17, 4, 300, 2]]));
          grads.push(x.grad!);
        }
        expect(relErr(grads[0]!, grads[1]!)).toBeLessThan(1e-3);
        expect(Math.max(...Array.from(grads[1]!, Math.abs))).toBeGreaterThan(1e-4);
      } finally {
        be.dispose();
      }
    });
  }
});
