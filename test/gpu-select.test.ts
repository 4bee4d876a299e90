/**
 * generate's next-token step on the GPU (gpu/ops/select.ts) against the host
 * processors and samplers (lib/generate) on crafted logits: argmax ties, NaN
 * and all-masked rows, the repetition penalty on repeated ids (and on the ids
 * the step itself chose), EOS suppression, EOS flags and padding of finished
 * rows, top-k ties at the boundary, top-p boundaries, min-p, temperature, and
 * the draw itself: the same uniform gives the same token as the host's
 * inverse-CDF sampler.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { applyProcessors, buildLogitsProcessors } from "../lib/generate/processors.js";
import { argmax, sampleCategorical, softmax } from "../lib/generate/sampling.js";
import type { SeededRng } from "../lib/generate/rng.js";
import type { TokenSelectSettings } from "../lib/backend/token-select.js";
import { randn, rng } from "./gpu-reference.js";

let be: WebGpuBackend;
beforeAll(async () => {
  be = await createWebGpuBackend();
});
afterAll(() => be?.dispose());

type Sampling = TokenSelectSettings["sampling"];
interface Case {
  logits: Float32Array; // [R, V]
  V: number;
  seqs: number[][];
  sampling?: Sampling;
  penalty?: number;
  eos?: number[];
  pad?: number | null;
}

/** The host's choice: HF's processor list, then argmax or one inverse-CDF draw with the given uniform per row. */
function hostChoose(c: Case, suppressEos: boolean, uniforms?: Float32Array): number[] {
  const s = c.sampling;
  const procs = buildLogitsProcessors({
    repetitionPenalty: c.penalty ?? 1, minLength: suppressEos ? 1e9 : 0, eosTokenIds: c.eos ?? [], doSample: !!s, numBeams: 1,
    temperature: s?.temperature ?? 1, topK: s?.topK ?? 0, topP: s?.topP ?? 1, minP: s?.minP,
  }, 0);
  const scores = Float32Array.from(c.logits);
  applyProcessors(procs, c.seqs, scores, c.V);
  return c.seqs.map((_, r) => {
    const row = scores.subarray(r * c.V, (r + 1) * c.V);
    if (!s) return argmax(row);
    const u = uniforms![r]!;
    return sampleCategorical(softmax(row), { nextFloat: () => u } as unknown as SeededRng);
  });
}

function selector(c: Case) {
  const sel = be.tokenSelector({
    rows: c.seqs.length, vocabSize: c.V, sampling: c.sampling ?? null, repetitionPenalty: c.penalty ?? 1,
    eosTokenIds: c.eos ?? [], padTokenId: c.pad ?? null, prompts: c.seqs,
  });
  if (!sel) throw new Error("no GPU selector for these settings");
  return sel;
}

async function gpuChoose(c: Case, suppressEos = false, uniforms?: Float32Array) {
  const sel = selector(c);
  try {
    const x = be.upload(new Tensor(c.logits, [c.seqs.length, 1, c.V]));
    const r = await sel.select(x, { suppressEos, uniforms });
    be.release(x);
    return r;
  } finally {
    sel.dispose();
  }
}

/** Uniforms spread over [0, 1): (i + 0.5) / n, exact in float32. */
const grid = (n: number) => Array.from({ length: n }, (_, i) => Math.fround((i + 0.5) / n));

/** For each uniform of the grid: GPU draw (one row) vs host draw. */
async function drawsAgree(c: Case, n = 32): Promise<number[]> {
  const picks: number[] = [];
  for (const u of grid(n)) {
    const uni = Float32Array.of(u);
    const g = await gpuChoose(c, false, uni);
    expect(g.tokens[0], `u = ${u}`).toBe(hostChoose(c, false, uni)[0]);
    picks.push(g.tokens[0]!);
  }
  return picks;
}

const NEG = -Infinity;
function rowOf(V: number, fill: number, set: Record<number, number>): number[] {
  const r = new Array<number>(V).fill(fill);
  for (const [i, v] of Object.entries(set)) r[Number(i)] = v;
  return r;
}

describe("GPU token selection vs the host processors (crafted logits)", () => {
  it("greedy: first index on ties, NaN never chosen, an all-masked row gives 0 (torch.argmax)", async () => {
    const V = 300; // more than one 256-wide stride per thread
    const r0 = Array.from(randn(rng(1), V), (v) => v);
    r0[17] = 9;
    r0[250] = 9;
    const r1 = new Array<number>(V).fill(NEG);
    const r2 = Array.from(randn(rng(2), V), (v) => v);
    for (const i of [0, 5, 299]) r2[i] = NaN;
    r2[123] = 7;
    const c: Case = { logits: Float32Array.from([...r0, ...r1, ...r2]), V, seqs: [[1], [1], [1]] };
    const g = await gpuChoose(c);
    expect(Array.from(g.tokens)).toEqual([17, 0, 123]);
    expect(Array.from(g.tokens)).toEqual(hostChoose(c, false));
    expect(g.eos).toEqual([false, false, false]);
  });

  it("repetition penalty: each id once however often it repeats, both signs, and the chosen id joins the set", async () => {
    const V = 64;
    // Row 0: id 3 appears three times; penalised once 5 / 1.5 = 3.33 > 3.2 (id 6), twice would be 2.22.
    // Row 1: all negative; id 7 (the max, in the prompt) goes to -0.1 × 1.5 = -0.15, below id 8's -0.12.
    const c: Case = {
      V, penalty: 1.5,
      logits: Float32Array.from([...rowOf(V, -1, { 3: 5, 6: 3.2 }), ...rowOf(V, -1, { 7: -0.1, 8: -0.12, 9: -0.13 })]),
      seqs: [[3, 3, 10, 3], [7, 7, 2]],
    };
    const sel = selector(c);
    try {
      const x = be.upload(new Tensor(c.logits, [2, 1, V]));
      const first = await sel.select(x, { suppressEos: false });
      expect(Array.from(first.tokens)).toEqual([3, 8]);
      expect(Array.from(first.tokens)).toEqual(hostChoose(c, false));
      // Same logits again: 3 and 8 joined the sequences (3 is still penalised once).
      const seqs2 = c.seqs.map((s, r) => [...s, first.tokens[r]!]);
      const second = await sel.select(x, { suppressEos: false });
      expect(Array.from(second.tokens)).toEqual(hostChoose({ ...c, seqs: seqs2 }, false));
      expect(Array.from(second.tokens)).toEqual([3, 9]); // row 1: 8 is now penalised to -0.18 < -0.13
    } finally {
      sel.dispose();
    }
  });

  it("EOS: suppressed while min-length holds, flagged when drawn, then the row gets the pad id; markFinished pads too", async () => {
    const V = 32;
    const c: Case = {
      V, eos: [5, 9], pad: 0,
      logits: Float32Array.from([...rowOf(V, 0, { 5: 4, 9: 3, 11: 2 }), ...rowOf(V, 0, { 12: 1 })]),
      seqs: [[1, 2], [1, 3]],
    };
    const sel = selector(c);
    try {
      const x = be.upload(new Tensor(c.logits, [2, 1, V]));
      const s1 = await sel.select(x, { suppressEos: true });
      expect(Array.from(s1.tokens)).toEqual(hostChoose(c, true));
      expect(Array.from(s1.tokens)).toEqual([11, 12]);
      const s2 = await sel.select(x, { suppressEos: false });
      expect(Array.from(s2.tokens)).toEqual([5, 12]);
      expect(s2.eos).toEqual([true, false]);
      sel.markFinished([1]); // e.g. a stop string ended row 1
      const s3 = await sel.select(x, { suppressEos: false });
      expect(Array.from(s3.tokens)).toEqual([0, 0]);
      expect(s3.eos).toEqual([false, false]);
    } finally {
      sel.dispose();
    }
  });

  it("top-p on exact ties: ascending order by index, cumulative ≤ 1 − top_p removed (boundary included)", async () => {
    const V = 40;
    const c: Case = { V, logits: Float32Array.from(rowOf(V, NEG, { 0: 0, 1: 0, 2: 0, 3: 0 })), seqs: [[1]], sampling: { temperature: 1, topK: 50, topP: 0.5 } };
    const picks = await drawsAgree(c);
    expect(new Set(picks)).toEqual(new Set([2, 3])); // 0.25 and 0.5 are ≤ 0.5: ids 0 and 1 go
  });

  it("top-p boundaries and min-p on distinct probabilities", async () => {
    const V = 300;
    const logp = (ps: number[]) => Float32Array.from(rowOf(V, NEG, Object.fromEntries(ps.map((p, i) => [40 * i + 7, Math.log(p)]))));
    const four = logp([0.1, 0.2, 0.3, 0.4]);
    expect(new Set(await drawsAgree({ V, logits: four, seqs: [[1]], sampling: { temperature: 1, topK: 50, topP: 0.6 } }))).toEqual(new Set([87, 127]));
    expect(new Set(await drawsAgree({ V, logits: four, seqs: [[1]], sampling: { temperature: 1, topK: 50, topP: 0.75 } }))).toEqual(new Set([47, 87, 127]));
    const minp = logp([0.5, 0.3, 0.15, 0.05]);
    expect(new Set(await drawsAgree({ V, logits: minp, seqs: [[1]], sampling: { temperature: 1, topK: 50, topP: 1, minP: 0.2 } }))).toEqual(new Set([7, 47, 87]));
  });

  it("top-k keeps every tie of the k-th value", async () => {
    const V = 50;
    const c: Case = { V, logits: Float32Array.from(rowOf(V, 1, { 0: 5, 1: 4.5, 2: 4.5, 3: 4.5 })), seqs: [[1]], sampling: { temperature: 1, topK: 2, topP: 1 } };
    const picks = await drawsAgree(c, 48);
    expect(new Set(picks)).toEqual(new Set([0, 1, 2, 3]));
  });

  it("temperature, top-k, top-p, min-p and a repetition penalty together on random rows", async () => {
    const V = 1000;
    const R = 4;
    const logits = randn(rng(7), R * V).map((v) => 3 * v);
    const seqs = [[1, 5, 5, 900], [2, 3], [999, 0], [17]];
    const c: Case = { V, logits, seqs, penalty: 1.2, sampling: { temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05 } };
    const draws = grid(16);
    for (let i = 0; i < draws.length; i++) {
      const u = Float32Array.from({ length: R }, (_, r) => draws[(i + 5 * r) % draws.length]!);
      const g = await gpuChoose(c, false, u);
      expect(Array.from(g.tokens), `draw ${i}`).toEqual(hostChoose(c, false, u));
    }
  });

  it("sampling a row with every score -inf fails as on the host", async () => {
    const V = 20;
    const c: Case = { V, logits: new Float32Array(V).fill(NEG), seqs: [[1]], sampling: { temperature: 1, topK: 5, topP: 1 } };
    expect(() => hostChoose(c, false, Float32Array.of(0.5))).toThrow(/every token has probability 0/);
    await expect(gpuChoose(c, false, Float32Array.of(0.5))).rejects.toThrow(/every token has probability 0/);
  });

  it("top_k 0 (off) or above 256 is left to the host", () => {
    const base = { rows: 1, vocabSize: 1000, repetitionPenalty: 1, eosTokenIds: [], padTokenId: null, prompts: [[1]] };
    expect(be.tokenSelector({ ...base, sampling: { temperature: 1, topK: 0, topP: 0.9 } })).toBeUndefined();
    expect(be.tokenSelector({ ...base, sampling: { temperature: 1, topK: 300, topP: 1 } })).toBeUndefined();
    be.tokenSelector({ ...base, vocabSize: 200, sampling: { temperature: 1, topK: 300, topP: 1 } })!.dispose(); // k ≥ V: every token
  });
});
