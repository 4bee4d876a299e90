/**
 * Parity with HF transformers on the golden fixtures (test/fixtures/hf): logits,
 * every hidden state, every attention map and the KV cache within 1e-4, for
 * the single sequence and the left-padded batch (unpadded query positions).
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { HF, golden, maskedMaxDiff } from "./core-helpers.js";

const TOL = 1e-4;

for (const name of ["tiny-llama", "tiny-llama-gqa-llama3rope"]) {
  describe(`forward parity: ${name}`, () => {
    let model: LlamaForCausalLM;
    const g = golden(name);
    beforeAll(async () => {
      model = await LlamaForCausalLM.fromPretrained(path.join(HF, name));
    });

    for (const caseName of Object.keys(g.json.cases)) {
      it(`${caseName}: logits, hidden states, attentions, past keys/values`, async () => {
        const c = g.json.cases[caseName]!;
        const out = await model.forward({
          inputIds: c.input_ids, attentionMask: c.attention_mask, outputHiddenStates: true, outputAttentions: true,
        });
        const ref = (k: string) => g.tensors.read(`${caseName}.${k}`);
        const L = model.config.num_hidden_layers;
        expect(maskedMaxDiff(out.logits, ref("logits"), c.attention_mask, 1)).toBeLessThanOrEqual(TOL);
        expect(out.hiddenStates).toHaveLength(L + 1);
        for (let i = 0; i <= L; i++) {
          expect(maskedMaxDiff(out.hiddenStates![i]!, ref(`hidden_states.${i}`), c.attention_mask, 1), `hidden_states.${i}`).toBeLessThanOrEqual(TOL);
        }
        expect(out.attentions).toHaveLength(L);
        const kv = await out.pastKeyValues!.toHost();
        for (let i = 0; i < L; i++) {
          expect(maskedMaxDiff(out.attentions![i]!, ref(`attentions.${i}`), c.attention_mask, 2), `attentions.${i}`).toBeLessThanOrEqual(TOL);
          expect(maskedMaxDiff(kv.keys[i]!, ref(`past_key.${i}`), c.attention_mask, 2), `past_key.${i}`).toBeLessThanOrEqual(TOL);
          expect(maskedMaxDiff(kv.values[i]!, ref(`past_value.${i}`), c.attention_mask, 2), `past_value.${i}`).toBeLessThanOrEqual(TOL);
        }
      });
    }

    it("prefill in two chunks through the KV cache gives the same logits as one pass", async () => {
      const c = g.json.cases.single!;
      const ids = c.input_ids[0]!;
      const cut = Math.floor(ids.length / 2);
      const first = await model.forward({ inputIds: [ids.slice(0, cut)] });
      const second = await model.forward({ inputIds: [ids.slice(cut)], pastKeyValues: first.pastKeyValues });
      expect(second.pastKeyValues!.getSeqLength()).toBe(ids.length);
      const ref = g.tensors.read("single.logits");
      const V = model.config.vocab_size;
      const tail = ref.toFloat32().subarray(cut * V);
      const got = second.logits.toFloat32();
      let max = 0;
      for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i]! - tail[i]!));
      expect(max).toBeLessThanOrEqual(TOL);
    });
  });
}
