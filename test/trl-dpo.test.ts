// DPO against TRL 1.13's DPOTrainer (test/fixtures/trl/dpo-sigmoid, dpo-ipo, dpo-sigmoid-sft and dpo-apo-zero, made by
// scripts/fixtures/make_trl_dpo.py): tiny-llama with a LoRA adapter (r 4, alpha 8, q/v/down_proj,
// B started non-zero so the policy differs from the reference), the reference being the base
// model with the adapter disabled. Loss, every metric TRL logs, every A/B gradient, the reference
// log-probs TRL precomputes, and 5 Adam steps (loss and metrics per step, final matrices) — on the
// CPU tape within 1e-5 and on WebGPU within 1e-3 relative. ipo runs with max_length 10, so TRL's
// keep_start truncation cuts completions too. sigmoid-sft is TRL's RPO: loss_type ["sigmoid", "sft"] with
// loss_weights [1, 0.5]; apo-zero is APO-zero.
import { describe, it, expect, afterAll } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { LoraModel } from "../lib/peft/lora-train.js";
import { dpoEvaluate, dpoLossAndGrad, precomputeReferenceLogps, trainDpo, type DpoLossType, type DpoOptions } from "../lib/peft/dpo.js";
import type { DpoExample } from "../lib/peft/preference-data.js";
import { createDifferentiableBackend, type DifferentiableBackend } from "../lib/autograd/differentiable.js";
import { dpoLoss } from "../lib/peft/dpo-loss.js";
import { Var, backward } from "../lib/autograd/var.js";
import { adamRun, closeTo, diffStats } from "./peft-helpers.js";
import { expectMetrics, expectNear } from "./trl-helpers.js";

const BASE = "test/fixtures/hf/tiny-llama";

interface Golden {
  loss_type: DpoLossType | DpoLossType[]; loss_weights?: number[]; beta: number; max_length: number; pad_token_id: number;
  lora: { r: number; lora_alpha: number; target_modules: string[] };
  pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
  modules: string[];
  init: { loss: number; metrics: Record<string, number>; kl_to_ref: number };
  ref_logps: { chosen: number[]; rejected: number[] };
  adam: { lr: number; betas: [number, number]; eps: number };
  steps: { loss: number; metrics: Record<string, number> }[];
}

/** TRL's 5 torch Adam steps on the golden batch: each step's loss and metrics. */
async function adamStepsAsTrl(device: "cpu" | "webgpu", g: Golden, trained: LoraModel, examples: readonly DpoExample[], opts: DpoOptions): Promise<void> {
  const metrics: Record<string, number>[] = [];
  const losses = await adamRun(trained.parameters(), g.adam, g.steps.length, async () => {
    const r = await dpoLossAndGrad(trained, examples, opts);
    metrics.push(r.metrics);
    return r.loss;
  });
  g.steps.forEach((s, i) => {
    expectNear(device, `loss at step ${i + 1}`, losses[i]!, s.loss);
    const { num_tokens: _, ...trlMetrics } = s.metrics;
    expectMetrics(device, `step ${i + 1}`, metrics[i]!, trlMetrics);
  });
}

describe("DPO matches TRL's DPOTrainer", () => {
  const backends: DifferentiableBackend[] = [];
  afterAll(() => backends.forEach((b) => b.dispose()));

  for (const loss of ["sigmoid", "ipo", "sigmoid-sft", "apo-zero"] as const) {
    const dir = `test/fixtures/trl/dpo-${loss}`;
    const g = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as Golden;
    const st = SafetensorsFile.open(path.join(dir, "golden.safetensors"));
    const ref = (name: string) => st.read(name).toFloat32();
    const init = () => new Map(g.modules.map((m) => [m, { A: ref(`init.${m}.lora_A`), B: ref(`init.${m}.lora_B`) }]));
    const examples: DpoExample[] = g.pairs.map((p) => ({ promptIds: p.prompt_ids, chosenIds: p.chosen_ids, rejectedIds: p.rejected_ids }));
    const opts: DpoOptions = { beta: g.beta, lossType: g.loss_type, lossWeights: g.loss_weights, maxLength: g.max_length, padTokenId: g.pad_token_id };

    for (const device of ["cpu", "webgpu"] as const) {
      it(`${loss} on ${device}: loss, metrics, gradients, reference log-probs, 5 Adam steps`, async () => {
        const be = await createDifferentiableBackend(device);
        backends.push(be);
        const base = await LlamaForCausalLM.fromPretrained(BASE, { backend: be });
        const lora = LoraModel.fromValues(base, g.lora, init());

        const r0 = await dpoLossAndGrad(lora, examples, opts);
        expectNear(device, "loss at init", r0.loss, g.init.loss);
        expectMetrics(device, "init", { ...r0.metrics, num_tokens: r0.tokens }, g.init.metrics);
        // Ours beside TRL's: the per-token KL to the reference at the completion positions (torch-computed in the script).
        expectNear(device, "kl_to_ref", r0.metrics.kl_to_ref!, g.init.kl_to_ref);
        for (const [m, { A, B }] of lora.modules) {
          closeTo(device, diffStats(A.grad!, ref(`grad.${m}.lora_A`)), 1e-5);
          closeTo(device, diffStats(B.grad!, ref(`grad.${m}.lora_B`)), 1e-5);
        }
        // The reference is the base model: its log-probs are TRL's precomputed ones, and the metrics report them.
        const pre = await precomputeReferenceLogps(lora, examples, opts);
        pre.forEach((e, i) => {
          expectNear(device, `ref chosen ${i}`, e.refChosenLogp!, g.ref_logps.chosen[i]!);
          expectNear(device, `ref rejected ${i}`, e.refRejectedLogp!, g.ref_logps.rejected[i]!);
        });
        const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
        expectNear(device, "ref_logps/chosen", r0.metrics["ref_logps/chosen"]!, mean(g.ref_logps.chosen));
        // Precomputed reference log-probs give the same loss without the reference forward.
        const viaPre = await dpoEvaluate(lora, pre, { ...opts, batchSize: 3 });
        expectNear(device, "loss with precomputed reference", viaPre.loss!, g.init.loss);

        const trained = LoraModel.fromValues(base, g.lora, init());
        await adamStepsAsTrl(device, g, trained, examples, opts);
        for (const [m, { A, B }] of trained.modules) {
          closeTo(device, diffStats(A.value, ref(`final.${m}.lora_A`)), 1e-4);
          closeTo(device, diffStats(B.value, ref(`final.${m}.lora_B`)), 1e-4);
        }
        expect(base.model.layers[0]!.self_attn.q_proj.lora).toBeUndefined();
      });
    }
  }

  // TRL given a PeftModel that already holds a trained adapter (no peft_config) adds a frozen "ref" copy of
  // it as the reference: ours is reference "initial-adapter", whose log-probs are computed once before the
  // first update. Golden: test/fixtures/trl/dpo-ref-adapter (the same pairs and init as dpo-sigmoid).
  describe("reference = the starting adapter (TRL's frozen \"ref\" copy)", () => {
    const dir = "test/fixtures/trl/dpo-ref-adapter";
    const g = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as Golden;
    const st = SafetensorsFile.open(path.join(dir, "golden.safetensors"));
    const ref = (name: string) => st.read(name).toFloat32();
    const init = () => new Map(g.modules.map((m) => [m, { A: ref(`init.${m}.lora_A`), B: ref(`init.${m}.lora_B`) }]));
    const examples: DpoExample[] = g.pairs.map((p) => ({ promptIds: p.prompt_ids, chosenIds: p.chosen_ids, rejectedIds: p.rejected_ids }));
    const opts = { beta: g.beta, lossType: g.loss_type, maxLength: g.max_length, padTokenId: g.pad_token_id, reference: "initial-adapter" as const };

    for (const device of ["cpu", "webgpu"] as const) {
      it(`${device}: reference log-probs, loss ln 2 and metrics at init, gradients, 5 Adam steps against a reference that stays put`, async () => {
        const be = await createDifferentiableBackend(device);
        backends.push(be);
        const base = await LlamaForCausalLM.fromPretrained(BASE, { backend: be });
        const lora = LoraModel.fromValues(base, g.lora, init());
        // Without its log-probs computed up front the starting adapter is gone after one update: refused.
        await expect(dpoLossAndGrad(lora, examples, opts)).rejects.toThrow(/initial-adapter.*before the first update/);
        const pre = await precomputeReferenceLogps(lora, examples, opts);
        pre.forEach((e, i) => {
          expectNear(device, `ref chosen ${i}`, e.refChosenLogp!, g.ref_logps.chosen[i]!);
          expectNear(device, `ref rejected ${i}`, e.refRejectedLogp!, g.ref_logps.rejected[i]!);
        });
        const r0 = await dpoLossAndGrad(lora, pre, opts);
        expectNear(device, "loss at init", r0.loss, g.init.loss);
        expect(r0.loss).toBeCloseTo(Math.LN2, 6);
        const { num_tokens: _n, ...initMetrics } = g.init.metrics;
        expectMetrics(device, "init", r0.metrics, initMetrics);
        for (const [m, { A, B }] of lora.modules) {
          closeTo(device, diffStats(A.grad!, ref(`grad.${m}.lora_A`)), 1e-5);
          closeTo(device, diffStats(B.grad!, ref(`grad.${m}.lora_B`)), 1e-5);
        }

        const trained = LoraModel.fromValues(base, g.lora, init());
        await adamStepsAsTrl(device, g, trained, await precomputeReferenceLogps(trained, examples, opts), opts);
        // At init policy = reference: each gradient is a difference of two nearly equal terms (chosen and
        // rejected), so its smallest components (one of layer 0's q_proj B is below 1e-7) carry a large
        // relative rounding error, and Adam's m/√v, which divides by |g|, turns it into a visible weight
        // change (1.2e-4 at a component of 2.7e-5 ≈ 0.3% of its matrix's largest). Components above 1% of
        // their matrix's largest initial gradient are held to 3e-4 (CPU) / 1e-3 relative; all to 5 steps × lr.
        // (Their error too comes mostly from one such component, TRL's −1.65e-8 in layer 0's q_proj B, close
        // to Adam's eps 1e-8: its last bits move the whole trajectory, 1e-4 with mul + add kernels, 2e-4 with
        // fused multiply-add, the same components in the same proportions.)
        for (const [m, { A, B }] of trained.modules) {
          for (const [which, ours] of [["A", A.value], ["B", B.value]] as const) {
            const trl = ref(`final.${m}.lora_${which}`), g0 = ref(`grad.${m}.lora_${which}`);
            const big = 0.01 * Math.max(...Array.from(g0, Math.abs));
            const settled = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => Math.abs(g0[i]!) >= big);
            closeTo(device, diffStats(settled(ours), settled(trl)), 3e-4);
            expect(diffStats(ours, trl).abs).toBeLessThan(5 * g.adam.lr);
          }
        }
      });
    }

    it("trainDpo computes that reference before training: step 1 at ln 2, where the base as reference does not", async () => {
      const be = await createDifferentiableBackend("cpu");
      backends.push(be);
      const base = await LlamaForCausalLM.fromPretrained(BASE, { backend: be });
      const first = async (reference: "base" | "initial-adapter") => {
        const r = await trainDpo(LoraModel.fromValues(base, g.lora, init()), examples, { ...opts, reference, batchSize: 3, steps: 1, lr: 0.01 });
        return r.losses[0]!;
      };
      expect(await first("initial-adapter")).toBeCloseTo(Math.LN2, 6);
      const withBase = (await dpoLossAndGrad(LoraModel.fromValues(base, g.lora, init()), examples, { ...opts, reference: "base" })).loss;
      expect(Math.abs(withBase - Math.LN2)).toBeGreaterThan(1e-3);
      expect(await first("base")).toBeCloseTo(withBase, 6);
    });
  });

  it("trainDpo runs the loop: TRL's metrics in every step log and in onProgress; the guard warns (or stops) when the chosen log-prob falls below the reference's", async () => {
    const g = JSON.parse(fs.readFileSync("test/fixtures/trl/dpo-sigmoid/golden.json", "utf8")) as Golden;
    const be = await createDifferentiableBackend("cpu");
    backends.push(be);
    const base = await LlamaForCausalLM.fromPretrained(BASE, { backend: be });
    const examples: DpoExample[] = g.pairs.map((p) => ({ promptIds: p.prompt_ids, chosenIds: p.chosen_ids, rejectedIds: p.rejected_ids }));
    const progress: { done: number; total: number; metrics?: Readonly<Record<string, number>> }[] = [];
    const warnings: string[] = [];
    const lora = LoraModel.create(base, g.lora, { seed: 3 });
    const r = await trainDpo(lora, examples, {
      lr: 0.05, batchSize: 3, steps: 6, seed: 1, guard: { maxDropPerToken: 0.5 },
      onProgress: (done, total, info) => progress.push({ done, total, metrics: info?.metrics }),
      onWarning: (m) => warnings.push(m),
    });
    expect(r.steps).toBe(6);
    // TRL's trainer clips at max_grad_norm 1.0 unless told otherwise: the loop logs the norm it clipped.
    expect(r.logs.every((l) => typeof l.gradNorm === "number" && l.gradNorm > 0)).toBe(true);
    expect(progress.map((p) => p.done)).toEqual([0, 1, 2, 3, 4, 5, 6]); // the start, then every step
    expect(progress.every((p) => p.total === 6)).toBe(true);
    for (const k of ["loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "ref_logps/chosen", "guard/chosen_logp_per_token", "num_tokens"]) {
      expect(progress.at(-1)!.metrics![k], k).toBeTypeOf("number");
    }
    expect(r.logs[0]!.metrics["rewards/margins"]).toBeCloseTo(0, 6); // B = 0: the policy starts as the reference
    expect(Math.abs(r.logs[0]!.metrics.kl_to_ref!)).toBeLessThan(1e-6);
    expect(r.logs.at(-1)!.metrics.kl_to_ref!).toBeGreaterThan(1e-3);
    expect(r.losses.at(-1)!).toBeLessThan(r.losses[0]! - 0.2);
    expect(r.logs.at(-1)!.metrics["rewards/accuracies"]).toBe(1);
    expect(r.logs.at(-1)!.metrics.num_tokens).toBe(6 * 54); // cumulative attention-mask tokens, as TRL counts them
    // Here the chosen completions gain likelihood: no warning.
    expect(r.guardTrips).toEqual([]);
    expect(warnings).toEqual([]);

    // A reference 3 nats/token more confident on the chosen completions (precomputed log-probs, TRL's
    // precompute path): the policy's chosen log-prob is far below it, so the guard trips.
    const pre = await precomputeReferenceLogps(LoraModel.create(base, g.lora, { seed: 3 }), examples);
    const confident = pre.map((e) => ({ ...e, refChosenLogp: e.refChosenLogp! + 3 * e.chosenIds.length }));
    const warned = await trainDpo(LoraModel.create(base, g.lora, { seed: 3 }), confident, {
      lr: 0.05, batchSize: 3, steps: 4, seed: 1, onWarning: (m) => warnings.push(m),
    });
    expect(warned.guardTrips).toEqual([1, 2, 3, 4]);
    expect(warnings.length).toBe(1); // once per run
    expect(warnings[0]).toMatch(/DPO step 1: the chosen completions' log-prob fell to -\d+\.\d+ nats\/token under the policy, 3\.\d+ below the reference's/);
    const stopped = await trainDpo(LoraModel.create(base, g.lora, { seed: 3 }), confident, {
      lr: 0.05, batchSize: 3, steps: 4, seed: 1, guard: { stop: true }, onWarning: (m) => warnings.push(m),
    });
    expect(stopped.stopReason).toBe("objective");
    expect(stopped.steps).toBe(1);
    expect(warnings.at(-1)).toMatch(/; stopping$/);
  });

  it("dpoLoss: robust (TRL's label_smoothing) equals sigmoid at ε = 0; every loss type's gradient matches finite differences", () => {
    const policy = [-30.5, -21.25, -40.0, -18.5, -35.75, -12.0];
    const refLp = [-31.0, -20.0, -41.5, -18.0, -33.0, -12.5];
    const lengths = { lengths: [5, 3, 7, 3, 6, 2], chosenTokens: 15 };
    const at = (v: number[]) => Var.param(Float32Array.from(v), [6]);
    const sig = dpoLoss(at(policy), refLp, lengths, { beta: 0.1, lossType: "sigmoid", labelSmoothing: 0 }).item();
    expect(dpoLoss(at(policy), refLp, lengths, { beta: 0.1, lossType: "robust", labelSmoothing: 0 }).item()).toBe(sig);
    // sft: the chosen completions' NLL per token over the batch ((30.5 + 21.25 + 40) / 15 tokens), added with its weight
    const sft = dpoLoss(at(policy), refLp, lengths, { beta: 0.1, lossType: "sft", labelSmoothing: 0 }).item();
    expect(sft).toBeCloseTo(91.75 / 15, 5);
    expect(dpoLoss(at(policy), refLp, lengths, { beta: 0.1, lossType: ["sigmoid", "sft"], lossWeights: [1, 0.4], labelSmoothing: 0 }).item()).toBeCloseTo(sig + 0.4 * sft, 6);
    for (const c of [
      { beta: 0.1, lossType: "sigmoid" as const, labelSmoothing: 0 },
      { beta: 0.5, lossType: "ipo" as const, labelSmoothing: 0 },
      { beta: 0.3, lossType: "robust" as const, labelSmoothing: 0.2 },
      { beta: 0.1, lossType: "sft" as const, labelSmoothing: 0 },
      { beta: 0.3, lossType: "apo_zero" as const, labelSmoothing: 0 },
      { beta: 0.1, lossType: ["sigmoid", "sft"] as const, lossWeights: [1, 0.4], labelSmoothing: 0 },
    ]) {
      const p = at(policy);
      backward(dpoLoss(p, refLp, lengths, c));
      const h = 1e-3;
      for (let i = 0; i < 6; i++) {
        const plus = policy.slice(), minus = policy.slice();
        plus[i]! += h; minus[i]! -= h;
        const fd = (dpoLoss(at(plus), refLp, lengths, c).item() - dpoLoss(at(minus), refLp, lengths, c).item()) / (2 * h);
        expect(Math.abs(p.grad![i]! - fd), `${c.lossType} d/dlogp[${i}]`).toBeLessThan(2e-4);
      }
    }
  });
});
