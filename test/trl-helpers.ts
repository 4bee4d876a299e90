/** Helpers shared by the TRL golden tests (fixtures made by scripts/fixtures/make_trl_*.py). */
import { expect } from "vitest";

/**
 * A scalar (a loss, a metric) against TRL's: |ours − TRL| ≤ tol · max(1, |TRL|) with tol 1e-5 on the
 * CPU tape and 1e-3 on WebGPU. Log-prob sums are tens of nats, where float32 itself keeps ~1e-6
 * relative, hence the max(1, ·). The failure message names the quantity.
 */
export function expectNear(device: "cpu" | "webgpu", name: string, ours: number, trl: number): void {
  const tol = device === "cpu" ? 1e-5 : 1e-3;
  const err = Math.abs(ours - trl) / Math.max(1, Math.abs(trl));
  expect(err, `${name}: ours ${ours}, TRL ${trl}`).toBeLessThanOrEqual(tol);
}

/** Every metric TRL logged, by its name, against ours. */
export function expectMetrics(device: "cpu" | "webgpu", where: string, ours: Readonly<Record<string, number>>, trl: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(trl)) {
    expect(ours[k], `${where}: metric ${k} missing`).toBeDefined();
    expectNear(device, `${where} ${k}`, ours[k]!, v);
  }
}
