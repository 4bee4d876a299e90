// Generation with a soft prompt against PEFT 0.21's own `generate` (test/fixtures/peft/prompt-generate,
// made by scripts/fixtures/make_prompt_generate.py): greedy sequences token-identical and every step's
// scores within 1e-4, for equal-length and left-padded batches, on the CPU and on WebGPU.
import { describe, it, expect, afterAll } from "vitest";
import * as fs from "node:fs";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { getBackend } from "../lib/backend/registry.js";
import type { Backend } from "../lib/backend/backend.js";

interface Case { name: string; input_ids: number[][]; attention_mask: number[][]; sequences: number[][]; scores: number[][][] }
const ref = JSON.parse(fs.readFileSync("test/fixtures/peft/prompt-generate/reference.json", "utf8")) as { max_new_tokens: number; cases: Case[] };

describe("prompt-tuned generate matches PEFT's", () => {
  const backends: Backend[] = [];
  afterAll(() => backends.forEach((b) => b.dispose()));

  for (const device of ["cpu", "webgpu"] as const) {
    for (const c of ref.cases) {
      it(`${device}: ${c.name} batch, greedy sequences and scores`, async () => {
        const be = await getBackend(device, { webgpu: {} });
        backends.push(be);
        const base = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama", { backend: be });
        const pm = await PromptTuningModel.fromPretrained(base, "test/fixtures/peft/tiny-llama-prompt-tuning");
        const out = await pm.generate({
          inputIds: c.input_ids, attentionMask: c.attention_mask, maxNewTokens: ref.max_new_tokens, doSample: false,
          padTokenId: 0, returnDictInGenerate: true, outputScores: true,
        });
        expect(out.sequences).toEqual(c.sequences);
        expect(out.scores).toHaveLength(c.scores.length);
        let worst = 0;
        out.scores!.forEach((step, s) => {
          const got = step.toFloat32();
          c.scores[s]!.flat().forEach((v, i) => (worst = Math.max(worst, Math.abs(got[i]! - v))));
        });
        expect(worst).toBeLessThan(device === "cpu" ? 1e-4 : 1e-3);
        // Not the base model's continuation: the soft prompt changes what is generated.
        const plain = await base.generate({ inputIds: c.input_ids, attentionMask: c.attention_mask, maxNewTokens: ref.max_new_tokens, doSample: false, padTokenId: 0 });
        expect(plain).not.toEqual(c.sequences);
      });
    }
  }
});
