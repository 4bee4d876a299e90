// Adam / AdamW against torch's update rules written out in float64, plus clipping and schedules.
// (Adam at lr 1e-2 is also checked against PEFT+torch's real trajectory in peft-prompt-fixture.test.ts.)
import { describe, it, expect } from "vitest";
import { Var } from "../lib/autograd/var.js";
import { Adam, AdamW, clipGradNorm } from "../lib/peft/optim.js";
import { lrMultiplier } from "../lib/peft/optim-schedule.js";

/** torch.optim.Adam/AdamW's documented algorithm, in float64. */
function reference(
  p0: number[], grads: number[][], o: { lr: number; b1: number; b2: number; eps: number; wd: number; decoupled: boolean; amsgrad?: boolean },
): number[] {
  const p = p0.slice(), m = p0.map(() => 0), v = p0.map(() => 0), vmax = p0.map(() => 0);
  grads.forEach((gs, s) => {
    const t = s + 1;
    for (let i = 0; i < p.length; i++) {
      let g = gs[i]!;
      if (o.decoupled) p[i]! *= 1 - o.lr * o.wd;
      else g += o.wd * p[i]!;
      m[i] = o.b1 * m[i]! + (1 - o.b1) * g;
      v[i] = o.b2 * v[i]! + (1 - o.b2) * g * g;
      vmax[i] = Math.max(vmax[i]!, v[i]!);
      const vh = (o.amsgrad ? vmax[i]! : v[i]!) / (1 - o.b2 ** t);
      p[i]! -= (o.lr * (m[i]! / (1 - o.b1 ** t))) / (Math.sqrt(vh) + o.eps);
    }
  });
  return p;
}

const P0 = [0.5, -1.25, 2, 0.001, -0.3];
const GRADS = [
  [0.1, -0.2, 0.3, 1e-4, -2],
  [0.05, 0.2, -0.1, 2e-4, -1.5],
  [-0.3, 0.1, 0.2, -1e-4, 0.7],
  [0.2, -0.4, 0.05, 3e-4, 0.1],
];

function run(make: (ps: Var[]) => Adam | AdamW): Float32Array {
  const p = Var.param(Float32Array.from(P0), [P0.length]);
  const opt = make([p]);
  for (const g of GRADS) {
    opt.zeroGrad();
    p.grad = Float32Array.from(g);
    opt.step();
  }
  return p.value;
}

function expectClose(actual: Float32Array, expected: number[], tol: number): void {
  expected.forEach((e, i) => expect(Math.abs(actual[i]! - e)).toBeLessThan(tol * Math.max(1, Math.abs(e))));
}

describe("optimizers follow torch's update rules", () => {
  it("Adam defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay", () => {
    const a = new Adam([Var.param(new Float32Array(1), [1])]);
    expect([a.lr, ...a.betas, a.eps, a.weightDecay]).toEqual([1e-3, 0.9, 0.999, 1e-8, 0]);
    const w = new AdamW([Var.param(new Float32Array(1), [1])]);
    expect(w.weightDecay).toBe(0.01);
  });

  it("Adam (L2 weight decay in the gradient)", () => {
    const out = run((ps) => new Adam(ps, { lr: 0.05, weightDecay: 0.1 }));
    expectClose(out, reference(P0, GRADS, { lr: 0.05, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1, decoupled: false }), 1e-6);
  });

  it("AdamW (decoupled decay, default 0.01)", () => {
    const out = run((ps) => new AdamW(ps, { lr: 0.3 }));
    const ref = reference(P0, GRADS, { lr: 0.3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01, decoupled: true });
    expectClose(out, ref, 1e-6);
    // and decay matters: without it the result differs
    const noDecay = reference(P0, GRADS, { lr: 0.3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0, decoupled: true });
    expect(Math.abs(out[2]! - noDecay[2]!)).toBeGreaterThan(1e-4);
  });

  it("AMSGrad and custom betas", () => {
    const out = run((ps) => new Adam(ps, { lr: 0.1, betas: [0.8, 0.95], amsgrad: true }));
    expectClose(out, reference(P0, GRADS, { lr: 0.1, b1: 0.8, b2: 0.95, eps: 1e-8, wd: 0, decoupled: false, amsgrad: true }), 1e-6);
  });

  it("rejects torch's invalid arguments with the value", () => {
    const p = [Var.param(new Float32Array(1), [1])];
    expect(() => new Adam(p, { lr: -1 })).toThrow(/learning rate -1/);
    expect(() => new Adam(p, { betas: [1, 0.9] })).toThrow(/beta parameter at index 0: 1/);
    expect(() => new Adam([Var.constant(new Float32Array(1), [1])])).toThrow(/does not require a gradient/);
  });
});

describe("clip_grad_norm_ and schedules", () => {
  it("scales by max_norm / (norm + 1e-6) only when above", () => {
    const a = Var.param(new Float32Array(2), [2]), b = Var.param(new Float32Array(1), [1]);
    a.grad = Float32Array.from([3, 0]);
    b.grad = Float32Array.from([4]);
    const norm = clipGradNorm([a, b], 1);
    expect(norm).toBeCloseTo(5, 6);
    expect(a.grad[0]).toBeCloseTo(3 / (5 + 1e-6), 6);
    expect(b.grad[0]).toBeCloseTo(4 / (5 + 1e-6), 6);
    expect(clipGradNorm([a, b], 10)).toBeCloseTo(1, 5);
    expect(a.grad[0]).toBeCloseTo(3 / (5 + 1e-6), 6); // unchanged below the limit
  });

  it("linear and cosine schedules with warmup match transformers' lambdas", () => {
    const lin = lrMultiplier({ name: "linear", warmupSteps: 2, totalSteps: 10 });
    expect([0, 1, 2, 6, 10].map(lin)).toEqual([0, 0.5, 1, 0.5, 0]);
    const cos = lrMultiplier({ name: "cosine", warmupSteps: 0, totalSteps: 10 });
    expect(cos(0)).toBe(1);
    expect(cos(5)).toBeCloseTo(0.5, 12);
    expect(cos(10)).toBeCloseTo(0, 12);
    expect(lrMultiplier({ name: "constant" })(123)).toBe(1);
  });
});
