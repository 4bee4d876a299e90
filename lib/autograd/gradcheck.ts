/**
 * Finite-difference gradient checks. The op under test is reduced to a
 * scalar through fixed random weights (loss = Σ wᵢ·outᵢ), so every output
 * element's gradient path is exercised; each input element is perturbed by
 * ±h and the central difference compared with the analytic gradient.
 */
import { Var, backward } from "./var.js";
import { LlamaError } from "../errors.js";
import { mulberry32 } from "../mulberry32.js";

export interface GradCheckResult {
  /** Largest |analytic − numeric| over all checked elements. */
  maxAbsError: number;
  /** Largest |analytic − numeric| / max(|numeric|, floor) — the number to hold to a tolerance. */
  maxRelError: number;
  /** Elements compared. */
  checked: number;
}

/** A deterministic stream of uniform numbers in [-1, 1) (mulberry32), for test inputs. */
export function uniformStream(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}

/**
 * Checks d(Σ w·f(inputs))/d(inputs) against central differences.
 * `f` must build its output from the given vars (fresh each call).
 */
export function gradCheck(
  f: (inputs: Var[]) => Var,
  inputs: { value: Float32Array; shape: readonly number[] }[],
  options: { h?: number; seed?: number; floor?: number; maxElements?: number } = {},
): GradCheckResult {
  const h = options.h ?? 1e-2;
  const floor = options.floor ?? 1e-2;
  const rand = uniformStream(options.seed ?? 7);
  const params = inputs.map((x) => Var.param(Float32Array.from(x.value), x.shape));
  const out = f(params);
  const weights = Float32Array.from({ length: out.size }, () => rand());
  const scalar = (o: Var): number => {
    let s = 0;
    for (let i = 0; i < o.size; i++) s += weights[i]! * o.value[i]!;
    return s;
  };
  backward(out, weights);
  let maxAbs = 0, maxRel = 0, checked = 0;
  params.forEach((p, k) => {
    const analytic = p.grad ?? new Float32Array(p.size);
    const stride = Math.max(1, Math.floor(p.size / (options.maxElements ?? 4096)));
    for (let i = 0; i < p.size; i += stride) {
      const eval_ = (delta: number): number => {
        const vals = params.map((q) => Var.constant(Float32Array.from(q.value), q.shape));
        vals[k]!.value[i] = p.value[i]! + delta;
        return scalar(f(vals));
      };
      const numeric = (eval_(h) - eval_(-h)) / (2 * h);
      if (!Number.isFinite(numeric)) throw new LlamaError(`gradCheck: non-finite numeric gradient at input ${k} element ${i}`);
      const err = Math.abs(analytic[i]! - numeric);
      maxAbs = Math.max(maxAbs, err);
      maxRel = Math.max(maxRel, err / Math.max(Math.abs(numeric), floor));
      checked++;
    }
  });
  return { maxAbsError: maxAbs, maxRelError: maxRel, checked };
}
