/**
 * The forward pass frees exactly what it makes (lib/model/scope.ts): a ledger
 * backend around the CPU backend records every tensor an op or upload makes
 * and every release. After each kind of forward — plain, with the KV cache,
 * with hooks that observe or replace every point, hidden states and
 * attentions, a LoRA path, the heads, a hook that throws — nothing is live
 * but the weights and the cache's own tensors, and nothing was released twice
 * or released without having been made. Also: no hooks means no read-back.
 * On WebGPU the same ledger, and the buffer pool's scratch in use returns to
 * where it was (KV-cache buffers are their own kind).
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { LlamaForSequenceClassification } from "../lib/model/seq-cls.js";
import { LlamaModel } from "../lib/model/llama.js";
import { Scope } from "../lib/model/scope.js";
import { hookPointNames } from "../lib/model/types.js";
import { CpuBackend } from "../lib/backend/cpu/cpu-backend.js";
import { getBackend } from "../lib/backend/registry.js";
import type { AttentionMask, AttentionOptions, AttentionResult, Backend, DeviceTensor } from "../lib/backend/backend.js";
import { Tensor } from "../lib/tensor/tensor.js";
import type { DynamicCache } from "../lib/model/kv-cache.js";
import { HF, golden } from "./core-helpers.js";

/** A Backend that keeps a ledger of live tensors and of ownership mistakes (over the CPU or WebGPU backend). */
class LedgerBackend implements Backend {
  readonly live = new Set<DeviceTensor>();
  readonly mistakes: string[] = [];
  reads = 0;

  constructor(private readonly inner: Backend) {}

  private made<T extends DeviceTensor>(t: T, op: string): T {
    if (this.live.has(t)) this.mistakes.push(`${op} returned a tensor that was already live`);
    this.live.add(t);
    return t;
  }

  get device() { return this.inner.device; }
  get description() { return `ledger over ${this.inner.description}`; }
  upload(t: Tensor) { return this.made(this.inner.upload(t), "upload"); }
  read(t: DeviceTensor) {
    if (!this.live.has(t)) this.mistakes.push(`read a tensor that is not live [${t.shape.join(", ")}]`);
    this.reads++;
    return this.inner.read(t);
  }
  release(t: DeviceTensor) {
    if (!this.live.delete(t)) this.mistakes.push(`released a tensor that is not live [${t.shape.join(", ")}]`);
    this.inner.release(t);
  }
  dispose() { this.inner.dispose(); }
  embedding(table: DeviceTensor, ids: Int32Array, b: number, t: number) { return this.made(this.inner.embedding(table, ids, b, t), "embedding"); }
  rmsNorm(x: DeviceTensor, w: DeviceTensor, eps: number) { return this.made(this.inner.rmsNorm(x, w, eps), "rmsNorm"); }
  linear(x: DeviceTensor, w: DeviceTensor, b?: DeviceTensor) { return this.made(this.inner.linear(x, w, b), "linear"); }
  linearMany(x: DeviceTensor, ws: readonly DeviceTensor[], bs?: readonly (DeviceTensor | undefined)[]) {
    return this.inner.linearMany(x, ws, bs).map((y) => this.made(y, "linearMany"));
  }
  add(a: DeviceTensor, b: DeviceTensor) { return this.made(this.inner.add(a, b), "add"); }
  scale(x: DeviceTensor, f: number) { return this.made(this.inner.scale(x, f), "scale"); }
  siluMul(g: DeviceTensor, u: DeviceTensor) { return this.made(this.inner.siluMul(g, u), "siluMul"); }
  splitHeads(x: DeviceTensor, h: number, rope?: { cos: Float32Array; sin: Float32Array }) { return this.made(this.inner.splitHeads(x, h, rope), "splitHeads"); }
  mergeHeads(x: DeviceTensor) { return this.made(this.inner.mergeHeads(x), "mergeHeads"); }
  kvAppend(cache: DeviceTensor | undefined, x: DeviceTensor) {
    // The cache argument is consumed: its handle dies here and the result takes over.
    if (cache && !this.live.delete(cache)) this.mistakes.push("kvAppend consumed a tensor that is not live");
    return this.made(this.inner.kvAppend(cache, x), "kvAppend");
  }
  attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, mask: AttentionMask, opts: AttentionOptions): AttentionResult {
    const r = this.inner.attention(q, k, v, mask, opts);
    this.made(r.out, "attention");
    if (r.weights) this.made(r.weights, "attention weights");
    return r;
  }
  attendWith(w: DeviceTensor, v: DeviceTensor) { return this.made(this.inner.attendWith(w, v), "attendWith"); }
  selectPositions(x: DeviceTensor, index: Int32Array, perRow: number) { return this.made(this.inner.selectPositions(x, index, perRow), "selectPositions"); }
  selectBatch(x: DeviceTensor, rows: Int32Array) { return this.made(this.inner.selectBatch(x, rows), "selectBatch"); }
}

function shapesOf(ts: DeviceTensor[]): string[] {
  return ts.map((t) => `[${t.shape.join(", ")}]`);
}

/** The tensors a cache holds (each layer's keys and values). */
function cacheTensors(cache: DynamicCache | undefined): Set<DeviceTensor> {
  const held = new Set<DeviceTensor>();
  for (let i = 0; cache && i < cache.numLayers; i++) {
    const l = cache.layer(i);
    if (l) { held.add(l.keys); held.add(l.values); }
  }
  return held;
}

describe("the forward pass frees what it makes (ledger backend over the CPU)", () => {
  const g = golden("tiny-llama");
  const c = g.json.cases.batch_left_padded!;
  let be: LedgerBackend;
  let model: LlamaForCausalLM;
  let weights: Set<DeviceTensor>;

  /** Shapes of the live tensors beyond the weights and `kept` (shapes, so a failure prints small). */
  const leaked = (kept: Set<DeviceTensor> = new Set()) => shapesOf([...be.live].filter((t) => !weights.has(t) && !kept.has(t)));

  beforeAll(async () => {
    be = new LedgerBackend(await CpuBackend.create());
    model = await LlamaForCausalLM.fromPretrained(path.join(HF, "tiny-llama"), { backend: be });
    weights = new Set(be.live);
  });

  const args = () => ({ inputIds: c.input_ids, attentionMask: c.attention_mask });

  it("no hooks: one read (the logits), and only the cache's tensors stay", async () => {
    be.reads = 0;
    const out = await model.forward({ ...args(), hooks: {} });
    expect(be.reads).toBe(1);
    const cache = out.pastKeyValues!;
    expect(cacheTensors(cache).size).toBe(2 * model.config.num_hidden_layers);
    expect(leaked(cacheTensors(cache))).toEqual([]);
    // Decoding one more token through the cache: the old cache handles are consumed, the new ones kept.
    const step = await model.forward({ inputIds: [[5], [7]], attentionMask: c.attention_mask.map((r) => [...r, 1]), pastKeyValues: cache, logitsToKeep: 1 });
    expect(step.logits.shape).toEqual([2, 1, 512]);
    expect(leaked(cacheTensors(cache))).toEqual([]);
    cache.release();
    expect(leaked()).toEqual([]);
    expect(be.mistakes).toEqual([]);
  });

  it("without a cache nothing stays; logitsToKeep, hidden states and attentions included", async () => {
    const out = await model.forward({ ...args(), useCache: false, outputHiddenStates: true, outputAttentions: true, logitsToKeep: 2 });
    expect(out.hiddenStates).toHaveLength(3);
    expect(out.attentions).toHaveLength(2);
    expect(leaked()).toEqual([]);
    expect(be.mistakes).toEqual([]);
  });

  it("hooks that observe or replace every point (pattern and z too) free exactly once", async () => {
    const names = hookPointNames(model.config.num_hidden_layers);
    const copy = (t: Tensor) => new Tensor(t.toFloat32().slice(), t.shape);
    be.reads = 0;
    await model.forward({ ...args(), useCache: false, hooks: Object.fromEntries(names.map((n) => [n, () => undefined])) });
    expect(be.reads).toBe(names.length + 1); // each point read once, then the logits
    expect(leaked()).toEqual([]);
    const out = await model.forward({ ...args(), outputAttentions: true, hooks: Object.fromEntries(names.map((n) => [n, copy])) });
    expect(leaked(cacheTensors(out.pastKeyValues))).toEqual([]);
    out.pastKeyValues!.release();
    expect(be.mistakes).toEqual([]);
  });

  it("a hook that throws leaves nothing behind", async () => {
    const boom = () => { throw new Error("boom"); };
    await expect(model.forward({ ...args(), useCache: false, hooks: { "layers.1.mlp.act": boom } })).rejects.toThrow("boom");
    const wrongShape = () => new Tensor(new Float32Array(3), [3]);
    await expect(model.forward({ ...args(), useCache: false, hooks: { "layers.0.self_attn.q": wrongShape } })).rejects.toThrow(/shape/);
    expect(leaked()).toEqual([]);
    expect(be.mistakes).toEqual([]);
  });

  it("a LoRA path frees its temporaries and gives base + scaling · B(A(x))", async () => {
    const q = model.model.layers[0]!.self_attn.q_proj;
    const base = await model.forward({ ...args(), useCache: false });
    const A = be.upload(new Tensor(Float32Array.from({ length: 4 * 64 }, (_, i) => Math.sin(i)), [4, 64]));
    const B = be.upload(new Tensor(Float32Array.from({ length: 64 * 4 }, (_, i) => Math.cos(i)), [64, 4]));
    q.lora = { A, B, scaling: 0.5 };
    try {
      const adapted = await model.forward({ ...args(), useCache: false });
      expect(adapted.logits.toFloat32().some((v, i) => Math.abs(v - base.logits.toFloat32()[i]!) > 1e-3)).toBe(true);
      expect(leaked(new Set([A, B]))).toEqual([]);
      q.lora = { A, B, scaling: 0 }; // a zero scaling gives the base output back
      const zero = await model.forward({ ...args(), useCache: false });
      expect(zero.logits.toFloat32()).toEqual(base.logits.toFloat32());
    } finally {
      q.lora = undefined;
    }
    be.release(A);
    be.release(B);
    expect(leaked()).toEqual([]);
    expect(be.mistakes).toEqual([]);
  });

  it("the base model, input embeddings and sequence classification free what they make", async () => {
    const base = await LlamaModel.fromPretrained(path.join(HF, "tiny-llama"), { backend: be });
    const cls = await LlamaForSequenceClassification.fromPretrained(path.join(HF, "tiny-llama-seqcls"), { backend: be });
    weights = new Set(be.live);
    const out = await base.forward({ ...args(), useCache: false });
    expect(out.lastHiddenState.shape).toEqual([2, 12, 64]);
    const emb = await base.getInputEmbeddings(c.input_ids);
    await base.forward({ inputsEmbeds: emb, attentionMask: c.attention_mask, useCache: false });
    await cls.forward({ ...args(), useCache: false });
    expect(leaked()).toEqual([]);
    expect(be.mistakes).toEqual([]);
  });
});

describe("Scope", () => {
  it("keeps what the body returns, frees the rest once, and nests", async () => {
    const be = new LedgerBackend(await CpuBackend.create());
    const x = be.upload(Tensor.from([1, 2, 3, 4], [1, 4]));
    const kept = await Scope.run(be, async (outer) => {
      const y = outer.scale(x, 2);
      const inner = await outer.within(async (s) => {
        const a = s.add(y, y);
        s.release(s.scale(a, 3)); // released by hand: the scope must not release it again
        return [s.add(a, x), s.scale(a, 0.5)] as const;
      });
      expect(be.live.size).toBe(1 + 1 + 2); // x, y and the inner result (a was freed with the inner scope)
      return inner[0];
    });
    expect([...be.live].length).toBe(2);
    expect(be.live.has(x) && be.live.has(kept)).toBe(true);
    expect((await be.read(kept)).toFloat32()).toEqual(Float32Array.from([5, 10, 15, 20]));
    expect(be.mistakes).toEqual([]);
  });
});

describe("the forward pass frees what it makes on webgpu (ledger + the pool's scratch in use)", () => {
  const g = golden("tiny-llama");
  const c = g.json.cases.batch_left_padded!;
  let gpu: Backend & { memory(): { scratchInUse: number } };
  let be: LedgerBackend;
  let model: LlamaForCausalLM;
  beforeAll(async () => {
    gpu = (await getBackend("webgpu")) as Backend & { memory(): { scratchInUse: number } };
    be = new LedgerBackend(gpu);
    model = await LlamaForCausalLM.fromPretrained(path.join(HF, "tiny-llama"), { backend: be });
  });
  afterAll(() => gpu?.dispose());

  it("plain, cached decode, and every hook replacing its activation: scratch back to the start, no mistakes", async () => {
    const weights = new Set(be.live);
    const scratch0 = gpu.memory().scratchInUse;
    const names = hookPointNames(model.config.num_hidden_layers);
    const copy = (t: Tensor) => new Tensor(t.toFloat32().slice(), t.shape);
    const args = { inputIds: c.input_ids, attentionMask: c.attention_mask };
    const out = await model.forward({ ...args, outputHiddenStates: true, outputAttentions: true });
    const cache = out.pastKeyValues!;
    await model.forward({ inputIds: [[5], [7]], attentionMask: c.attention_mask.map((r) => [...r, 1]), pastKeyValues: cache, logitsToKeep: 1 });
    expect(shapesOf([...be.live].filter((t) => !weights.has(t) && !cacheTensors(cache).has(t)))).toEqual([]);
    cache.release();
    await model.forward({ ...args, useCache: false, hooks: Object.fromEntries(names.map((n) => [n, copy])) });
    expect(shapesOf([...be.live].filter((t) => !weights.has(t)))).toEqual([]);
    expect(gpu.memory().scratchInUse).toBe(scratch0);
    expect(be.mistakes).toEqual([]);
  });
});
