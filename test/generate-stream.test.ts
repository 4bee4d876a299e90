/**
 * generate() end to end with the default model and its tokenizer: streaming
 * (async iterator, callback, put/end object), stop strings, seeded sampling,
 * the decode-step contract that makes the KV cache O(T) per token, and
 * return_dict outputs.
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import { LlamaForCausalLM } from "../lib/model/index.js";
import { AutoTokenizer } from "../lib/tokenizer/index.js";
import {
  generate,
  streamGenerate,
  TokenStreamer,
  type GenerationForwardArgs,
  type GenerationModel,
  type StreamChunk,
} from "../lib/generate/index.js";

let model: LlamaForCausalLM;
let tok: ReturnType<typeof AutoTokenizer.fromPretrained>;
let once: number[];

beforeAll(async () => {
  model = await LlamaForCausalLM.fromPretrained("models/tiny-stories");
  tok = AutoTokenizer.fromPretrained("models/tiny-stories");
  once = tok.encode("Once upon a time");
});

const newText = (full: number[], prompt: number[]) =>
  tok.decode(full, { skipSpecialTokens: true }).slice(tok.decode(prompt, { skipSpecialTokens: true }).length);

describe("streaming", () => {
  it("streamGenerate yields the same tokens as generate, and text that adds up to the decoded continuation", async () => {
    const full = (await generate(model, { inputIds: [once], maxNewTokens: 40 }))[0]!;
    const chunks: StreamChunk[] = [];
    for await (const c of streamGenerate(model, { inputIds: [once], maxNewTokens: 40, tokenizer: tok })) chunks.push(c);
    expect(chunks.flatMap((c) => c.tokenIds)).toEqual(full.slice(once.length));
    const text = chunks.map((c) => c.text).join("");
    expect(text).toBe(newText(full, once));
    expect(text.startsWith(", there was a boy named Charlie.")).toBe(true);
  });

  it("a callback and a put/end streamer see the same chunks; end is called once", async () => {
    const a: StreamChunk[] = [];
    const b: StreamChunk[] = [];
    let ends = 0;
    await generate(model, { inputIds: [once], maxNewTokens: 12, tokenizer: tok, streamer: (c) => a.push(c) });
    await generate(model, { inputIds: [once], maxNewTokens: 12, tokenizer: tok, streamer: { put: (c) => b.push(c), end: () => ends++ } });
    expect(a.length).toBeGreaterThan(5);
    expect(b).toEqual(a);
    expect(ends).toBe(1);
  });

  it("breaking out of the iterator stops generation (no more forward passes)", async () => {
    let calls = 0;
    const counting: GenerationModel = {
      config: model.config,
      generationConfig: model.generationConfig,
      forward: (args) => {
        calls++;
        return model.forward(args as Parameters<typeof model.forward>[0]);
      },
    };
    let n = 0;
    for await (const c of streamGenerate(counting, { inputIds: [once], maxNewTokens: 50, tokenizer: tok })) {
      if (c.tokenIds.length && ++n === 3) break;
    }
    expect(calls).toBeLessThanOrEqual(4);
  });

  it("byte-fallback pieces of multi-byte characters stream as whole characters (real tokenizer)", () => {
    const text = " Lily saw 世界 and 🎉!";
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.length).toBeGreaterThan(text.length / 2); // byte pieces are in there
    const chunks: StreamChunk[] = [];
    const s = new TokenStreamer((c) => chunks.push(c), [once], [once.map(() => 1)], tok);
    ids.forEach((id, i) => s.step([id], [i === ids.length - 1]));
    for (const c of chunks) expect(c.text).not.toContain("\uFFFD");
    expect(chunks.map((c) => c.text).join("")).toBe(newText([...once, ...ids], once));
    expect(chunks.some((c) => c.text.includes("🎉"))).toBe(true);
  });
});

describe("stop strings with the real tokenizer", () => {
  it("stops right after the token that completes the stop string", async () => {
    const full = (await generate(model, { inputIds: [once], maxNewTokens: 40 }))[0]!;
    const out = (await generate(model, { inputIds: [once], maxNewTokens: 40, stopStrings: ["Charlie."], tokenizer: tok }))[0]!;
    expect(full.slice(0, out.length)).toEqual(out);
    expect(newText(out, once).endsWith("Charlie.")).toBe(true);
    expect(newText(out.slice(0, -1), once)).not.toContain("Charlie.");
  });
});

describe("sampling with a seed", () => {
  const golden = JSON.parse(fs.readFileSync("test/fixtures/hf/tiny-llama/golden.json", "utf8")).generate[0];
  it("top-k 1 sampling is greedy", async () => {
    const m = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama");
    const n = golden.greedy.length - golden.prompt.length;
    const out = await generate(m, { inputIds: [golden.prompt], maxNewTokens: n, doSample: true, topK: 1, temperature: 0.5, seed: 3 });
    expect(out[0]).toEqual(golden.greedy);
  });
  it("the same seed reproduces, another seed differs; numReturnSequences gives independent rows", async () => {
    const opts = { inputIds: [once], maxNewTokens: 30, doSample: true, temperature: 1.3, topP: 0.95, numReturnSequences: 3 };
    const a = await generate(model, { ...opts, seed: 11 });
    const b = await generate(model, { ...opts, seed: 11 });
    const c = await generate(model, { ...opts, seed: 12 });
    expect(a).toHaveLength(3);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(new Set(a.map((r) => JSON.stringify(r))).size).toBe(3);
  });
  it("beam sampling is reproducible with a seed", async () => {
    const opts = { inputIds: [once], maxNewTokens: 12, doSample: true, numBeams: 3, numReturnSequences: 2, temperature: 1.5 };
    const a = await generate(model, { ...opts, seed: 5 });
    expect(await generate(model, { ...opts, seed: 5 })).toEqual(a);
    expect(a).toHaveLength(2);
  });
});

describe("decode contract and outputs", () => {
  it("prefill once, then one token per row per step with a growing cache and logitsToKeep 1 (O(T) per token)", async () => {
    const calls: { width: number; past: number; mask: number; pos: number[]; keep?: number }[] = [];
    const spy: GenerationModel = {
      config: model.config,
      generationConfig: model.generationConfig,
      forward: async (args: GenerationForwardArgs) => {
        calls.push({
          width: args.inputIds![0]!.length,
          past: args.pastKeyValues?.getSeqLength() ?? 0,
          mask: args.attentionMask![0]!.length,
          pos: args.positionIds!.map((r) => r[r.length - 1]!),
          keep: args.logitsToKeep,
        });
        return model.forward(args as Parameters<typeof model.forward>[0]);
      },
    };
    const prompts = [[0, 0, ...once.slice(0, 3)], once];
    const mask = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]];
    await generate(spy, { inputIds: prompts, attentionMask: mask, maxNewTokens: 6, eosTokenId: null });
    expect(calls).toHaveLength(6);
    expect(calls[0]).toEqual({ width: 5, past: 0, mask: 5, pos: [2, 4], keep: 1 });
    for (let i = 1; i < 6; i++) expect(calls[i]).toEqual({ width: 1, past: 4 + i, mask: 5 + i, pos: [2 + i, 4 + i], keep: 1 });
  });

  it("returnDictInGenerate: per-step scores, raw logits and attentions with HF's shapes", async () => {
    const out = await generate(model, {
      inputIds: [once], maxNewTokens: 3, returnDictInGenerate: true, outputScores: true, outputLogits: true, outputAttentions: true, repetitionPenalty: 1.5,
    });
    const T = once.length;
    const L = model.config.num_hidden_layers;
    const H = model.config.num_attention_heads;
    expect(out.sequences[0]).toHaveLength(T + 3);
    expect(out.scores!.map((s) => s.shape)).toEqual([[1, 2048], [1, 2048], [1, 2048]]);
    expect(out.attentions!.map((step) => step.length)).toEqual([L, L, L]);
    expect(out.attentions![0]![0]!.shape).toEqual([1, H, T, T]);
    expect(out.attentions![2]![L - 1]!.shape).toEqual([1, H, 1, T + 2]);
    // the repetition penalty shows in scores but not in raw logits
    const tokenSeen = once[1]!;
    const raw = out.logits![0]!.data[tokenSeen]!;
    expect(out.scores![0]!.data[tokenSeen]).toBeCloseTo(raw < 0 ? raw * 1.5 : raw / 1.5, 5);
  });
});
