/**
 * generate() on the WebGPU backend (Dawn; lavapipe on CI): the same tokens as
 * HF for greedy, repetition penalty, a left-padded batch and beam search —
 * the last one exercises the KV cache's batch reordering on the GPU. Greedy
 * and sampling choose tokens on the GPU (gpu/ops/select.ts): the same tokens
 * as the CPU's host loop, stop strings and streaming included, and a seeded
 * sampling run repeats itself.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from "vitest";
import * as fs from "node:fs";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { generate, streamGenerate } from "../lib/generate/index.js";
import type { WebGpuBackend } from "../gpu/index.js";

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

  it("greedy and sampling choose tokens on the GPU; scores asked for fall back to the host loop", async () => {
    const spy = vi.spyOn(gpu.backend as WebGpuBackend, "tokenSelector");
    try {
      await generate(gpu, { inputIds: [golden.prompt], maxNewTokens: 2 });
      await generate(gpu, { inputIds: [golden.prompt], maxNewTokens: 2, doSample: true, seed: 1 });
      expect(spy).toHaveBeenCalledTimes(2);
      expect(spy.mock.results.every((r) => r.value !== undefined)).toBe(true);
      const d = await generate(gpu, { inputIds: [golden.prompt], maxNewTokens: 2, returnDictInGenerate: true, outputScores: true });
      expect(spy).toHaveBeenCalledTimes(2);
      expect(d.scores).toHaveLength(2);
    } finally {
      spy.mockRestore();
    }
  });

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

  describe("against the CPU's host loop", () => {
    let cpu: LlamaForCausalLM;
    beforeAll(async () => {
      cpu = await LlamaForCausalLM.fromPretrained(DIR);
    });
    // A toy tokenizer (one letter per id) so that stop strings end rows at different steps.
    const tokenizer = { decode: (ids: number[]) => ids.map((i) => String.fromCharCode(97 + (i % 26))).join("") };

    it("a left-padded batch with EOS, stop strings, min_new_tokens and a repetition penalty: identical sequences", async () => {
      const c = refCase("greedy_batch_left_padded_eos");
      const opts = {
        inputIds: c.input_ids, attentionMask: c.attention_mask!, maxNewTokens: 12, eosTokenId: [267, 301], minNewTokens: 2,
        repetitionPenalty: 1.1, stopStrings: ["r"], tokenizer, padTokenId: 0,
      };
      const want = await generate(cpu, opts);
      // Row 1 stops on the stop string at its second new token ("r" = 485) and is padded while row 0 runs on to EOS.
      expect(want[1]!.slice(12)).toEqual([185, 485, 0]);
      expect(want[0]![want[0]!.length - 1]).toBe(267);
      expect(await generate(gpu, opts)).toEqual(want);
    });

    it("sampling with a seed: the same draws as the CPU (same xoshiro uniforms), and the same again on a second run", async () => {
      const opts = {
        inputIds: [golden.prompt, golden.prompt], maxNewTokens: 12, doSample: true, seed: 42, temperature: 0.8, topK: 40, topP: 0.95,
        numReturnSequences: 2,
      };
      const first = await generate(gpu, opts);
      expect(await generate(gpu, opts)).toEqual(first);
      expect(first).toEqual(await generate(cpu, opts));
      expect(new Set(first.map((r) => r.join(","))).size).toBeGreaterThan(1); // the rows really are sampled
      expect(await generate(gpu, { ...opts, seed: 43 })).not.toEqual(first);
    });

    it("streamGenerate streams the GPU-chosen tokens", async () => {
      const chunks: number[] = [];
      for await (const ch of streamGenerate(gpu, { inputIds: [golden.prompt], maxNewTokens: n })) chunks.push(...ch.tokenIds);
      expect([...golden.prompt, ...chunks]).toEqual(golden.greedy);
    });
  });
});
