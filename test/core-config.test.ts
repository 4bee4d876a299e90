/**
 * LlamaConfig parsing/validation and rope frequencies: both config styles,
 * HF defaults, errors naming field and value, rope types against float32
 * references computed from transformers' formulas (numpy, constants below).
 */
import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LlamaConfig } from "../lib/config.js";
import { ConfigError, FormatError } from "../lib/errors.js";
import { RotaryEmbedding } from "../lib/model/rope.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { HF, golden, maskedMaxDiff } from "./core-helpers.js";

const base = {
  model_type: "llama", vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
  num_attention_heads: 4, max_position_embeddings: 64,
};

describe("LlamaConfig", () => {
  it("reads the transformers-5 style and the legacy style to the same config", () => {
    const legacy = LlamaConfig.fromFile(path.join(HF, "tiny-llama-gqa-llama3rope", "config.json"));
    const v5 = LlamaConfig.fromFile(path.join(HF, "tiny-llama-gqa-llama3rope", "config.saved-by-transformers5.json"));
    expect(legacy.rope_theta).toBe(500000);
    expect(legacy.rope_scaling).toEqual({
      rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64,
    });
    expect(v5.rope_theta).toBe(legacy.rope_theta);
    expect(v5.rope_scaling).toEqual(legacy.rope_scaling);
    expect(v5.num_key_value_heads).toBe(2);
    expect(v5.tie_word_embeddings).toBe(true);
    expect(new RotaryEmbedding(v5).invFreq).toEqual(new RotaryEmbedding(legacy).invFreq);
  });

  it("accepts the legacy `type` key and fills HF defaults", () => {
    const c = LlamaConfig.fromJSON({ ...base, rope_scaling: { type: "linear", factor: 2 } });
    expect(c.rope_scaling).toEqual({ rope_type: "linear", factor: 2 });
    expect(c.num_key_value_heads).toBe(4);
    expect(c.head_dim).toBe(16);
    expect(c.rope_theta).toBe(10000);
    expect(c.rms_norm_eps).toBe(1e-6);
    expect(c.eos_token_id).toBe(2);
    expect(c.pad_token_id).toBeNull();
    const list = LlamaConfig.fromJSON({ ...base, eos_token_id: [2, 7], head_dim: 32 });
    expect(list.eosTokenIds).toEqual([2, 7]);
    expect(list.head_dim).toBe(32);
  });

  it("round-trips through toJSON in the transformers-5 style", () => {
    const c = LlamaConfig.fromJSON({ ...base, rope_theta: 5e5, rope_scaling: { type: "dynamic", factor: 2 } });
    const j = c.toJSON();
    expect(j.rope_parameters).toEqual({ rope_type: "dynamic", factor: 2, rope_theta: 5e5 });
    expect(j.rope_scaling).toBeUndefined();
    expect(LlamaConfig.fromJSON(j).rope_scaling).toEqual(c.rope_scaling);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ["hidden_size not divisible by heads", { hidden_size: 66 }, /hidden_size = 66 is not divisible by num_attention_heads = 4/],
    ["heads not divisible by kv heads", { num_key_value_heads: 3 }, /num_attention_heads = 4 is not divisible by num_key_value_heads = 3/],
    ["unsupported rope type", { rope_scaling: { rope_type: "longrope", factor: 2 } }, /rope_type = "longrope".*unsupported rope type/],
    ["unsupported legacy rope type", { rope_scaling: { type: "su" } }, /type = "su"/],
    ["unknown architecture", { architectures: ["MistralForCausalLM"] }, /architectures.*unknown architecture "MistralForCausalLM"/],
    ["other model_type", { model_type: "gpt2" }, /model_type = "gpt2"/],
    ["wrong field type", { hidden_size: "64" }, /hidden_size = "64": expected an integer/],
    ["negative layers", { num_hidden_layers: -1 }, /num_hidden_layers = -1/],
    ["activation", { hidden_act: "gelu" }, /hidden_act = "gelu"/],
    ["llama3 without its factors", { rope_scaling: { rope_type: "llama3", factor: 8 } }, /low_freq_factor/],
    ["linear without factor", { rope_parameters: { rope_type: "linear", rope_theta: 10000 } }, /factor.*required by rope type linear/],
  ];
  for (const [what, patch, msg] of bad) {
    it(`rejects ${what}`, () => {
      expect(() => LlamaConfig.fromJSON({ ...base, ...patch }, "cfg.json")).toThrow(ConfigError);
      expect(() => LlamaConfig.fromJSON({ ...base, ...patch }, "cfg.json")).toThrow(msg);
    });
  }

  it("names the file for malformed JSON", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "core-config-"));
    const file = path.join(dir, "config.json");
    fs.writeFileSync(file, '{"hidden_size": 64,');
    expect(() => LlamaConfig.fromFile(file)).toThrow(FormatError);
    expect(() => LlamaConfig.fromFile(file)).toThrow(new RegExp(`${file}: malformed JSON`));
  });
});

describe("rope frequencies", () => {
  const near = (a: ArrayLike<number>, b: number[]) => {
    expect(a.length).toBe(b.length);
    for (let i = 0; i < b.length; i++) expect(Math.abs(a[i]! - b[i]!) / Math.abs(b[i]!)).toBeLessThan(1e-6);
  };
  // float32 numpy references of transformers' formulas (head_dim 16, theta 10000).
  const LINEAR4 = [0.25, 0.07905694097280502, 0.02500000037252903, 0.007905694656074047, 0.0024999999441206455, 0.0007905694656074047, 0.0002500000118743628, 7.905694656074047e-05];
  const DYNAMIC2_AT_100 = [1.0, 0.28394514322280884, 0.08062484115362167, 0.0228930301964283, 0.0065003652125597, 0.0018457469996064901, 0.0005240908940322697, 0.00014881306560710073];
  const YARN4 = [1.0, 0.23717081546783447, 0.04999999701976776, 0.007905694656074047, 0.0024999999441206455, 0.0007905694656074047, 0.0002500000118743628, 7.905694656074047e-05];

  it("linear divides the frequencies by factor", () => {
    near(new RotaryEmbedding(LlamaConfig.fromJSON({ ...base, rope_scaling: { type: "linear", factor: 4 } })).invFreq, LINEAR4);
  });

  it("dynamic keeps the base frequencies up to max_position_embeddings and recomputes from max(position)+1 beyond", () => {
    const dyn = new RotaryEmbedding(LlamaConfig.fromJSON({ ...base, rope_scaling: { type: "dynamic", factor: 2 } }));
    const plain = new RotaryEmbedding(LlamaConfig.fromJSON(base));
    expect(dyn.invFreqFor(63)).toEqual(plain.invFreq);
    near(dyn.invFreqFor(99), DYNAMIC2_AT_100);
    // the tables follow the largest position of the call
    const t = dyn.tables([[0, 99]]);
    expect(t.cos[8 + 1]).toBeCloseTo(Math.cos(99 * DYNAMIC2_AT_100[1]!), 5);
    expect(dyn.invFreqFor(10)).toEqual(plain.invFreq);
  });

  it("yarn blends interpolation and extrapolation and scales cos/sin by its attention factor", () => {
    const y = new RotaryEmbedding(LlamaConfig.fromJSON({ ...base, rope_parameters: { rope_type: "yarn", factor: 4, rope_theta: 10000 } }));
    near(y.invFreq, YARN4);
    expect(y.attentionScaling).toBeCloseTo(1.138629436111989, 12);
    const t = y.tables([[3]]);
    expect(t.cos[0]).toBeCloseTo(Math.cos(3) * 1.138629436111989, 6);
  });
});

describe("both config styles load the same model", () => {
  it("gqa-llama3rope with its transformers-5 config matches the golden logits", async () => {
    const src = path.join(HF, "tiny-llama-gqa-llama3rope");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "core-v5cfg-"));
    fs.copyFileSync(path.join(src, "config.saved-by-transformers5.json"), path.join(dir, "config.json"));
    fs.symlinkSync(path.join(src, "model.safetensors"), path.join(dir, "model.safetensors"));
    const model = await LlamaForCausalLM.fromPretrained(dir);
    const g = golden("tiny-llama-gqa-llama3rope");
    const c = g.json.cases.batch_left_padded!;
    const out = await model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask });
    expect(maskedMaxDiff(out.logits, g.tensors.read("batch_left_padded.logits"), c.attention_mask, 1)).toBeLessThanOrEqual(1e-4);
  });
});
