/**
 * generate() on the WebGPU backend (Dawn; lavapipe on CI): the same tokens as
 * HF for greedy, repetition penalty, a left-padded batch and beam search —
 * the last one exercises the KV cache's batch reordering on the GPU.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { generate } from "../lib/generate/index.js";

const DIR = "test/fixtures/hf/tiny-llama";
const golden = JSON.parse(fs.readFileSync(`${DIR}/golden.json`, "utf8")).generate[0] as {
  prompt: number[];
  greedy: number[];
  "greedy_repetition_penalty_1.3": number[];
};
interface RefCase { name: string; input_ids: number[][]; attention_mask: number[][] | null; sequences: number[][] }
const ref = JSON.parse(fs.readFileSync("test/fixtures/generate/hf_reference.json", "utf8")) as { generate: RefCase[] };
const refCase = (name: string) => ref.generate.find((c) => c.name === name)!;

describe("generate on webgpu", () => {
  let gpu: LlamaForCausalLM;
  beforeAll(async () => {
    gpu = await LlamaForCausalLM.fromPretrained(DIR, { device: "webgpu" });
  });
  afterAll(() => gpu?.backend.dispose());
  const n = golden.greedy.length - golden.prompt.length;

  it("greedy and repetition_penalty 1.3 match HF's golden tokens", async () => {
    expect((await generate(gpu, { inputIds: [golden.prompt], maxNewTokens: n }))[0]).toEqual(golden.greedy);
    expect((await generate(gpu, { inputIds: [golden.prompt], maxNewTokens: n, repetitionPenalty: 1.3 }))[0]).toEqual(
      golden["greedy_repetition_penalty_1.3"],
    );
  });

  it("left-padded batch with rows finishing at different steps", async () => {
    const c = refCase("greedy_batch_left_padded_eos");
    const out = await generate(gpu, { inputIds: c.input_ids, attentionMask: c.attention_mask!, maxNewTokens: 12, eosTokenId: [267, 301] });
    expect(out).toEqual(c.sequences);
  });

  it("beam search (cache rows reordered on the GPU)", async () => {
    const c = refCase("beam3_batch_left_padded");
    const out = await generate(gpu, {
      inputIds: c.input_ids, attentionMask: c.attention_mask!, numBeams: 3, numReturnSequences: 2, maxNewTokens: 9, eosTokenId: [267],
    });
    expect(out).toEqual(c.sequences);
  });
});
