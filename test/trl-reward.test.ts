// The reward model against TRL 1.13's RewardTrainer (test/fixtures/trl/reward-lora and reward-head,
// made by scripts/fixtures/make_trl_reward.py): tiny-llama loaded as TRL loads a causal checkpoint
// for a reward model (num_labels 1, a new score head: TRL's drawn values are used), pad = EOS so the
// reward is read before the final EOS. With LoRA SEQ_CLS (score head in modules_to_save, margins,
// center_rewards_coefficient 0.01) and head-only: loss, every metric, every gradient (LoRA A/B and
// the score head), 5 Adam steps — CPU tape within 1e-5, WebGPU within 1e-3 relative. The saved
// adapter has PEFT's keys and loads back (ours and PEFT's).
import { describe, it, expect, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { LoraModel } from "../lib/peft/lora-train.js";
import { loadLora, readLoraAdapter } from "../lib/peft/lora.js";
import { RewardModel, loadRewardBase, trainReward } from "../lib/peft/reward.js";
import type { RewardExample } from "../lib/peft/preference-data.js";
import { LlamaForSequenceClassification } from "../lib/model/seq-cls.js";
import { createDifferentiableBackend, type DifferentiableBackend } from "../lib/autograd/differentiable.js";
import { adamRun, closeTo, diffStats } from "./peft-helpers.js";
import { expectMetrics, expectNear } from "./trl-helpers.js";

const BASE = "test/fixtures/hf/tiny-llama";

interface Golden {
  pad_token_id: number; center_rewards_coefficient: number | null;
  lora: { r: number; lora_alpha: number; target_modules: string[] } | null;
  pairs: { chosen_ids: number[]; rejected_ids: number[]; margin?: number }[];
  params: string[];
  init: { loss: number; metrics: Record<string, number> };
  adam: { lr: number; betas: [number, number]; eps: number };
  steps: { loss: number; metrics: Record<string, number> }[];
}

function fixture(name: string) {
  const dir = `test/fixtures/trl/${name}`;
  const g = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as Golden;
  const st = SafetensorsFile.open(path.join(dir, "golden.safetensors"));
  const ref = (n: string) => st.read(n).toFloat32();
  const examples: RewardExample[] = g.pairs.map((p) => ({ chosenIds: p.chosen_ids, rejectedIds: p.rejected_ids, margin: p.margin }));
  return { dir, g, ref, examples };
}

/** A reward model at TRL's starting point: its drawn score head, and (LoRA) its A/B values. */
async function atInit(base: LlamaForSequenceClassification, f: ReturnType<typeof fixture>): Promise<RewardModel> {
  const head = f.ref("score_init");
  if (!f.g.lora) return RewardModel.create(base, { head, padTokenId: f.g.pad_token_id });
  const mods = f.g.params.filter((p) => p.endsWith(".lora_A.weight")).map((p) => p.replace(".lora_A.weight", ""));
  const values = new Map(mods.map((m) => [m, { A: f.ref(`init.${m}.lora_A.weight`), B: f.ref(`init.${m}.lora_B.weight`) }]));
  return RewardModel.create(base, { lora: LoraModel.fromValues(base, f.g.lora, values, { head }), padTokenId: f.g.pad_token_id });
}

/** Our trained tensors under TRL's parameter names. */
function named(rm: RewardModel): Map<string, Float32Array[]> {
  const out = new Map<string, Float32Array[]>();
  out.set("score.weight", [rm.head.value, rm.head.grad ?? new Float32Array()]);
  for (const [m, { A, B }] of rm.lora?.modules ?? []) {
    out.set(`${m}.lora_A.weight`, [A.value, A.grad ?? new Float32Array()]);
    out.set(`${m}.lora_B.weight`, [B.value, B.grad ?? new Float32Array()]);
  }
  return out;
}

describe("reward model matches TRL's RewardTrainer", () => {
  const backends: DifferentiableBackend[] = [];
  afterAll(() => backends.forEach((b) => b.dispose()));

  for (const name of ["reward-lora", "reward-head"] as const) {
    const f = fixture(name);
    for (const device of ["cpu", "webgpu"] as const) {
      it(`${name} on ${device}: loss, metrics, every gradient, 5 Adam steps`, async () => {
        const be = await createDifferentiableBackend(device);
        backends.push(be);
        const base = await loadRewardBase(BASE, { backend: be });
        expect(base.config.num_labels).toBe(1);
        const opts = { centerRewardsCoefficient: f.g.center_rewards_coefficient };

        const rm = await atInit(base, f);
        expect([...named(rm).keys()].sort()).toEqual([...f.g.params].sort());
        const r0 = await rm.lossAndGrad(f.examples, opts);
        expectNear(device, "loss at init", r0.loss, f.g.init.loss);
        expectMetrics(device, "init", { ...r0.metrics, num_tokens: r0.tokens }, f.g.init.metrics);
        for (const [n, [, grad]] of named(rm)) closeTo(device, diffStats(grad!, f.ref(`grad.${n}`)), 1e-5);

        const trained = await atInit(base, f);
        const metrics: Record<string, number>[] = [];
        const losses = await adamRun(trained.parameters(), f.g.adam, 5, async () => {
          const r = await trained.lossAndGrad(f.examples, opts);
          metrics.push({ ...r.metrics });
          return r.loss;
        });
        f.g.steps.forEach((s, i) => {
          expectNear(device, `loss at step ${i + 1}`, losses[i]!, s.loss);
          const { num_tokens: _, ...trl } = s.metrics;
          expectMetrics(device, `step ${i + 1}`, metrics[i]!, trl);
        });
        for (const [n, [value]] of named(trained)) closeTo(device, diffStats(value!, f.ref(`final.${n}`)), 1e-4);
      });
    }
  }

  it("the SEQ_CLS adapter saves as PEFT's (same keys, score head included), PEFT's loads, and scores match the live model", async () => {
    const f = fixture("reward-lora");
    const be = await createDifferentiableBackend("cpu");
    backends.push(be);
    const base = await loadRewardBase(BASE, { backend: be });
    // PEFT's adapter (after its 5 steps) = the golden final values.
    const peft = await RewardModel.fromPretrained(base, f.dir, { padTokenId: f.g.pad_token_id });
    for (const [n, [value]] of named(peft)) expect(diffStats(value!, f.ref(`final.${n}`)).abs, n).toBe(0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reward-"));
    try {
      await peft.savePretrained(dir, { baseModelNameOrPath: "../../hf/tiny-llama" });
      const ours = SafetensorsFile.open(path.join(dir, "adapter_model.safetensors"));
      const theirs = SafetensorsFile.open(path.join(f.dir, "adapter_model.safetensors"));
      expect(ours.names().sort()).toEqual(theirs.names().sort());
      for (const n of theirs.names()) expect(diffStats(ours.read(n).toFloat32(), theirs.read(n).toFloat32()).abs).toBe(0);
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      expect(cfg.task_type).toBe("SEQ_CLS");
      expect(cfg.modules_to_save).toEqual(["classifier", "score"]);
      // Merged inference (loadLora swaps the head too) gives the live adapter's rewards.
      const seqs = f.examples.flatMap((e) => [e.chosenIds, e.rejectedIds]);
      const live = await peft.score(seqs);
      const loaded = await loadLora(base, readLoraAdapter(dir));
      const plain = await RewardModel.fromPretrained(base, undefined, { padTokenId: f.g.pad_token_id });
      const merged = await plain.score(seqs);
      loaded.unload();
      expect(diffStats(merged, live).abs).toBeLessThan(1e-5);
      const unloaded = await (await RewardModel.fromPretrained(base, undefined, { padTokenId: f.g.pad_token_id })).score(seqs);
      expect(diffStats(unloaded, live).abs).toBeGreaterThan(1e-3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("trainReward: the loop with TRL's metrics; head-only saves a full HF reward model that loads back", async () => {
    const f = fixture("reward-head");
    const be = await createDifferentiableBackend("cpu");
    backends.push(be);
    const base = await loadRewardBase(BASE, { backend: be, seed: 5 });
    const rm = await RewardModel.create(base, { padTokenId: 2 });
    const steps: Record<string, number>[] = [];
    const r = await trainReward(rm, f.examples, { lr: 0.01, optimizer: "adam", batchSize: 3, steps: 8, onStep: (s) => { steps.push({ ...s.metrics }); } });
    expect(r.steps).toBe(8);
    expect(r.losses.at(-1)!).toBeLessThan(r.losses[0]!);
    expect(steps.at(-1)!.accuracy).toBe(1);
    expect(steps.map((s) => s.num_tokens)).toEqual([...Array(8).keys()].map((i) => 54 * (i + 1)));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reward-head-"));
    try {
      await rm.savePretrained(dir);
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>;
      expect(cfg.architectures).toEqual(["LlamaForSequenceClassification"]);
      expect(cfg.pad_token_id).toBe(2);
      const back = await RewardModel.fromPretrained(await loadRewardBase(dir, { backend: be }));
      const seqs = f.examples.flatMap((e) => [e.chosenIds, e.rejectedIds]);
      expect(diffStats(await back.score(seqs), await rm.score(seqs)).abs).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
