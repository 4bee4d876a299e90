/**
 * Hooks on the WebGPU backend (Dawn; lavapipe on CI): the activation cache
 * read back from the GPU matches the CPU's within the project's WebGPU
 * tolerance (1e-3 relative), the logit lens reproduces the GPU's logits, and
 * a replacing hook (head ablation) has the same effect as on the CPU.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import type { Tensor } from "../lib/tensor/tensor.js";
import { runWithCache, runWithHooks } from "../lib/interp/run.js";
import { ablateHead } from "../lib/interp/interventions.js";
import { residualToLogits } from "../lib/interp/logit-lens.js";
import { HF_FIXTURES, loadGolden } from "./interp-fixtures.js";

function relErr(a: Tensor, b: Tensor): number {
  expect([...a.shape]).toEqual([...b.shape]);
  const x = a.toFloat32();
  const y = b.toFloat32();
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i]! - y[i]!) ** 2;
    den += y[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

describe("hooks on webgpu", () => {
  let gpu: LlamaForCausalLM;
  let cpu: LlamaForCausalLM;
  const dir = path.join(HF_FIXTURES, "tiny-llama-gqa-llama3rope");
  const ids = loadGolden("tiny-llama-gqa-llama3rope").cases["single"]!.input_ids.map((r) => r.slice(0, 48));
  beforeAll(async () => {
    gpu = await LlamaForCausalLM.fromPretrained(dir, { device: "webgpu" });
    cpu = await LlamaForCausalLM.fromPretrained(dir, { device: "cpu" });
  });
  afterAll(() => gpu?.backend.dispose());

  it("every cached activation matches the CPU's", async () => {
    const g = await runWithCache(gpu, ids);
    const c = await runWithCache(cpu, ids);
    expect(g.cache.keys()).toEqual(c.cache.keys());
    for (const name of c.cache.keys()) {
      expect(relErr(g.cache.get(name), c.cache.get(name)), name).toBeLessThanOrEqual(1e-3);
    }
    // The lens at the last layer, computed on the GPU, equals the GPU's logits.
    const L = gpu.config.num_hidden_layers;
    const lens = await residualToLogits(gpu, g.cache.layer("resid_post", L - 1));
    expect(relErr(lens, g.logits)).toBeLessThanOrEqual(1e-5);
  });

  it("a replacing hook (head ablation) acts as on the CPU", async () => {
    const g = await runWithHooks(gpu, ids, [ablateHead(1, 4)]);
    const c = await runWithHooks(cpu, ids, [ablateHead(1, 4)]);
    const plain = await cpu.forward({ inputIds: ids, useCache: false });
    expect(relErr(g.logits, c.logits)).toBeLessThanOrEqual(1e-3);
    expect(relErr(c.logits, plain.logits)).toBeGreaterThan(1e-3);
  });
});
