// Finite-difference gradient checks for every differentiable op of the LLaMA forward.
import { describe, it, expect } from "vitest";
import { Var, backward, result } from "../lib/autograd/var.js";
import { gradCheck, uniformStream } from "../lib/autograd/gradcheck.js";
import { add, scale, embedding, rmsNorm, linear, siluMul, concatSeq, expandBatch, selectRows, reshape } from "../lib/autograd/ops.js";
import { splitHeads, mergeHeads, attention, attendWith, kvAppend } from "../lib/autograd/attention-ops.js";
import { crossEntropy, causalLMLoss } from "../lib/autograd/loss.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";

function rnd(shape: number[], seed: number, amp = 1): { value: Float32Array; shape: number[] } {
  const r = uniformStream(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { value: Float32Array.from({ length: n }, () => r() * amp), shape };
}

const TOL = 1e-2; // relative (floored) error of central differences in float32 with h = 1e-2

describe("gradCheck itself", () => {
  it("flags a wrong backward", () => {
    // y = x², with a backward that forgets the factor 2.
    const square = (x: Var) =>
      result(x.value.map((v) => v * v), x.shape, [x], () => ({ name: "bad", inputs: [x], backward: (g) => [g.map((gi, i) => gi * x.value[i]!)] }));
    const r = gradCheck(([x]) => square(x!), [rnd([5], 1)]);
    expect(r.maxRelError).toBeGreaterThan(0.3);
  });
});

describe("op gradients match finite differences", () => {
  it("add, scale, reshape", () => {
    const r = gradCheck(([a, b]) => reshape(scale(add(a!, b!), 0.7), [6, 2]), [rnd([3, 4], 1), rnd([3, 4], 2)]);
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("embedding into a trainable table (repeated ids accumulate)", () => {
    const r = gradCheck(([t]) => embedding(t!, [3, 1, 3, 0, 2, 3], 2, 3), [rnd([5, 4], 3)]);
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("rmsNorm (input and trainable weight)", () => {
    const r = gradCheck(([x, w]) => rmsNorm(x!, w!, 1e-5), [rnd([2, 3, 8], 4), rnd([8], 5)]);
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("rmsNorm with a frozen f16 weight", () => {
    const w = new Tensor(f32ToF16(rnd([8], 6).value), [8], "f16");
    const r = gradCheck(([x]) => rmsNorm(x!, w, 1e-6), [rnd([3, 8], 7)]);
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("linear: input, trainable weight and bias", () => {
    const r = gradCheck(([x, w, b]) => linear(x!, w!, b!), [rnd([2, 5, 6], 8), rnd([7, 6], 9), rnd([7], 10)]);
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("linear with a frozen f16 weight (uses the cached transpose)", () => {
    const w = new Tensor(f32ToF16(rnd([9, 6], 11).value), [9, 6], "f16");
    const r = gradCheck(([x]) => linear(x!, w), [rnd([5, 6], 12)]);
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("siluMul", () => {
    const r = gradCheck(([g, u]) => siluMul(g!, u!), [rnd([4, 6], 13, 3), rnd([4, 6], 14)]);
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("concatSeq, expandBatch, selectRows", () => {
    const r = gradCheck(
      ([p, x]) => selectRows(concatSeq(expandBatch(p!, 2), x!), [0, 5, 5, 2, 7]),
      [rnd([2, 3], 15), rnd([2, 2, 3], 16)],
    );
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("splitHeads with rotary embedding, and mergeHeads", () => {
    const B = 2, T = 3, heads = 2, D = 4;
    const ang = rnd([B, T, D / 2], 17, 3).value;
    const rope = { cos: ang.map(Math.cos), sin: ang.map(Math.sin) };
    const r = gradCheck(([x]) => mergeHeads(splitHeads(x!, heads, rope)), [rnd([B, T, heads * D], 18)]);
    expect(r.maxRelError).toBeLessThan(TOL);
    // Without rope split+merge is the identity.
    const x = rnd([B, T, heads * D], 19);
    expect(Array.from(mergeHeads(splitHeads(Var.constant(x.value, x.shape), heads)).value)).toEqual(Array.from(x.value));
  });

  it("attention: causal + left padding + GQA, gradient to q, k and v", () => {
    const B = 2, n = 4, kh = 2, T = 5, D = 3;
    const keyMask = Uint8Array.from([1, 1, 1, 1, 1, 0, 0, 1, 1, 1]); // row 1 left-padded by 2
    const r = gradCheck(
      ([q, k, v]) => attention(q!, k!, v!, { queryOffset: 0, keyMask }, 0.6).out,
      [rnd([B, n, T, D], 20), rnd([B, kh, T, D], 21), rnd([B, kh, T, D], 22)],
    );
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("attention with a KV prefix (queryOffset) built by kvAppend", () => {
    const B = 1, n = 2, kh = 1, P = 2, T = 3, D = 4;
    const r = gradCheck(
      ([q, kc, kn, v]) => attention(q!, kvAppend(kc!, kn!), v!, { queryOffset: P }, 0.5).out,
      [rnd([B, n, T, D], 23), rnd([B, kh, P, D], 24), rnd([B, kh, T, D], 25), rnd([B, kh, P + T, D], 26)],
    );
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("attendWith (a replaced pattern times V), gradient to weights and values", () => {
    const r = gradCheck(([w, v]) => attendWith(w!, v!), [rnd([2, 4, 3, 5], 35), rnd([2, 2, 5, 3], 36)]);
    expect(r.maxRelError).toBeLessThan(TOL);
  });

  it("attention weights are a causal softmax, uniform on rows with no visible key", () => {
    const q = rnd([1, 1, 3, 2], 27), k = rnd([1, 1, 3, 2], 28);
    const { weights } = attention(Var.constant(q.value, q.shape), Var.constant(k.value, k.shape), Var.constant(k.value, k.shape),
      { queryOffset: 0, keyMask: Uint8Array.from([0, 1, 1]) }, 1);
    const w = Array.from(weights.value);
    expect(w.slice(0, 3).map((x) => x.toFixed(6))).toEqual(["0.333333", "0.333333", "0.333333"]); // row 0 sees only padding
    expect(w.slice(3, 6)).toEqual([0, 1, 0]); // row 1 sees key 1 only
    expect(w[6]).toBe(0);
    expect(w[7]! + w[8]!).toBeCloseTo(1, 6);
  });

  it("cross-entropy with ignore_index -100, and the shifted causal-LM loss", () => {
    const r = gradCheck(([x]) => crossEntropy(x!, [2, -100, 0, 4]), [rnd([4, 5], 29, 2)]);
    expect(r.maxRelError).toBeLessThan(TOL);
    const r2 = gradCheck(([x]) => causalLMLoss(x!, [[1, 2, -100], [-100, 3, 0]]), [rnd([2, 3, 5], 30, 2)]);
    expect(r2.maxRelError).toBeLessThan(TOL);
  });

  it("cross-entropy value equals -log softmax at the target", () => {
    const logits = Var.constant(Float32Array.from([1, 2, 3, 0, 0, 0]), [2, 3]);
    const loss = crossEntropy(logits, [2, 0]).item();
    const l1 = -(3 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)));
    const l2 = Math.log(3);
    expect(loss).toBeCloseTo((l1 + l2) / 2, 6);
  });
});

describe("engine", () => {
  it("computes nothing for frozen inputs and frees the graph as it goes", () => {
    const x = Var.constant(rnd([2, 3], 31).value, [2, 3]);
    const y = linear(x, new Tensor(rnd([4, 3], 32).value, [4, 3]));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    const p = Var.param(rnd([2, 3], 33).value, [2, 3]);
    const h = add(p, x);
    const out = crossEntropy(linear(h, new Tensor(rnd([4, 3], 34).value, [4, 3])), [1, 3]);
    expect(h.gradFn).not.toBeNull();
    backward(out);
    expect(h.gradFn).toBeNull(); // detached after use
    expect(h.grad).toBeNull(); // intermediate grads are not kept
    expect(p.grad).not.toBeNull();
  });

  it("detaches each node right after its backward: later layers are freed before earlier ones run", () => {
    // A chain of 4 "layers"; a probe op at the bottom records which upper nodes still hold their closures.
    const p = Var.param(rnd([3], 40).value, [3]);
    let stillAttached = -1;
    const probe = result(p.value.slice(), [3], [p], () => ({
      name: "probe", inputs: [p],
      backward: (g) => { stillAttached = layers.filter((v) => v.gradFn !== null).length; return [g]; },
    }));
    const layers: Var[] = [];
    let h = probe;
    for (let i = 0; i < 4; i++) { h = scale(add(h, Var.constant(Float32Array.from([1, 2, 3]), [3])), 0.5); layers.push(h); }
    backward(h, Float32Array.from([1, 1, 1]));
    expect(stillAttached).toBe(0);
    expect(Array.from(p.grad!)).toEqual([0.0625, 0.0625, 0.0625]);
  });

  it("accumulates a var used twice", () => {
    const p = Var.param(Float32Array.from([1, 2]), [2]);
    const y = add(p, p);
    backward(y, Float32Array.from([1, 1]));
    expect(Array.from(p.grad!)).toEqual([2, 2]);
  });
});
