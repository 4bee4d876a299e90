/**
 * Greedy decoding through the KV cache reproduces HF's `generate` sequences
 * token for token (with and without repetition_penalty 1.3). A minimal loop
 * here; lib/generate owns the full generate().
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { HF, golden, applyRepetitionPenalty, argmax } from "./core-helpers.js";

async function greedy(model: LlamaForCausalLM, prompt: number[], newTokens: number, penalty = 1): Promise<number[]> {
  const seq = [...prompt];
  let out = await model.forward({ inputIds: [prompt], logitsToKeep: 1 });
  for (let step = 0; step < newTokens; step++) {
    const logits = out.logits.toFloat32().slice(); // [1, 1, V]
    expect(out.logits.shape).toEqual([1, 1, model.config.vocab_size]);
    if (penalty !== 1) applyRepetitionPenalty(logits, seq, penalty);
    const next = argmax(logits);
    seq.push(next);
    if (step + 1 < newTokens) out = await model.forward({ inputIds: [[next]], pastKeyValues: out.pastKeyValues, logitsToKeep: 1 });
  }
  return seq;
}

for (const name of ["tiny-llama", "tiny-llama-gqa-llama3rope"]) {
  describe(`greedy decode with the KV cache: ${name}`, () => {
    let model: LlamaForCausalLM;
    const g = golden(name);
    beforeAll(async () => {
      model = await LlamaForCausalLM.fromPretrained(path.join(HF, name));
    });
    g.json.generate.forEach((gen, i) => {
      const n = gen.greedy.length - gen.prompt.length;
      it(`prompt ${i}: greedy`, async () => {
        expect(await greedy(model, gen.prompt, n)).toEqual(gen.greedy);
      });
      it(`prompt ${i}: greedy, repetition_penalty 1.3`, async () => {
        expect(await greedy(model, gen.prompt, n, 1.3)).toEqual(gen["greedy_repetition_penalty_1.3"]);
      });
    });
  });
}
