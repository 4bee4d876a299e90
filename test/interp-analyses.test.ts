/** The host-side analyses on synthetic data with known answers (no model). */
import { describe, it, expect } from "vitest";
import { Tensor } from "../lib/tensor/tensor.js";
import { InputError } from "../lib/errors.js";
import { detectorKeys, detectorScores, rankHeads, repeatedRandomTokens, summarizeHeads } from "../lib/interp/heads.js";
import { tokenLogProbs, topKNextTokens, meanNll } from "../lib/interp/logprobs.js";
import { summarizeLens } from "../lib/interp/lens-summary.js";
import { entropyOfLogits, logSoftmaxRow, rankOf, topKIndices } from "../lib/interp/math.js";
import { ActivationCache } from "../lib/interp/cache.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { syntheticPattern } from "./viz-synthetic.js";

describe("math", () => {
  it("log-softmax, entropy, top-k, rank", () => {
    const row = [1, 3, 2, 3, -1];
    const lp = logSoftmaxRow(row);
    const z = row.reduce((s, v) => s + Math.exp(v), 0);
    row.forEach((v, i) => expect(lp[i]).toBeCloseTo(v - Math.log(z), 12));
    expect(entropyOfLogits([0, 0, 0, 0])).toBeCloseTo(Math.log(4), 12);
    expect(topKIndices(row, 3)).toEqual([1, 3, 2]);
    expect(topKIndices(row, 10)).toEqual([1, 3, 2, 0, 4]);
    expect(rankOf(row, 3)).toBe(1);
    expect(rankOf(row, 4)).toBe(4);
  });
});

describe("head detectors", () => {
  it("predicted keys follow the definitions", () => {
    const toks = [9, 5, 6, 7, 5, 6, 7];
    expect(detectorKeys("previousToken", toks)).toEqual([[], [0], [1], [2], [3], [4], [5]]);
    expect(detectorKeys("duplicateToken", toks)).toEqual([[], [], [], [], [1], [2], [3]]);
    expect(detectorKeys("induction", toks)).toEqual([[], [], [], [], [2], [3], [4]]);
  });

  it("find a planted previous-token head and a planted induction head", () => {
    const tokens = repeatedRandomTokens({ length: 12, vocabSize: 100, bos: 1, seed: 3 });
    expect(tokens.length).toBe(25);
    expect(tokens.slice(1, 13)).toEqual(tokens.slice(13));
    expect(new Set(tokens.slice(1, 13)).size).toBe(12);
    const T = tokens.length;
    const p0 = syntheticPattern(1, 4, T, 5, { prevHead: 1 });
    const p1 = syntheticPattern(1, 4, T, 6, { inductionHead: 3, tokens });
    const prev = detectorScores(p0, tokens, "previousToken");
    expect(prev[1]).toBeGreaterThan(0.99);
    for (const h of [0, 2, 3]) expect(prev[h]).toBeLessThan(0.5);
    const s = summarizeHeads([p0, p1], tokens);
    expect(rankHeads(s.induction, 1)[0]).toMatchObject({ layer: 1, head: 3 });
    expect(s.induction[1]![3]).toBeGreaterThan(0.99);
    expect(rankHeads(s.previousToken, 1)[0]).toMatchObject({ layer: 0, head: 1 });
    // Entropy of the sharp head is far below the diffuse ones.
    expect(s.entropy[0]![1]).toBeLessThan(0.2);
    expect(s.entropy[0]![0]).toBeGreaterThan(1);
    // Exact value on a hand-made pattern: uniform causal attention.
    const T2 = 4;
    const u = new Float32Array(T2 * T2);
    for (let t = 0; t < T2; t++) for (let j = 0; j <= t; j++) u[t * T2 + j] = 1 / (t + 1);
    const pu = new Tensor(u, [1, 1, T2, T2]);
    expect(detectorScores(pu, [1, 2, 3, 4], "previousToken")[0]).toBeCloseTo((1 / 2 + 1 / 3 + 1 / 4) / 3, 6);
    expect(Number.isNaN(detectorScores(pu, [1, 2, 3, 4], "induction")[0])).toBe(true);
    expect(detectorScores(pu, [5, 6, 5, 6], "induction", { attentionMask: [1, 1, 1, 1] })[0]).toBeCloseTo((1 / 3 + 1 / 4) / 2, 6);
    // With the first position masked out, the previous-token key 0 of query 1 is not counted.
    expect(detectorScores(pu, [1, 2, 3, 4], "previousToken", { attentionMask: [0, 1, 1, 1] })[0]).toBeCloseTo((1 / 3 + 1 / 4) / 2, 6);
  });

  it("rejects bad inputs", () => {
    expect(() => repeatedRandomTokens({ length: 50, candidates: [1, 2, 3] })).toThrow(/need 50 distinct/);
    expect(() => detectorScores(syntheticPattern(1, 1, 5), [1, 2], "induction")).toThrow(/2 tokens for a pattern over 5/);
    expect(() => detectorScores(new Tensor(new Float32Array(6), [1, 1, 2, 3]), [1, 2], "induction")).toThrow(/T == S/);
  });
});

describe("log-probs", () => {
  const V = 6;
  const T = 4;
  const data = Float32Array.from({ length: T * V }, (_, i) => ((i * 37) % 11) / 3);
  const logits = new Tensor(data, [1, T, V]);
  const ids = [2, 5, 0, 3];

  it("reads token t from row t−1", () => {
    const lp = tokenLogProbs(logits, ids);
    expect(Number.isNaN(lp.logProbs[0]!)).toBe(true);
    for (let t = 1; t < T; t++) {
      const row = Array.from(data.subarray((t - 1) * V, t * V));
      expect(lp.logProbs[t]).toBeCloseTo(logSoftmaxRow(row)[ids[t]!]!, 12);
      expect(lp.entropy[t]).toBeCloseTo(entropyOfLogits(row), 12);
      expect(lp.rank[t]).toBe(rankOf(row, ids[t]!));
    }
    expect(lp.nextEntropy.length).toBe(T);
    expect(meanNll(lp)).toBeCloseTo(-(lp.logProbs[1]! + lp.logProbs[2]! + lp.logProbs[3]!) / 3, 12);
  });

  it("top-k next tokens at a position", () => {
    const top = topKNextTokens(logits, { k: 2, position: 1 });
    const row = Array.from(data.subarray(V, 2 * V));
    expect(top.ids).toEqual(topKIndices(row, 2));
    expect(top.probs[0]).toBeCloseTo(Math.exp(logSoftmaxRow(row)[top.ids[0]!]!), 12);
    expect(() => tokenLogProbs(logits, [1, 2, 3, 99])).toThrow(/token id 99 at position 3/);
    expect(() => tokenLogProbs(logits, [1, 2])).toThrow(InputError);
  });
});

describe("lens summary", () => {
  it("top-k and target probabilities/ranks per layer and position", () => {
    const V = 5;
    const layers = [
      new Tensor(Float32Array.from([0, 1, 2, 3, 4, 4, 3, 2, 1, 0]), [1, 2, V]),
      new Tensor(Float32Array.from([4, 3, 2, 1, 0, 0, 0, 9, 0, 0]), [1, 2, V]),
    ];
    const s = summarizeLens(layers, [7 % V, 3], { k: 2, target: 3 });
    expect(s.topIds).toEqual([[[4, 3], [0, 1]], [[0, 1], [2, 0]]]);
    expect(s.targetRanks).toEqual([[1, 3], [3, 3]]); // ties rank lower ids first (as top-k does)
    const z = Math.exp(0) + Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4);
    expect(s.targetProbs![0]![0]).toBeCloseTo(Math.exp(3) / z, 6);
    const next = summarizeLens(layers, [2, 3], { target: "next" });
    expect(next.targetIds).toEqual([3, -1]);
    expect(Number.isNaN(next.targetProbs![0]![1]!)).toBe(true);
    expect(() => summarizeLens(layers, [1, 2], { target: 9 })).toThrow(/target token id 9/);
    expect(() => summarizeLens(layers, [1, 2, 3])).toThrow(/3 input ids/);
  });
});

describe("activation cache", () => {
  it("looks up by name and layer, and saves to safetensors atomically", () => {
    const t = (v: number) => new Tensor(Float32Array.from([v, v + 1]), [1, 1, 2]);
    const cache = new ActivationCache([["embed", t(0)], ["layers.0.resid_post", t(10)], ["layers.1.resid_post", t(20)]], 2);
    expect(cache.residPre(1).toFloat32()[0]).toBe(10);
    expect(cache.residPre(0).toFloat32()[0]).toBe(0);
    expect(cache.residPre(2).toFloat32()[0]).toBe(20);
    expect(cache.accumulatedResid().labels).toEqual(["embed", "layer 0", "layer 1"]);
    expect(() => cache.layer("resid_post", 2)).toThrow(/layer 2 out of range/);
    expect(cache.memoryBytes()).toBe(24);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "interp-")), "cache.safetensors");
    cache.save(file);
    const f = SafetensorsFile.open(file);
    expect(Array.from(f.read("layers.1.resid_post").toFloat32())).toEqual([20, 21]);
    f.close();
  });
});
