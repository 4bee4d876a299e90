/**
 * generate() with the real model against HF transformers:
 *  - every "generate" entry of test/fixtures/hf/* /golden.json (greedy, and
 *    greedy with repetition_penalty 1.3), token for token;
 *  - test/fixtures/generate/hf_reference.json: beam search (num_beams,
 *    num_return_sequences, length_penalty, early_stopping true/false/"never",
 *    several EOS ids, left-padded batches), batched greedy with rows finishing
 *    at different steps, min_new_tokens, the processed scores of the first
 *    steps, and the default model's greedy texts of models/tiny-stories/samples.json.
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import { LlamaForCausalLM } from "../lib/model/index.js";
import { generate, type GenerateOptions, type GenerateOutput } from "../lib/generate/index.js";

interface RefCase {
  name: string;
  model: string;
  input_ids: number[][];
  attention_mask: number[][] | null;
  kwargs: Record<string, unknown>;
  sequences: number[][];
  sequences_scores?: number[];
  first_scores?: (number | null)[][][];
}
interface StoryCase {
  prompt: string;
  input_ids: number[];
  hf_float32_sequence: number[];
  hf_float32_text_equals_samples: boolean;
}
const ref = JSON.parse(fs.readFileSync("test/fixtures/generate/hf_reference.json", "utf8")) as {
  generate: RefCase[];
  stories_samples_greedy: StoryCase[];
};

const models = new Map<string, LlamaForCausalLM>();
async function model(path: string): Promise<LlamaForCausalLM> {
  let m = models.get(path);
  if (!m) {
    m = await LlamaForCausalLM.fromPretrained(path);
    models.set(path, m);
  }
  return m;
}

const TINY = ["test/fixtures/hf/tiny-llama", "test/fixtures/hf/tiny-llama-gqa-llama3rope"];

describe("greedy vs golden.json", () => {
  for (const dir of TINY) {
    const golden = JSON.parse(fs.readFileSync(`${dir}/golden.json`, "utf8")) as {
      generate: { prompt: number[]; greedy: number[]; "greedy_repetition_penalty_1.3": number[] }[];
    };
    golden.generate.forEach((g, i) => {
      const n = g.greedy.length - g.prompt.length;
      it(`${dir} #${i} greedy`, async () => {
        const m = await model(dir);
        expect((await generate(m, { inputIds: [g.prompt], maxNewTokens: n }))[0]).toEqual(g.greedy);
      });
      it(`${dir} #${i} greedy, repetition_penalty 1.3`, async () => {
        const m = await model(dir);
        const out = await generate(m, { inputIds: [g.prompt], maxNewTokens: n, repetitionPenalty: 1.3 });
        expect(out[0]).toEqual(g["greedy_repetition_penalty_1.3"]);
      });
    });
  }

  it("the KV cache changes nothing: useCache false gives the same tokens", async () => {
    const dir = TINY[1]!;
    const g = JSON.parse(fs.readFileSync(`${dir}/golden.json`, "utf8")).generate[0];
    const m = await model(dir);
    const out = await generate(m, { inputIds: [g.prompt], maxNewTokens: 12, repetitionPenalty: 1.3, useCache: false });
    expect(out[0]).toEqual(g["greedy_repetition_penalty_1.3"].slice(0, g.prompt.length + 12));
  });
});

/** HF generate kwargs → our options. */
function options(c: RefCase): GenerateOptions {
  const map: Record<string, keyof GenerateOptions> = {
    num_beams: "numBeams", num_return_sequences: "numReturnSequences", max_new_tokens: "maxNewTokens",
    eos_token_id: "eosTokenId", early_stopping: "earlyStopping", length_penalty: "lengthPenalty",
    repetition_penalty: "repetitionPenalty", min_new_tokens: "minNewTokens",
  };
  const o: Record<string, unknown> = { inputIds: c.input_ids, returnDictInGenerate: true, outputScores: true };
  if (c.attention_mask) o.attentionMask = c.attention_mask;
  for (const [k, v] of Object.entries(c.kwargs)) {
    expect(map[k], `unmapped kwarg ${k}`).toBeDefined();
    o[map[k]!] = v;
  }
  return o as unknown as GenerateOptions;
}

describe("generate vs HF reference (beam search, batches, min_new_tokens, scores)", () => {
  it("the reference covers beam search and batches", () => {
    expect(ref.generate.filter((c) => ((c.kwargs.num_beams as number) ?? 1) > 1).length).toBeGreaterThanOrEqual(8);
    expect(ref.generate.filter((c) => c.input_ids.length > 1).length).toBeGreaterThanOrEqual(3);
  });
  for (const c of ref.generate) {
    it(c.name, async () => {
      const m = await model(c.model);
      const out = (await generate(m, options(c))) as GenerateOutput;
      expect(out.sequences).toEqual(c.sequences);
      if (c.sequences_scores) {
        expect(out.sequencesScores).toHaveLength(c.sequences_scores.length);
        // float32 scores: length_penalty −1 multiplies the summed log-probs by the length, up to −780
        // here, where one float32 ulp is 6e-5; so 1e-4, or 3e-7 relative (~2.5 ulp) where that is larger.
        out.sequencesScores!.forEach((s, i) => {
          const want = c.sequences_scores![i]!;
          expect(Math.abs(s - want)).toBeLessThan(Math.max(1e-4, 3e-7 * Math.abs(want)));
        });
      }
      if (c.first_scores) {
        c.first_scores.forEach((step, t) => {
          const got = out.scores![t]!.data as Float32Array;
          const V = step[0]!.length;
          step.forEach((row, r) =>
            row.forEach((want, v) => {
              const x = got[r * V + v]!;
              if (want === null) expect(x).toBe(-Infinity);
              else expect(Math.abs(x - want)).toBeLessThan(1e-4);
            }),
          );
        });
      }
    });
  }
});

describe("default model: greedy texts of models/tiny-stories/samples.json", () => {
  const stories = ref.stories_samples_greedy;
  it("HF float32 reproduces samples.json for all but the one near-tie prompt", () => {
    expect(stories).toHaveLength(8);
    expect(stories.filter((s) => s.hf_float32_text_equals_samples)).toHaveLength(7);
  });
  it("our greedy equals HF's float32 greedy for every samples.json prompt (to EOS)", async () => {
    const m = await model("models/tiny-stories");
    for (const s of stories) {
      const out = await generate(m, { inputIds: [s.input_ids], maxNewTokens: 300 });
      expect(out[0], s.prompt).toEqual(s.hf_float32_sequence);
    }
  });
});

describe("batches", () => {
  it("left-padded batch greedy equals each prompt alone", async () => {
    const dir = TINY[0]!;
    const m = await model(dir);
    const golden = JSON.parse(fs.readFileSync(`${dir}/golden.json`, "utf8"));
    const prompts: number[][] = golden.generate.map((g: { prompt: number[] }) => g.prompt);
    prompts.push([1, 300, 301]);
    const T = Math.max(...prompts.map((p) => p.length));
    const inputIds = prompts.map((p) => [...new Array(T - p.length).fill(0), ...p]);
    const attentionMask = prompts.map((p) => [...new Array(T - p.length).fill(0), ...p.map(() => 1)]);
    const batch = await generate(m, { inputIds, attentionMask, maxNewTokens: 10, repetitionPenalty: 1.1 });
    for (let i = 0; i < prompts.length; i++) {
      const alone = await generate(m, { inputIds: [prompts[i]!], maxNewTokens: 10, repetitionPenalty: 1.1 });
      // HF's repetition penalty also sees the pad tokens of the batch row; id 0 never wins here, so the
      // generated tokens agree.
      expect(batch[i]!.slice(T)).toEqual(alone[0]!.slice(prompts[i]!.length));
    }
  });

  it("the mask is inferred from the pad id when not given (HF)", async () => {
    const m = await model(TINY[0]!);
    const c = ref.generate.find((x) => x.name === "greedy_batch_left_padded_eos")!;
    const out = await generate(m, { inputIds: c.input_ids, maxNewTokens: 12, eosTokenId: [267, 301] });
    expect(out).toEqual(c.sequences);
  });
});
