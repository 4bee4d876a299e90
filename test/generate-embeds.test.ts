// generate() fed inputsEmbeds (HF's inputs_embeds) against HF transformers' own answers
// (test/fixtures/generate/inputs_embeds.json, made by scripts/fixtures/make_generate_embeds.py):
// embeddings alone (only new tokens come back), with input_ids (the ids start each row), beam
// search, and embeddings no token has; scores within 1e-4.
import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { Tensor } from "../lib/tensor/tensor.js";

interface Case { name: string; with_ids: boolean; num_beams: number; embeds?: number[][][]; sequences: number[][]; scores?: number[][][] }
const ref = JSON.parse(fs.readFileSync("test/fixtures/generate/inputs_embeds.json", "utf8")) as {
  input_ids: number[][]; attention_mask: number[][]; max_new_tokens: number; cases: Case[];
};

describe("generate with inputsEmbeds matches HF", () => {
  let model: LlamaForCausalLM;
  let lookup: Tensor;
  beforeAll(async () => {
    model = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama", { device: "cpu" });
    lookup = await model.getInputEmbeddings(ref.input_ids);
  });

  for (const c of ref.cases) {
    it(c.name, async () => {
      const embeds = c.embeds ? new Tensor(Float32Array.from(c.embeds.flat(2)), lookup.shape, "f32") : lookup;
      const out = await model.generate({
        inputsEmbeds: embeds, inputIds: c.with_ids ? ref.input_ids : undefined, attentionMask: ref.attention_mask,
        maxNewTokens: ref.max_new_tokens, doSample: false, padTokenId: 0, numBeams: c.num_beams,
        returnDictInGenerate: true, outputScores: !!c.scores,
      });
      expect(out.sequences).toEqual(c.sequences);
      if (c.scores) {
        let worst = 0;
        out.scores!.forEach((step, s) => step.toFloat32().forEach((v, i) => (worst = Math.max(worst, Math.abs(v - c.scores![s]!.flat()[i]!)))));
        expect(worst).toBeLessThan(1e-4);
      }
    });
  }

  it("says what is wrong with bad embeddings or options", async () => {
    await expect(model.generate({ inputsEmbeds: new Tensor(new Float32Array(8), [8], "f32"), maxNewTokens: 2 })).rejects.toThrow(/inputsEmbeds has shape \[8\]/);
    await expect(model.generate({ inputsEmbeds: lookup, inputIds: [[1, 2]], maxNewTokens: 2 })).rejects.toThrow(/inputIds is \[1, 2\] but inputsEmbeds is \[2, 5/);
    await expect(model.generate({ inputsEmbeds: lookup, maxNewTokens: 2, useCache: false })).rejects.toThrow(/needs the KV cache/);
    await expect(model.generate({ maxNewTokens: 2 })).rejects.toThrow(/inputIds is empty/);
  });
});
