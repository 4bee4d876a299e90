// trainPrompt's options for the topic recipe (bench/prompt-tune-bench.ts, ours-text20-balanced3-lindecay-5min):
// class-balanced batches, a learning-rate schedule that runs over the time budget, and the prompt's moving
// average — on the tiny fixture model.
import { describe, it, expect, beforeAll } from "vitest";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { classBalancedOrder, trainPrompt } from "../lib/peft/prompt-train.js";
import { seededUniform } from "../lib/peft/prompt-init.js";
import type { TokenExample } from "../lib/peft/prompt-data.js";

const CHOICES = [50, 60, 70];
/** 12 examples: 6 of class 0, 4 of class 1, 2 of class 2 (the class is the first label token). */
const examples: TokenExample[] = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2].map((c, i) => ({
  inputIds: [1, 10 + i, 20, CHOICES[c]!], labels: [-100, -100, -100, CHOICES[c]!],
}));
const classOf = (e: TokenExample) => CHOICES.indexOf(e.labels.find((t) => t !== -100)!);

describe("trainPrompt: balanced batches, time-based schedule, EMA", () => {
  let model: LlamaForCausalLM;
  beforeAll(async () => {
    model = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama", { backend: await TapeBackend.create() });
  });

  it("classBalancedOrder interleaves the classes round-robin, each example once, seeded", () => {
    const order = classBalancedOrder(examples, CHOICES, seededUniform(3));
    expect(new Set(order).size).toBe(examples.length);
    // While every class has examples left, consecutive triples hold one of each.
    expect(order.slice(0, 6).map(classOf)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(order.slice(6, 10).map(classOf)).toEqual([0, 1, 0, 1]);
    expect(order.slice(10).map(classOf)).toEqual([0, 0]);
    expect(classBalancedOrder(examples, CHOICES, seededUniform(3))).toEqual(order);
    expect(classBalancedOrder(examples, CHOICES, seededUniform(4))).not.toEqual(order);
  });

  it("balancedBatches feeds batches of one example per class and needs choices", async () => {
    const pm = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 2 }, { seed: 1 });
    await expect(trainPrompt(pm, examples, { lr: 0.01, batchSize: 3, steps: 1, balancedBatches: true }))
      .rejects.toThrow(/balancedBatches needs choices/);
    const r = await trainPrompt(pm, examples, { lr: 0.01, batchSize: 3, steps: 2, balancedBatches: true, choices: CHOICES });
    expect(r.steps).toBe(2);
  });

  it("scheduleBy \"time\": warmup by steps, then a linear decay that reaches 0 when the budget runs out", async () => {
    const pm = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 2 }, { seed: 2 });
    await expect(trainPrompt(pm, examples, { lr: 0.1, batchSize: 3, steps: 5, schedule: "linear", scheduleBy: "time" }))
      .rejects.toThrow(/needs a positive timeBudgetMs/);
    const lrs: number[] = [];
    const r = await trainPrompt(pm, examples, {
      lr: 0.1, batchSize: 3, steps: 10_000, schedule: "linear", scheduleBy: "time", warmupSteps: 2, timeBudgetMs: 1500,
      onStep: (s) => { lrs.push(s.lr); },
    });
    expect(r.stoppedEarly).toBe(true); // the budget, not the step cap, ended it
    expect(lrs.length).toBeGreaterThan(5);
    expect(lrs[0]).toBe(0); // warmup starts at 0
    expect(lrs[1]!).toBeGreaterThan(0);
    const after = lrs.slice(2);
    after.forEach((lr, i) => { if (i > 0) expect(lr).toBeLessThanOrEqual(after[i - 1]!); });
    expect(after[0]!).toBeLessThanOrEqual(0.1);
    expect(after.at(-1)!).toBeLessThan(0.1 * 0.5); // most of the budget had passed
  });

  it("emaDecay leaves the moving average of the prompt (from the initial one) in place at the end", async () => {
    const pm = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 2 }, { seed: 3 });
    const d = 0.5;
    const ema = pm.prompt.value.slice();
    let last = pm.prompt.value.slice();
    await trainPrompt(pm, examples, {
      lr: 0.05, batchSize: 4, steps: 4, emaDecay: d,
      onStep: () => {
        last = pm.prompt.value.slice();
        for (let i = 0; i < ema.length; i++) ema[i] = d * ema[i]! + (1 - d) * last[i]!;
      },
    });
    expect(Array.from(pm.prompt.value)).toEqual(Array.from(ema));
    expect(Array.from(pm.prompt.value)).not.toEqual(Array.from(last));
    await expect(trainPrompt(pm, examples, { lr: 0.05, batchSize: 4, steps: 1, emaDecay: 1 })).rejects.toThrow(/emaDecay 1/);
  });
});
