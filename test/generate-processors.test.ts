/**
 * Logits processors against HF transformers 5.17 on the same logits
 * (test/fixtures/generate/hf_reference.json, made by
 * scripts/fixtures/make_generate_reference.py): which tokens are removed
 * must agree exactly, kept scores to float32 rounding.
 */
import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import {
  buildLogitsProcessors,
  MinNewTokensProcessor,
  MinPWarper,
  RepetitionPenaltyProcessor,
  resolveGeneration,
  TemperatureWarper,
  TopKWarper,
  TopPWarper,
  type GenerateOptions,
  type LogitsProcessor,
} from "../lib/generate/index.js";

interface ProcCase {
  name: string;
  config?: Record<string, number | number[]>;
  hf_generation_config?: Record<string, unknown>;
  prompt_length?: number;
  processors?: string[];
  output: (number | null)[][];
}
const ref = JSON.parse(fs.readFileSync("test/fixtures/generate/hf_reference.json", "utf8")) as {
  processors: { input_ids: number[][]; logits: number[][]; cases: ProcCase[] };
};
const { input_ids: inputIds, logits } = ref.processors;
const V = logits[0]!.length;
const B = logits.length;

function run(procs: LogitsProcessor[]): Float32Array {
  const scores = Float32Array.from(logits.flat());
  for (const p of procs) p.apply(inputIds, scores, V);
  return scores;
}

function expectSameAsHf(ours: Float32Array, hf: (number | null)[][]): void {
  for (let b = 0; b < B; b++) {
    for (let v = 0; v < V; v++) {
      const want = hf[b]![v]!;
      const got = ours[b * V + v]!;
      if (want === null) expect(got, `row ${b} token ${v} should be removed`).toBe(-Infinity);
      else {
        expect(got, `row ${b} token ${v} should be kept`).not.toBe(-Infinity);
        expect(Math.abs(got - want), `row ${b} token ${v}: ${got} vs HF ${want}`).toBeLessThanOrEqual(Math.abs(want) * 2e-7);
      }
    }
  }
}

const single: Record<string, (c: Record<string, number | number[]>) => LogitsProcessor> = {
  repetition_penalty: (c) => new RepetitionPenaltyProcessor(c.repetitionPenalty as number),
  temperature: (c) => new TemperatureWarper(c.temperature as number),
  top_k: (c) => new TopKWarper(c.topK as number, (c.minTokensToKeep as number) ?? 1),
  top_p: (c) => new TopPWarper(c.topP as number, (c.minTokensToKeep as number) ?? 1),
  min_p: (c) => new MinPWarper(c.minP as number, (c.minTokensToKeep as number) ?? 1),
  min_new_tokens: (c) => new MinNewTokensProcessor(c.promptLength as number, c.minNewTokens as number, c.eosTokenIds as number[]),
};

describe("logits processors vs HF", () => {
  const cases = ref.processors.cases.filter((c) => c.config);
  it("fixture has every processor", () => {
    expect(cases.length).toBeGreaterThanOrEqual(12);
  });
  for (const c of cases) {
    it(c.name, () => {
      const kind = Object.keys(single).find((k) => c.name.startsWith(k))!;
      expect(kind, c.name).toBeDefined();
      expectSameAsHf(run([single[kind]!(c.config!)]), c.output);
    });
  }
});

/** HF generation_config keys → our option names. */
function toOptions(kw: Record<string, unknown>): Partial<GenerateOptions> {
  const map: Record<string, keyof GenerateOptions> = {
    do_sample: "doSample", temperature: "temperature", top_k: "topK", top_p: "topP", min_p: "minP",
    repetition_penalty: "repetitionPenalty", min_new_tokens: "minNewTokens", num_beams: "numBeams", eos_token_id: "eosTokenId",
  };
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kw)) {
    expect(map[k], `unmapped HF option ${k}`).toBeDefined();
    o[map[k]!] = v;
  }
  return o as Partial<GenerateOptions>;
}

const HF_NAMES: Record<string, string> = {
  RepetitionPenaltyLogitsProcessor: "repetition_penalty",
  MinLengthLogitsProcessor: "min_length",
  MinNewTokensLengthLogitsProcessor: "min_new_tokens",
  TemperatureLogitsWarper: "temperature",
  TopKLogitsWarper: "top_k",
  TopPLogitsWarper: "top_p",
  MinPLogitsWarper: "min_p",
};

describe("processor pipelines as generate() builds them vs HF", () => {
  // The tiny fixture's config + generation_config (eos 2, pad 0), as HF loaded them.
  const model = {
    config: { vocab_size: 512, max_position_embeddings: 256, eos_token_id: 2, pad_token_id: 0, bos_token_id: 1 },
    generationConfig: JSON.parse(fs.readFileSync("test/fixtures/hf/tiny-llama/generation_config.json", "utf8")),
    forward: () => Promise.reject(new Error("not used")),
  };
  for (const c of ref.processors.cases.filter((x) => x.hf_generation_config)) {
    it(c.name, () => {
      const opts = { inputIds: [[1]], ...toOptions(c.hf_generation_config!) } as GenerateOptions;
      const cfg = resolveGeneration(model, opts, c.prompt_length!);
      const procs = buildLogitsProcessors(cfg, c.prompt_length!);
      expect(procs.map((p) => p.name)).toEqual(c.processors!.map((n) => HF_NAMES[n]));
      expectSameAsHf(run(procs), c.output);
    });
  }
});
