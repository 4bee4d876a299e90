/** Helpers shared by the PEFT golden tests (fixtures made by scripts/fixtures/make_*.py). */
import { expect } from "vitest";
import type { SafetensorsFile } from "../lib/io/safetensors.js";
import type { Var } from "../lib/autograd/var.js";
import { Adam, type AdamOptions } from "../lib/peft/optim.js";

/** max |a − b|, and that relative to max |b|. */
export function diffStats(a: ArrayLike<number>, b: ArrayLike<number>): { abs: number; rel: number } {
  expect(a.length).toBe(b.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return { abs: d, rel: d / m };
}

/** A stored [B, T] integer tensor as rows. */
export function intRows(file: SafetensorsFile, name: string): number[][] {
  const x = file.readInts(name);
  return Array.from({ length: x.shape[0]! }, (_, b) => x.values.slice(b * x.shape[1]!, (b + 1) * x.shape[1]!));
}

/**
 * The check both devices share: on the CPU PEFT's absolute tolerance, on WebGPU 1e-3 relative
 * (the failure message shows the number).
 */
export function closeTo(device: "cpu" | "webgpu", d: { abs: number; rel: number }, cpuAbs: number): void {
  expect(device === "cpu" ? d.abs : d.rel).toBeLessThan(device === "cpu" ? cpuAbs : 1e-3);
}

/**
 * A PEFT reference run: `steps` torch-Adam steps (zero grads, one forward + backward, update);
 * returns each step's loss. `afterStep` sees the state after each update.
 */
export async function adamRun(params: Var[], adam: AdamOptions, steps: number, lossAndGrad: () => Promise<number>,
  afterStep?: () => void): Promise<number[]> {
  const opt = new Adam(params, adam);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    losses.push(await lossAndGrad());
    opt.step();
    afterStep?.();
  }
  return losses;
}
