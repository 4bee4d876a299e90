/**
 * Hooks and the activation cache on the HF fixtures: cached values equal the
 * forward pass's own outputs (and HF's golden tensors), interventions do what
 * recomputing by hand does, the logit lens and direct logit attribution add
 * up to the model's logits, and patching obeys its two exact invariants.
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { InputError } from "../lib/errors.js";
import { runWithCache, runWithHooks } from "../lib/interp/run.js";
import { hookPointNames, selectHookPoints } from "../lib/interp/hook-points.js";
import { ablateHead, patchActivation, steer } from "../lib/interp/interventions.js";
import { logitLens, residualToLogits } from "../lib/interp/logit-lens.js";
import { directLogitAttribution } from "../lib/interp/attribution.js";
import { activationPatching, logitDiffMetric } from "../lib/interp/patching.js";
import { HF_FIXTURES, loadGolden, maxDiff } from "./interp-fixtures.js";

const CASES = ["tiny-llama", "tiny-llama-gqa-llama3rope"] as const;

describe.each(CASES)("cache == forward outputs on %s", (name) => {
  let model: LlamaForCausalLM;
  const g = loadGolden(name);
  beforeAll(async () => {
    model = await LlamaForCausalLM.fromPretrained(path.join(HF_FIXTURES, name));
  });

  for (const caseName of ["single", "batch_left_padded"]) {
    it(`${caseName}: pattern, resid_post, embed, norm, k/v, logits`, async () => {
      const c = g.cases[caseName]!;
      const L = model.config.num_hidden_layers;
      const { output, cache } = await runWithCache(model, {
        inputIds: c.input_ids,
        attentionMask: c.attention_mask,
        outputAttentions: true,
        outputHiddenStates: true,
      });
      expect(cache.keys()).toEqual(hookPointNames(L));
      const hs = output.hiddenStates!;
      const att = output.attentions!;
      const m = c.attention_mask;
      expect(maxDiff(cache.get("embed"), hs[0]!)).toBeLessThanOrEqual(1e-6);
      for (let i = 0; i < L; i++) {
        expect(maxDiff(cache.pattern(i), att[i]!)).toBeLessThanOrEqual(1e-6);
        if (i < L - 1) expect(maxDiff(cache.layer("resid_post", i), hs[i + 1]!)).toBeLessThanOrEqual(1e-6);
        // Against HF's reference too (unpadded queries only, parity tolerance).
        expect(maxDiff(cache.pattern(i), g.tensors.read(`${caseName}.attentions.${i}`), m, 2)).toBeLessThanOrEqual(1e-4);
        expect(maxDiff(cache.layer("self_attn.k", i), g.tensors.read(`${caseName}.past_key.${i}`), m, 2)).toBeLessThanOrEqual(1e-4);
        expect(maxDiff(cache.layer("self_attn.v", i), g.tensors.read(`${caseName}.past_value.${i}`), m, 2)).toBeLessThanOrEqual(1e-4);
        expect(cache.layer("self_attn.q", i).shape).toEqual([c.input_ids.length, model.config.num_attention_heads, c.input_ids[0]!.length, model.config.head_dim]);
        expect(cache.layer("self_attn.z", i).shape).toEqual(cache.layer("self_attn.q", i).shape);
        expect(cache.layer("mlp.act", i).shape[2]).toBe(model.config.intermediate_size);
      }
      // The last resid_post is before the final norm; hidden_states[L] is after it (= the "norm" point).
      expect(maxDiff(cache.layer("resid_post", L - 1), hs[L]!)).toBeGreaterThan(1e-3);
      expect(maxDiff(cache.get("norm"), hs[L]!)).toBeLessThanOrEqual(1e-6);
      expect(maxDiff(cache.get("logits"), output.logits)).toBe(0);
      expect(maxDiff(output.logits, g.tensors.read(`${caseName}.logits`), m)).toBeLessThanOrEqual(1e-4);
      // Residual bookkeeping: resid_mid = resid_pre + attn out; resid_post = resid_mid + mlp out.
      const add = (a: Tensor, b: Tensor) => new Tensor(a.toFloat32().map((v, j) => v + b.toFloat32()[j]!), a.shape);
      expect(maxDiff(cache.layer("resid_mid", 1), add(cache.residPre(1), cache.layer("self_attn.o_proj", 1)))).toBeLessThanOrEqual(1e-5);
      expect(maxDiff(cache.layer("resid_post", 1), add(cache.layer("resid_mid", 1), cache.layer("mlp.down_proj", 1)))).toBeLessThanOrEqual(1e-5);
    });
  }

  it("capturing does not perturb the forward pass; names/filters select exactly", async () => {
    const ids = g.cases["single"]!.input_ids;
    const plain = await model.forward({ inputIds: ids, useCache: false });
    const { logits, cache } = await runWithCache(model, ids, { names: "layers.*.self_attn.pattern" });
    expect(maxDiff(logits, plain.logits)).toBe(0);
    expect(cache.keys()).toEqual(Array.from({ length: model.config.num_hidden_layers }, (_, i) => `layers.${i}.self_attn.pattern`));
    const some = await runWithCache(model, ids, { names: ["norm", "embed"] });
    expect(some.cache.keys()).toEqual(["embed", "norm"]);
    expect(() => some.cache.get("layers.0.resid_post")).toThrow(/not in the cache/);
    expect((await runWithCache(model, ids, { names: /^layers\.0\.mlp/ })).cache.keys()).toEqual(["layers.0.mlp.act", "layers.0.mlp.down_proj"]);
  });
});

describe("interventions on tiny-llama", () => {
  let model: LlamaForCausalLM;
  let ablatedRef: LlamaForCausalLM;
  const g = loadGolden("tiny-llama");
  const ids = g.cases["single"]!.input_ids;
  const LAYER = 1;
  const HEAD = 2;
  beforeAll(async () => {
    model = await LlamaForCausalLM.fromPretrained(path.join(HF_FIXTURES, "tiny-llama"));
    // The reference: the same model with head HEAD's columns of o_proj zeroed, i.e. the head removed.
    ablatedRef = await LlamaForCausalLM.fromPretrained(path.join(HF_FIXTURES, "tiny-llama"));
    const o = ablatedRef.model.layers[LAYER]!.self_attn.o_proj;
    const w = await ablatedRef.backend.read(o.weight);
    const [rows, cols] = w.shape as [number, number];
    const D = ablatedRef.config.head_dim;
    const data = Float32Array.from(w.toFloat32());
    for (let r = 0; r < rows; r++) data.fill(0, r * cols + HEAD * D, r * cols + (HEAD + 1) * D);
    o.weight = ablatedRef.backend.upload(new Tensor(data, w.shape));
  });

  it("a zero-ablation hook on one head equals recomputing without that head", async () => {
    const hooked = await runWithHooks(model, ids, [ablateHead(LAYER, HEAD)]);
    const ref = await ablatedRef.forward({ inputIds: ids, useCache: false });
    const plain = await model.forward({ inputIds: ids, useCache: false });
    expect(maxDiff(hooked.logits, ref.logits)).toBeLessThanOrEqual(1e-6);
    expect(maxDiff(hooked.logits, plain.logits)).toBeGreaterThan(1e-3); // the head mattered
  });

  it("mean ablation and patching a cached value back restore what they should", async () => {
    const { cache, logits } = await runWithCache(model, ids, { names: ["layers.1.self_attn.z"] });
    // Patching the clean z into a run where it was ablated restores the clean logits exactly.
    const restored = await runWithHooks(model, ids, [ablateHead(LAYER, HEAD, "mean"), patchActivation("layers.1.self_attn.z", cache.get("layers.1.self_attn.z"))]);
    expect(maxDiff(restored.logits, logits)).toBeLessThanOrEqual(1e-6);
    const mean = await runWithHooks(model, ids, [ablateHead(LAYER, HEAD, "mean")]);
    expect(maxDiff(mean.logits, logits)).toBeGreaterThan(1e-4);
  });

  it("steering is causal: adding a vector at position t leaves logits before t unchanged", async () => {
    const H = model.config.hidden_size;
    const v = Float32Array.from({ length: H }, (_, i) => Math.sin(i));
    const plain = (await model.forward({ inputIds: ids, useCache: false })).logits;
    const zero = await runWithHooks(model, ids, [steer("layers.0.resid_post", new Float32Array(H))]);
    expect(maxDiff(zero.logits, plain)).toBe(0);
    const t = 6;
    const steered = (await runWithHooks(model, ids, [steer("layers.0.resid_post", v, { positions: [t], scale: 4 })])).logits;
    const T = ids[0]!.length;
    const V = model.config.vocab_size;
    const before = new Tensor(steered.toFloat32().slice(0, t * V), [1, t, V]);
    const beforeRef = new Tensor(plain.toFloat32().slice(0, t * V), [1, t, V]);
    expect(maxDiff(before, beforeRef)).toBe(0);
    const after = new Tensor(steered.toFloat32().slice(t * V), [1, T - t, V]);
    const afterRef = new Tensor(plain.toFloat32().slice(t * V), [1, T - t, V]);
    expect(maxDiff(after, afterRef)).toBeGreaterThan(1e-3);
  });

  it("rejects unknown hook points and selectors that match nothing", async () => {
    await expect(runWithHooks(model, ids, [{ name: "layers.9.resid_post", fn: () => undefined }])).rejects.toThrow(InputError);
    await expect(runWithHooks(model, ids, { "blocks.0.hook_resid_post": () => undefined })).rejects.toThrow(/unknown point "blocks.0.hook_resid_post"/);
    expect(() => selectHookPoints(2, "layers.*.attn.pattern")).toThrow(/matches no hook point/);
    expect(() => selectHookPoints(2, ["layers.2.resid_post"])).toThrow(/unknown hook point "layers.2.resid_post"/);
    await expect(runWithHooks(model, ids, [{ name: "layers.0.resid_post", fn: () => Tensor.zeros([1, 2, 3]) }])).rejects.toThrow(/shape/);
  });

  it("logit lens at the last layer equals the model's logits", async () => {
    const { cache, logits } = await runWithCache(model, ids, { names: (n) => n === "embed" || n.endsWith("resid_post") });
    const last = await residualToLogits(model, cache.layer("resid_post", model.config.num_hidden_layers - 1));
    expect(maxDiff(last, logits)).toBeLessThanOrEqual(1e-6);
    const lens = await logitLens(model, ids, { k: 3, target: "next" });
    expect(lens.layerLabels).toEqual(["embed", "layer 0", "layer 1"]);
    // The last row's top-1 is the model's argmax, its probability the model's softmax.
    const T = ids[0]!.length;
    const V = model.config.vocab_size;
    const lf = logits.toFloat32();
    for (let t = 0; t < T; t++) {
      const row = lf.subarray(t * V, (t + 1) * V);
      let arg = 0;
      for (let i = 1; i < V; i++) if (row[i]! > row[arg]!) arg = i;
      expect(lens.topIds[2]![t]![0]).toBe(arg);
      let s = 0;
      for (let i = 0; i < V; i++) s += Math.exp(row[i]! - row[arg]!);
      expect(lens.topProbs[2]![t]![0]).toBeCloseTo(1 / s, 6);
    }
    // A subset of positions through a cache gives the same numbers.
    const sub = await logitLens(model, cache, { inputIds: ids[0]!, positions: [3, T - 1], k: 3 });
    expect(sub.topIds[2]).toEqual([lens.topIds[2]![3], lens.topIds[2]![T - 1]]);
    expect(sub.topProbs[1]![1]![0]).toBeCloseTo(lens.topProbs[1]![T - 1]![0]!, 6);
  });

  it("direct logit attribution adds up to the model's logit difference", async () => {
    const { cache, logits } = await runWithCache(model, ids, { names: /embed|self_attn\.z|down_proj|resid_post/ });
    const V = model.config.vocab_size;
    const T = ids[0]!.length;
    for (const [pos, a, b] of [[T - 1, 17, 300], [4, 5, undefined]] as const) {
      const dla = await directLogitAttribution(model, cache, { token: a, otherToken: b, position: pos });
      const row = logits.toFloat32().subarray(pos * V, (pos + 1) * V);
      const want = row[a]! - (b === undefined ? 0 : row[b]!);
      expect(dla.total).toBeCloseTo(want, 4);
      expect(dla.heads.length).toBe(2);
      expect(dla.heads[0]!.length).toBe(4);
    }
  });

  it("activation patching: exact 0 where nothing differs, exact 1 at the last layer's last position", async () => {
    const clean = ids[0]!.slice(0, 10);
    const corrupted = [...clean];
    corrupted[3] = 200;
    const metric = logitDiffMetric(clean[9]!, 42);
    const res = await activationPatching(model, { clean, corrupted, metric, site: "resid_pre" });
    expect(res.values.length).toBe(2);
    expect(res.values[0]!.length).toBe(10);
    // Layer 0's input (the embeddings) differs only at position 3: patching elsewhere changes nothing.
    for (let t = 0; t < 10; t++) if (t !== 3) expect(Math.abs(res.values[0]![t]!)).toBeLessThanOrEqual(1e-6);
    // Patching every position's embeddings would restore everything; position 3 alone does here, since only it differs.
    expect(res.values[0]![3]).toBeCloseTo(1, 5);
    const post = await activationPatching(model, { clean, corrupted, metric, site: "resid_post", positions: [8, 9] });
    expect(post.values[1]![1]).toBeCloseTo(1, 5); // the last residual at the last position decides the logits
    expect(post.values[1]![0]).toBeCloseTo(0, 5); // position 8's final residual never reaches position 9
    const heads = await activationPatching(model, { clean, corrupted, metric, site: "z" });
    expect(heads.rowLabels.length).toBe(8);
    expect(heads.colLabels).toEqual(["all positions"]);
    await expect(activationPatching(model, { clean, corrupted: clean.slice(1), metric })).rejects.toThrow(/must line up/);
    await expect(activationPatching(model, { clean, corrupted: clean, metric })).rejects.toThrow(/nothing to restore/);
  });
});
