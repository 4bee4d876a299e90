// The one training loop (lib/peft/train-loop.ts) under LoRA: trainLora with file order, plain Adam and
// one batch per step reproduces PEFT's 5-step trajectory (test/fixtures/peft/tiny-llama-lora-train);
// onProgress reports (done, total, {metrics: {loss}}) every step; a time budget alone bounds a run.
import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { LoraModel, trainLora } from "../lib/peft/lora-train.js";
import { withTrainerDefaults } from "../lib/peft/train-loop.js";
import { createDifferentiableBackend } from "../lib/autograd/differentiable.js";
import { diffStats, intRows } from "./peft-helpers.js";

const FIX = "test/fixtures/peft/tiny-llama-lora-train";
const golden = SafetensorsFile.open(path.join(FIX, "golden.safetensors"));
const gjson = JSON.parse(fs.readFileSync(path.join(FIX, "golden.json"), "utf8")) as { modules: string[]; losses_per_step: number[]; adam: { lr: number } };
const ref = (name: string) => golden.read(name).toFloat32();
const CONFIG = { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] };

describe("trainLora (the shared loop)", () => {
  it("reproduces PEFT's Adam trajectory and reports progress with the loss", async () => {
    const be = await createDifferentiableBackend("cpu");
    try {
      const base = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama", { backend: be });
      const ids = intRows(golden, "input_ids"), mask = intRows(golden, "attention_mask");
      // The golden batch without its padding: the loop collates it back (right padding, labels −100 there).
      const examples = ids.map((row, b) => {
        const n = mask[b]!.reduce((a, x) => a + x, 0);
        return { inputIds: row.slice(0, n), labels: row.slice(0, n) };
      });
      const lora = LoraModel.fromValues(base, CONFIG, new Map(gjson.modules.map((m) => [m, { A: ref(`init.${m}.lora_A`), B: ref(`init.${m}.lora_B`) }])));
      const calls: [number, number, number][] = [];
      const r = await trainLora(lora, examples, {
        optimizer: "adam", lr: gjson.adam.lr, batchSize: 2, steps: 5, shuffle: false, padTokenId: 0,
        onProgress: (done, total, info) => calls.push([done, total, info?.metrics?.loss ?? NaN]),
      });
      expect(diffStats(r.losses, gjson.losses_per_step).abs).toBeLessThan(1e-5);
      for (const [m, { A, B }] of lora.modules) {
        expect(diffStats(A.value, ref(`final.${m}.lora_A`)).abs).toBeLessThan(1e-4);
        expect(diffStats(B.value, ref(`final.${m}.lora_B`)).abs).toBeLessThan(1e-4);
      }
      expect(calls).toEqual([[0, 5, NaN], ...r.losses.map((l, i) => [i + 1, 5, l])]); // the start, then every step
      expect(r.logs.map((l) => l.step)).toEqual([1, 2, 3, 4, 5]);

      // Only a time budget: steps until it runs out (progress total 0 = unknown); a decaying schedule must go by time.
      const timed = await trainLora(lora, examples, { lr: 1e-3, batchSize: 1, timeBudgetMs: 400, padTokenId: 0 });
      expect(timed.stopReason).toBe("time-budget");
      expect(timed.steps).toBeGreaterThan(0);
      await expect(trainLora(lora, examples, { lr: 1e-3, batchSize: 1, timeBudgetMs: 400, schedule: "linear" }))
        .rejects.toThrow(/needs scheduleBy "time"/);
      await expect(trainLora(lora, examples, { lr: 1e-3, batchSize: 1 })).rejects.toThrow(/give a positive number of steps or epochs/);
    } finally {
      be.dispose();
    }
  });

  it("withTrainerDefaults: HF TrainingArguments' weight_decay 0 and max_grad_norm 1.0 where left open (0 = no clipping)", () => {
    expect(withTrainerDefaults({ lr: 1, batchSize: 1 })).toMatchObject({ weightDecay: 0, maxGradNorm: 1 });
    expect(withTrainerDefaults({ lr: 1, batchSize: 1, weightDecay: 0.1, maxGradNorm: 0.5 })).toMatchObject({ weightDecay: 0.1, maxGradNorm: 0.5 });
    expect(withTrainerDefaults({ lr: 1, batchSize: 1, maxGradNorm: 0 }).maxGradNorm).toBeUndefined();
  });
});
