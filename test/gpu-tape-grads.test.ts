// The six gradients the WebGPU tape used to refuse (embedding table, RMSNorm weight, linear bias,
// kvAppend, attendWith, selectBatch), each against the CPU tape on shapes that can fail: repeated
// and never-read rows, rows wider than a workgroup, GQA, KV-cache views with spare capacity, a
// frozen bias next to a trainable weight. Then full fine-tuning of a tiny model's embedding table
// (tied to lm_head) and RMSNorm weights: every parameter's gradient of one step equals the CPU tape's.
// The CPU tape itself is checked against finite differences in autograd-ops.test.ts.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { createDifferentiableBackend, backprop, type DifferentiableBackend } from "../lib/autograd/differentiable.js";
import { causalLMLoss, crossEntropy } from "../lib/autograd/loss.js";
import { reshape } from "../lib/autograd/ops.js";
import { Var } from "../lib/autograd/var.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { Tensor } from "../lib/tensor/tensor.js";
import type { DeviceTensor } from "../lib/backend/backend.js";
import { diffStats } from "./peft-helpers.js";

/** Deterministic pseudo-random values in [-a, a). */
function noise(n: number, seed: number, a = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 * 2 - 1) * a;
  });
}

const TOL = 1e-4;

/** max |a − b| / max |b|; an all-zero reference must be matched exactly. */
function relErr(a: Float32Array, b: Float32Array): number {
  const d = diffStats(a, b);
  return d.abs === 0 ? 0 : d.rel;
}

/** The op under test: `xs` are the trainable inputs (uploads of `leaves`); constants it uploads itself. */
type Op = (be: DifferentiableBackend, xs: DeviceTensor[]) => DeviceTensor;

const numelOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

describe("WebGPU tape: the gradients it used to refuse, against the CPU tape", () => {
  let gpu: DifferentiableBackend;
  let cpu: DifferentiableBackend;
  beforeAll(async () => {
    gpu = await createDifferentiableBackend("webgpu");
    cpu = await createDifferentiableBackend("cpu");
  });
  afterAll(() => {
    gpu?.dispose();
    cpu?.dispose();
  });

  /**
   * d CE(op(inputs) viewed as [rows, last]) / d inputs on both backends. Returns each input's
   * gradients [gpu, cpu]; checks the CPU's are not all zero (the test is not vacuous).
   */
  async function grads(shapes: number[][], op: Op, seed: number): Promise<[Float32Array, Float32Array][]> {
    const got: Float32Array[][] = [];
    for (const be of [gpu, cpu]) {
      const leaves = shapes.map((s, i) => Var.param(noise(numelOf(s), seed + i), s));
      const out = op(be, leaves.map((v) => be.upload(be.asTensor(v))));
      const host = be.varOf(await be.read(out));
      const last = host.shape[host.shape.length - 1]!;
      const rows = host.size / last;
      const targets = Int32Array.from({ length: rows }, (_, r) => (r * 7 + seed) % last);
      await backprop(be, crossEntropy(reshape(host, [rows, last]), targets));
      got.push(leaves.map((v) => v.grad ?? new Float32Array(v.size)));
    }
    const pairs = got[0]!.map((g, i): [Float32Array, Float32Array] => [g, got[1]![i]!]);
    for (const [, ref] of pairs) expect(Math.max(...Array.from(ref, Math.abs))).toBeGreaterThan(1e-4);
    return pairs;
  }

  const worst = (pairs: [Float32Array, Float32Array][]) => Math.max(...pairs.map(([g, c]) => relErr(g, c)));
  const constant = (be: DifferentiableBackend, shape: number[], seed: number, a = 1) =>
    be.upload(new Tensor(noise(numelOf(shape), seed, a), shape, "f32"));

  it("embedding table: repeated ids summed into their row, unread rows exactly 0", async () => {
    const V = 13, H = 40;
    const ids = Int32Array.from([3, 3, 0, 12, 3, 7, 0, 0, 5, 12]);
    const [[g, c]] = (await grads([[V, H]], (be, [table]) => be.embedding(table!, ids, 2, 5), 1)) as [[Float32Array, Float32Array]];
    expect(relErr(g, c)).toBeLessThan(TOL);
    for (const unread of [1, 2, 4, 6, 8, 9, 10, 11]) expect(g.subarray(unread * H, unread * H + H).every((x) => x === 0)).toBe(true);
  });

  for (const H of [8, 300]) {
    it(`RMSNorm weight and input, rows of ${H}`, async () => {
      const pairs = await grads([[3, 5, H], [H]], (be, [x, w]) => be.rmsNorm(x!, w!, 1e-5), H);
      expect(worst(pairs)).toBeLessThan(TOL);
    });
  }

  it("RMSNorm weight alone (a frozen input)", async () => {
    const pairs = await grads([[24]], (be, [w]) => be.rmsNorm(constant(be, [2, 7, 24], 50), w!, 1e-6), 2);
    expect(worst(pairs)).toBeLessThan(TOL);
  });

  it("linear: a trainable bias on a frozen weight (and the input's gradient)", async () => {
    const pairs = await grads([[2, 9, 24], [37]], (be, [x, b]) => be.linear(x!, constant(be, [37, 24], 51, 0.5), b!), 3);
    expect(worst(pairs)).toBeLessThan(TOL);
  });

  it("linear: a frozen bias with a trainable weight", async () => {
    const pairs = await grads([[2, 3, 24], [5, 24]], (be, [x, w]) => be.linear(x!, w!, constant(be, [5], 52)), 4);
    expect(worst(pairs)).toBeLessThan(TOL);
  });

  it("linear: weight and bias trainable, input frozen", async () => {
    const pairs = await grads([[7, 24], [7]], (be, [w, b]) => be.linear(constant(be, [4, 3, 24], 53), w!, b!), 5);
    expect(worst(pairs)).toBeLessThan(TOL);
  });

  it("kvAppend: cache and new rows both trainable, split back (GQA attention reads the result)", async () => {
    const B = 2, n = 4, k = 2, P = 3, T = 4, D = 8;
    const op: Op = (be, [q, cacheK, newK, cacheV, newV]) => {
      const keys = be.kvAppend(cacheK!, newK!), values = be.kvAppend(cacheV!, newV!);
      return be.attention(q!, keys, values, { queryOffset: P }, { scale: Math.fround(1 / Math.sqrt(D)) }).out;
    };
    const pairs = await grads([[B, n, T, D], [B, k, P, D], [B, k, T, D], [B, k, P, D], [B, k, T, D]], op, 6);
    expect(worst(pairs)).toBeLessThan(TOL);
  });

  it("kvAppend: no cache, and a frozen cache with spare capacity (an inference kvAppend result)", async () => {
    const op: Op = (be, [x]) => {
      const frozen = be.kvAppend(undefined, constant(be, [2, 3, 5, 6], 54)); // [2, 3, 5, 6] in a 16-row buffer on the GPU
      return be.kvAppend(frozen, be.kvAppend(undefined, x!));
    };
    const pairs = await grads([[2, 3, 2, 6]], op, 7);
    expect(worst(pairs)).toBeLessThan(TOL);
  });

  it("attendWith: weights and values (GQA 6 → 2 heads)", async () => {
    const pairs = await grads([[2, 6, 3, 5], [2, 2, 5, 8]], (be, [w, v]) => be.attendWith(w!, v!), 8);
    expect(worst(pairs)).toBeLessThan(TOL);
  });

  it("attendWith: weights against frozen values in a KV-cache view", async () => {
    const op: Op = (be, [w]) => be.attendWith(w!, be.kvAppend(undefined, constant(be, [1, 1, 7, 4], 55)));
    const pairs = await grads([[1, 3, 2, 7]], op, 9);
    expect(worst(pairs)).toBeLessThan(TOL);
  });

  it("selectBatch: a row picked twice gets both gradients, an unpicked row exactly 0", async () => {
    const rows = Int32Array.from([2, 0, 2, 3]);
    const [[g, c]] = (await grads([[4, 5, 6]], (be, [x]) => be.selectBatch(x!, rows), 10)) as [[Float32Array, Float32Array]];
    expect(relErr(g, c)).toBeLessThan(TOL);
    expect(g.subarray(30, 60).every((x) => x === 0)).toBe(true);
  });

  it("full fine-tuning of the embedding table and every RMSNorm weight: one step's gradients equal the CPU tape's", async () => {
    const result: Map<string, Float32Array>[] = [];
    for (const be of [gpu, cpu]) {
      const model = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama-gqa-llama3rope", { backend: be });
      const trained = model.parameters().filter((p) => p.name.endsWith("embed_tokens.weight") || p.name.endsWith("norm.weight"));
      const params = new Map<string, Var>();
      for (const p of trained) {
        const v = Var.param((await be.read(p.get())).toFloat32().slice(), p.get().shape);
        const uploaded = be.upload(be.asTensor(v));
        p.set(uploaded);
        // Tied embeddings: lm_head reads the same trainable table, so its gradient adds to the lookup's.
        if (p.name.endsWith("embed_tokens.weight") && model.config.tie_word_embeddings) model.lm_head.weight = uploaded;
        params.set(p.name, v);
      }
      const inputIds = [[0, 0, 5, 17, 301, 44, 9], [3, 250, 8, 8, 120, 7, 60]];
      const attentionMask = [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]];
      const labels = [[-100, -100, 5, 17, 301, 44, 9], [3, 250, 8, 8, 120, 7, 60]];
      const out = await model.forward({ inputIds, attentionMask, useCache: false });
      await backprop(be, causalLMLoss(be.varOf(out.logits), labels));
      result.push(new Map([...params].map(([name, v]) => [name, v.grad!])));
    }
    const [g, c] = result as [Map<string, Float32Array>, Map<string, Float32Array>];
    expect(c.size).toBeGreaterThanOrEqual(4); // the table, two norms per layer, the final norm
    for (const [name, ref] of c) {
      expect(Math.max(...Array.from(ref, Math.abs)), name).toBeGreaterThan(1e-6);
      expect(relErr(g.get(name)!, ref), name).toBeLessThan(TOL);
    }
  });
});
