/**
 * Pieces of lib/generate checked without a model: the RNG (known answers of
 * xoshiro128**), sampling statistics, top-k selection, stop-string matching
 * (HF's documented examples), UTF-8-safe streaming, and option validation.
 */
import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import {
  SeededRng,
  StopStringCriterion,
  TokenStreamer,
  TopPWarper,
  TemperatureWarper,
  resolveGeneration,
  type GenerationTokenizer,
  type StreamChunk,
  type GenerateOptions,
} from "../lib/generate/index.js";
import { sampleCategorical, softmax, topKIndices } from "../lib/generate/sampling.js";

describe("SeededRng", () => {
  it("xoshiro128** known answers from state {1, 2, 3, 4}", () => {
    const r = SeededRng.fromState(1, 2, 3, 4);
    expect(Array.from({ length: 6 }, () => r.nextUint32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });
  it("splitmix32 seeding matches an independent implementation", () => {
    // Values from a Python re-implementation of rng.ts's seeding + xoshiro128**.
    const r = new SeededRng(42);
    expect(Array.from({ length: 4 }, () => r.nextUint32())).toEqual([2837322924, 544945897, 479756282, 3500138142]);
    const big = new SeededRng(2 ** 40 + 5);
    expect([big.nextUint32(), big.nextUint32()]).toEqual([538299823, 2287012550]);
  });
  it("same seed, same stream; different seeds differ; floats uniform in [0,1)", () => {
    const a = new SeededRng(7);
    const b = new SeededRng(7);
    const c = new SeededRng(8);
    const xs = Array.from({ length: 20000 }, () => a.nextFloat());
    expect(Array.from({ length: 20000 }, () => b.nextFloat())).toEqual(xs);
    expect(c.nextFloat()).not.toBe(xs[0]);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const bins = new Array(10).fill(0);
    for (const x of xs) bins[Math.floor(x * 10)]++;
    // chi-square with 9 dof: 99.9% quantile is 27.9
    const chi = bins.reduce((s, n) => s + (n - 2000) ** 2 / 2000, 0);
    expect(chi).toBeLessThan(27.9);
  });
});

describe("sampling", () => {
  it("draws follow the distribution (40k draws, each frequency within 4 sigma)", () => {
    const probs = [0.1, 0.2, 0, 0.3, 0.4];
    const rng = new SeededRng(1);
    const counts = new Array(5).fill(0);
    const N = 40000;
    for (let i = 0; i < N; i++) counts[sampleCategorical(probs, rng)]++;
    expect(counts[2]).toBe(0);
    probs.forEach((p, i) => expect(Math.abs(counts[i] / N - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / N) + 1e-9));
  });

  it("temperature + top-p then sampling: frequencies match the processed softmax", () => {
    const logits = Float32Array.from([2.0, 1.5, 1.0, 0.2, -0.5, -3, 0.7, 1.2]);
    const scores = Float32Array.from(logits);
    new TemperatureWarper(0.7).apply([[0]], scores);
    new TopPWarper(0.9).apply([[0]], scores, 8);
    const p = softmax(scores);
    const removed = [...scores].map((s, i) => (s === -Infinity ? i : -1)).filter((i) => i >= 0);
    expect(removed.length).toBeGreaterThan(0);
    const rng = new SeededRng(3);
    const counts = new Array(8).fill(0);
    const N = 30000;
    for (let i = 0; i < N; i++) counts[sampleCategorical(p, rng)]++;
    for (const i of removed) expect(counts[i]).toBe(0);
    p.forEach((q, i) => expect(Math.abs(counts[i] / N - q)).toBeLessThan(4 * Math.sqrt((q * (1 - q)) / N) + 1e-9));
  });

  it("topKIndices: largest first, ties by lower index", () => {
    expect(topKIndices([1, 5, 3, 5, 2, 9], 3)).toEqual([5, 1, 3]);
    expect(topKIndices([0, 0, 0], 2)).toEqual([0, 1]);
    expect(topKIndices([-1e9, -1e9 - 5, 3], 5)).toEqual([2, 0, 1]);
  });
});

/** A tokenizer over a fixed list of token strings (decode = concatenation), as HF's StopStringCriteria sees tokens. */
function listTokenizer(tokens: string[]): GenerationTokenizer {
  return { decode: (ids) => ids.map((i) => tokens[i]!).join("") };
}

const stopRef = (
  JSON.parse(fs.readFileSync("test/fixtures/generate/hf_reference.json", "utf8")) as {
    stop_strings: { vocab: string[]; cases: { stop_strings: string[]; tokens: string[]; stops: boolean }[] };
  }
).stop_strings;

describe("stop strings vs HF StopStringCriteria (its documented examples and more)", () => {
  const { vocab, cases } = stopRef;
  it("the reference has stopping and non-stopping cases", () => {
    expect(cases.filter((c) => c.stops).length).toBeGreaterThanOrEqual(10);
    expect(cases.filter((c) => !c.stops).length).toBeGreaterThanOrEqual(10);
  });
  for (const c of cases) {
    it(`${JSON.stringify(c.stop_strings)} on ${JSON.stringify(c.tokens)}: ${c.stops ? "stops" : "continues"}`, () => {
      const crit = new StopStringCriterion(listTokenizer(vocab), c.stop_strings);
      expect(crit.isDone([c.tokens.map((t) => vocab.indexOf(t))])).toEqual([c.stops]);
    });
  }
});

/** Bytes as tokens: id b (0..255) is the byte b; decode = UTF-8 with U+FFFD for incomplete characters. */
const byteTokenizer: GenerationTokenizer = {
  decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids)),
};

describe("TokenStreamer", () => {
  it("never emits part of a UTF-8 character, and the chunks add up to the text", () => {
    const text = "héllo 世界 🎉 ok ✓";
    const bytes = [...new TextEncoder().encode(text)];
    const prompt = [...new TextEncoder().encode("> ")];
    const chunks: StreamChunk[] = [];
    const s = new TokenStreamer((c) => chunks.push(c), [prompt], [prompt.map(() => 1)], byteTokenizer);
    bytes.forEach((b, i) => s.step([b], [i === bytes.length - 1]));
    s.end();
    expect(chunks.map((c) => c.text).join("")).toBe(text);
    expect(chunks.flatMap((c) => c.tokenIds)).toEqual(bytes);
    for (const c of chunks) expect(c.text).not.toContain("\uFFFD");
    // 🎉 is 4 bytes: its first three tokens produce no text, the fourth emits it whole
    expect(chunks.some((c) => c.text === "🎉" && c.tokenIds.length === 4)).toBe(true);
  });

  it("flushes an incomplete character at the end as U+FFFD, and keeps rows apart", () => {
    const chunks: StreamChunk[] = [];
    const s = new TokenStreamer((c) => chunks.push(c), [[65], [66]], [[1], [1]], byteTokenizer);
    s.step([0x61, 0xe4], [false, false]);
    s.step([0x62, 0xb8], [true, false]);
    s.end();
    expect(chunks.filter((c) => c.index === 0).map((c) => c.text).join("")).toBe("ab");
    expect(chunks.filter((c) => c.index === 1).map((c) => c.text).join("")).toBe("\uFFFD");
    expect(chunks.filter((c) => c.index === 1).flatMap((c) => c.tokenIds)).toEqual([0xe4, 0xb8]);
  });

  it("without a tokenizer it streams ids with empty text", () => {
    const chunks: StreamChunk[] = [];
    const s = new TokenStreamer((c) => chunks.push(c), [[1]], [[1]]);
    s.step([5], [false]);
    s.step([6], [true]);
    s.step([0], [false]); // a padding step after the row finished: not streamed
    expect(chunks).toEqual([
      { index: 0, tokenIds: [5], text: "" },
      { index: 0, tokenIds: [6], text: "" },
    ]);
  });
});

describe("option validation (HF's rules, clear messages)", () => {
  const model = {
    config: { vocab_size: 10, max_position_embeddings: 64, eos_token_id: 2 },
    generationConfig: {},
    forward: () => Promise.reject(new Error("unused")),
  };
  const bad: [Partial<GenerateOptions>, RegExp][] = [
    [{ numReturnSequences: 2 }, /numReturnSequences 2 needs sampling or beam search/],
    [{ numBeams: 2, numReturnSequences: 3 }, /numReturnSequences \(3\) must be ≤ numBeams \(2\)/],
    [{ doSample: true, temperature: 0 }, /temperature must be strictly positive/],
    [{ topP: 1.5 }, /topP must be in \[0, 1\], got 1.5/],
    [{ maxNewTokens: 0 }, /maxNewTokens must be greater than 0/],
    [{ maxLength: 3 }, /input length is 4, but maxLength is 3/],
    [{ stopStrings: ["x"] }, /stopStrings need a tokenizer/],
    [{ eosTokenId: 12 }, /eos_token_id 12 is not a token id of this model \(vocab_size 10\)/],
    [{ numBeams: 2, streamer: () => {} }, /streaming is not supported with beam search/],
    [{ repetitionPenalty: -1 }, /repetitionPenalty must be strictly positive/],
  ];
  for (const [opts, msg] of bad) {
    it(JSON.stringify(opts), () => {
      expect(() => resolveGeneration(model, { inputIds: [[1, 2, 3, 4]], ...opts }, 4)).toThrow(msg);
    });
  }
  it("defaults as HF: 20 new tokens, top_k 50, pad = eos when unset", () => {
    const r = resolveGeneration(model, { inputIds: [[1]] }, 4);
    expect([r.maxLength, r.topK, r.padTokenId, r.eosTokenIds]).toEqual([24, 50, 2, [2]]);
  });
  it("generation_config.json values are used unless the call overrides them", () => {
    const m = { ...model, generationConfig: { do_sample: true, temperature: 0.6, top_p: 0.9, max_new_tokens: 7, eos_token_id: [2, 3] } };
    const r = resolveGeneration(m, { inputIds: [[1]], temperature: 0.3 }, 4);
    expect([r.doSample, r.temperature, r.topP, r.maxLength, r.eosTokenIds]).toEqual([true, 0.3, 0.9, 11, [2, 3]]);
    expect(() => resolveGeneration({ ...model, generationConfig: { top_k: "x" } }, { inputIds: [[1]] }, 4)).toThrow(
      /generation_config.json: field "top_k" has an invalid value "x"/,
    );
  });
});
