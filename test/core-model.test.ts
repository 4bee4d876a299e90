/**
 * Sequence classification parity, hooks (observe + intervene, zero-cost path),
 * inputs_embeds, position_ids, savePretrained round-trip, sharded checkpoints
 * and the local hub cache.
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { LlamaForSequenceClassification, setWarningSink } from "../lib/model/seq-cls.js";
import { LlamaModel } from "../lib/model/llama.js";
import { hookPointNames } from "../lib/model/types.js";
import { resolveModelDir } from "../lib/io/checkpoint.js";
import { SafetensorsFile, saveSafetensors } from "../lib/io/safetensors.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { HF, golden, maskedMaxDiff } from "./core-helpers.js";

const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), p));
const maxDiff = (a: Tensor, b: Tensor) => {
  const x = a.toFloat32(), y = b.toFloat32();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
};

describe("LlamaForSequenceClassification", () => {
  const dir = path.join(HF, "tiny-llama-seqcls");
  const g = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as {
    input_ids: number[][]; attention_mask: number[][]; logits: number[][];
  };

  it("pools the last non-pad token (right padding) and matches HF's logits", async () => {
    const m = await LlamaForSequenceClassification.fromPretrained(dir);
    const out = await m.forward({ inputIds: g.input_ids, attentionMask: g.attention_mask });
    expect(out.logits.shape).toEqual([3, 3]);
    const ref = SafetensorsFile.open(path.join(dir, "golden.safetensors")).read("logits");
    expect(maxDiff(out.logits, ref)).toBeLessThanOrEqual(1e-4);
    expect(maxDiff(out.logits, Tensor.from(g.logits.flat(), [3, 3]))).toBeLessThanOrEqual(1e-4);
  });

  it("falls back to the last position with a warning for inputs_embeds", async () => {
    const m = await LlamaForSequenceClassification.fromPretrained(dir);
    const warnings: string[] = [];
    setWarningSink((w) => warnings.push(w));
    const row = [g.input_ids[2]!]; // unpadded row: the last position is the right one
    const emb = await m.getInputEmbeddings(row);
    const out = await m.forward({ inputsEmbeds: emb });
    expect(warnings.join()).toMatch(/inputs_embeds/);
    expect(maxDiff(out.logits, Tensor.from(g.logits[2]!, [1, 3]))).toBeLessThanOrEqual(1e-4);
  });
});

describe("LlamaForCausalLM features", () => {
  let model: LlamaForCausalLM;
  const g = golden("tiny-llama");
  const c = g.json.cases.batch_left_padded!;
  beforeAll(async () => {
    model = await LlamaForCausalLM.fromPretrained(path.join(HF, "tiny-llama"));
  });

  it("inputs_embeds gives the same logits as input_ids", async () => {
    const emb = await model.getInputEmbeddings(c.input_ids);
    expect(emb.shape).toEqual([2, 12, 64]);
    const out = await model.forward({ inputsEmbeds: emb, attentionMask: c.attention_mask });
    expect(maskedMaxDiff(out.logits, g.tensors.read("batch_left_padded.logits"), c.attention_mask, 1)).toBeLessThanOrEqual(1e-4);
  });

  it("position_ids: a uniform shift keeps logits (RoPE is relative), a gap changes them", async () => {
    const ids = [g.json.cases.single!.input_ids[0]!.slice(0, 10)];
    const plain = await model.forward({ inputIds: ids });
    const shifted = await model.forward({ inputIds: ids, positionIds: [ids[0]!.map((_, t) => t + 7)] });
    expect(maxDiff(plain.logits, shifted.logits)).toBeLessThanOrEqual(1e-5);
    const gap = await model.forward({ inputIds: ids, positionIds: [ids[0]!.map((_, t) => (t < 5 ? t : t + 20))] });
    const V = model.config.vocab_size;
    const head = (t: Tensor) => new Tensor(t.toFloat32().slice(0, 5 * V), [5, V]);
    expect(maxDiff(head(plain.logits), head(gap.logits))).toBeLessThanOrEqual(1e-6); // before the gap: causal, unchanged
    expect(maxDiff(plain.logits, gap.logits)).toBeGreaterThan(1e-3);
    // the left-padded row with mask-derived positions equals its tokens alone, unpadded
    const positions = c.attention_mask.map((row) => {
      let p = 0;
      return row.map((m) => (m ? p++ : 1));
    });
    const a = await model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, positionIds: positions });
    const alone = await model.forward({ inputIds: [c.input_ids[1]!.slice(4)] });
    const tail = new Tensor(a.logits.toFloat32().slice((12 + 4) * V), [1, 8, V]);
    expect(maxDiff(tail, alone.logits)).toBeLessThanOrEqual(1e-5);
  });

  it("hooks observe every point with the documented shapes", async () => {
    const seen = new Map<string, readonly number[]>();
    const names = hookPointNames(model.config.num_hidden_layers);
    const hooks = Object.fromEntries(names.map((n) => [n, (t: Tensor, name: string) => { seen.set(name, t.shape); }]));
    const out = await model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, hooks });
    expect([...seen.keys()]).toEqual(names);
    expect(seen.get("embed")).toEqual([2, 12, 64]);
    expect(seen.get("layers.0.self_attn.q")).toEqual([2, 4, 12, 16]);
    expect(seen.get("layers.1.self_attn.pattern")).toEqual([2, 4, 12, 12]);
    expect(seen.get("layers.1.self_attn.z")).toEqual([2, 4, 12, 16]);
    expect(seen.get("layers.0.mlp.act")).toEqual([2, 12, 176]);
    expect(seen.get("logits")).toEqual([2, 12, 512]);
    // observing changes nothing
    expect(maskedMaxDiff(out.logits, g.tensors.read("batch_left_padded.logits"), c.attention_mask, 1)).toBeLessThanOrEqual(1e-4);
  });

  it("hooks that return the same values change nothing; replacing an activation changes the output", async () => {
    const identity = (t: Tensor) => new Tensor(t.toFloat32().slice(), t.shape);
    const names = hookPointNames(2).filter((n) => n !== "logits");
    const same = await model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, hooks: (n) => (names.includes(n) ? identity : undefined) });
    expect(maskedMaxDiff(same.logits, g.tensors.read("batch_left_padded.logits"), c.attention_mask, 1)).toBeLessThanOrEqual(1e-4);
    // Zero-ablate head 0 of layer 1 through z, and the same through the pattern: both change the logits.
    const zeroHead0 = (t: Tensor) => {
      const d = t.toFloat32().slice();
      const per = t.shape.slice(2).reduce((a, b) => a * b, 1);
      for (let b = 0; b < t.shape[0]!; b++) d.fill(0, b * t.shape[1]! * per, b * t.shape[1]! * per + per);
      return new Tensor(d, t.shape);
    };
    const viaZ = await model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, hooks: { "layers.1.self_attn.z": zeroHead0 } });
    const viaPattern = await model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, hooks: { "layers.1.self_attn.pattern": zeroHead0 } });
    expect(maxDiff(viaZ.logits, same.logits)).toBeGreaterThan(1e-3);
    expect(maxDiff(viaZ.logits, viaPattern.logits)).toBeLessThanOrEqual(1e-5);
  });

  it("logitsToKeep keeps the last positions", async () => {
    const all = await model.forward({ inputIds: c.input_ids });
    const last = await model.forward({ inputIds: c.input_ids, logitsToKeep: 1 });
    expect(last.logits.shape).toEqual([2, 1, 512]);
    const V = 512;
    for (let b = 0; b < 2; b++) {
      const ref = all.logits.toFloat32().subarray((b * 12 + 11) * V, (b * 12 + 12) * V);
      const got = last.logits.toFloat32().subarray(b * V, (b + 1) * V);
      let m = 0;
      for (let i = 0; i < V; i++) m = Math.max(m, Math.abs(ref[i]! - got[i]!));
      expect(m).toBeLessThanOrEqual(1e-5);
    }
  });

  it("cache reorder for beam search selects batch rows", async () => {
    const out = await model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask });
    const before = await out.pastKeyValues!.toHost();
    out.pastKeyValues!.reorder([1, 1, 0]);
    const after = await out.pastKeyValues!.toHost();
    const per = before.keys[0]!.size / 2;
    expect(after.keys[0]!.shape).toEqual([3, 4, 12, 16]);
    expect(Array.from(after.keys[0]!.toFloat32().subarray(0, per))).toEqual(Array.from(before.keys[0]!.toFloat32().subarray(per)));
    expect(Array.from(after.values[1]!.toFloat32().subarray(2 * per))).toEqual(Array.from(before.values[1]!.toFloat32().subarray(0, per)));
  });
});

describe("savePretrained, shards and the hub cache", () => {
  it("savePretrained round-trips weights, dtype and config (tied lm_head not saved)", async () => {
    const m = await LlamaForCausalLM.fromPretrained(path.join(HF, "tiny-llama-gqa-llama3rope"));
    const dir = tmp("core-save-");
    await m.savePretrained(dir);
    const files = fs.readdirSync(dir).sort();
    expect(files).toEqual(["config.json", "generation_config.json", "model.safetensors"]);
    const src = SafetensorsFile.open(path.join(HF, "tiny-llama-gqa-llama3rope", "model.safetensors"));
    const dst = SafetensorsFile.open(path.join(dir, "model.safetensors"));
    expect(dst.names().sort()).toEqual(src.names().filter((n) => n !== "lm_head.weight").sort());
    for (const n of dst.names()) expect(Buffer.from(dst.readBytes(n)).equals(Buffer.from(src.readBytes(n)))).toBe(true);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    expect(cfg.rope_parameters.rope_type).toBe("llama3");
    const again = await LlamaForCausalLM.fromPretrained(dir);
    const ids = [[1, 2, 3, 4]];
    expect(maxDiff((await again.forward({ inputIds: ids })).logits, (await m.forward({ inputIds: ids })).logits)).toBe(0);
  });

  it("keeps f16 weights as f16 on save (the default model)", async () => {
    const m = await LlamaModel.fromPretrained(path.join(HF, "..", "..", "..", "models", "tiny-stories"));
    expect(m.embed_tokens.weight.dtype).toBe("f16");
    const dir = tmp("core-save16-");
    await m.savePretrained(dir);
    const f = SafetensorsFile.open(path.join(dir, "model.safetensors"));
    expect(f.info("embed_tokens.weight").dtype).toBe("F16");
    expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")).architectures).toEqual(["LlamaModel"]);
  });

  it("loads a sharded checkpoint (model.safetensors.index.json)", async () => {
    const src = path.join(HF, "tiny-llama");
    const dir = tmp("core-shards-");
    for (const f of ["config.json", "generation_config.json"]) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    const st = SafetensorsFile.open(path.join(src, "model.safetensors"));
    const names = st.names().sort();
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((group, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      saveSafetensors(path.join(dir, file), Object.fromEntries(group.map((n) => [n, st.read(n)])));
      for (const n of group) weightMap[n] = file;
    });
    fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const g = golden("tiny-llama");
    const c = g.json.cases.single!;
    const m = await LlamaForCausalLM.fromPretrained(dir);
    const out = await m.forward({ inputIds: c.input_ids });
    expect(maskedMaxDiff(out.logits, g.tensors.read("single.logits"), c.attention_mask, 1)).toBeLessThanOrEqual(1e-4);
  });

  it("resolves org/name from a local hub cache (HF_HOME), never downloading", async () => {
    const home = tmp("core-hfhome-");
    const repo = path.join(home, "hub", "models--acme--tiny");
    const snap = path.join(repo, "snapshots", "0123456789abcdef0123456789abcdef01234567");
    fs.mkdirSync(snap, { recursive: true });
    fs.mkdirSync(path.join(repo, "refs"));
    fs.writeFileSync(path.join(repo, "refs", "main"), "0123456789abcdef0123456789abcdef01234567");
    for (const f of ["config.json", "model.safetensors"]) fs.symlinkSync(path.join(HF, "tiny-llama", f), path.join(snap, f));
    const old = process.env.HF_HOME;
    process.env.HF_HOME = home;
    try {
      expect(resolveModelDir("acme/tiny")).toBe(snap);
      const m = await LlamaForCausalLM.fromPretrained("acme/tiny");
      expect(m.config.vocab_size).toBe(512);
      expect(() => resolveModelDir("acme/absent")).toThrow(/not in the local Hugging Face cache.*never downloads/);
    } finally {
      if (old === undefined) delete process.env.HF_HOME; else process.env.HF_HOME = old;
    }
  });
});

describe("backend registry", () => {
  it("hands out a fresh shared CPU backend after the shared one was disposed", async () => {
    const { getBackend } = await import("../lib/backend/registry.js");
    const a = await getBackend("cpu");
    expect(await getBackend("cpu")).toBe(a);
    a.dispose();
    const b = await getBackend("cpu");
    expect(b).not.toBe(a);
    // The new one computes: a 1×2 · (2×2)ᵀ linear.
    const y = await b.read(b.linear(b.upload(Tensor.from([1, 2], [1, 2])), b.upload(Tensor.from([1, 0, 0, 1], [2, 2]))));
    expect([...y.toFloat32()]).toEqual([1, 2]);
  });
});
