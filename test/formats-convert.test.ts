import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { convertMetaToHf } from "../lib/convert/meta-to-hf.js";
import { computeIntermediateSize, metaParamsToHfConfig, readMetaParams } from "../lib/convert/params.js";
import { interleavedToHalfSplit, halfSplitToInterleaved } from "../lib/convert/rotary-permute.js";
import { planShards } from "../lib/convert/safetensors-writer.js";
import { convertHfToMeta, ffnParamsFor } from "../lib/convert/hf-to-meta.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";
import { ConfigError, FormatError } from "../lib/errors.js";
import { saveSafetensors } from "../lib/io/safetensors.js";
import { LlamaForCausalLM } from "../lib/model/index.js";

const HF = "test/fixtures/hf/tiny-llama";
let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convert-")); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Every tensor of the converted folder equals hf/tiny-llama's rounded to float16, bit for bit. */
function expectEqualsHfFixtureAsF16(dir: string, files: string[]): void {
  const want = SafetensorsFile.open(path.join(HF, "model.safetensors"));
  const got = files.map((f) => SafetensorsFile.open(path.join(dir, f)));
  const where = new Map(got.flatMap((g) => g.names().map((n) => [n, g] as const)));
  expect([...where.keys()].sort()).toEqual(want.names().sort());
  for (const name of want.names()) {
    const g = where.get(name)!.read(name);
    const w = want.read(name);
    expect(g.dtype, name).toBe("f16");
    expect(g.shape, name).toEqual(w.shape);
    const wantBits = f32ToF16(w.toFloat32());
    const gotBits = g.data as Uint16Array;
    let mismatches = 0;
    for (let i = 0; i < wantBits.length; i++) if (gotBits[i] !== wantBits[i]) mismatches++;
    expect(mismatches, name).toBe(0);
  }
  for (const g of got) g.close();
  want.close();
}

describe("Meta → HF converter", () => {
  it("converts meta/tiny-llama to hf/tiny-llama's tensors (as float16) and config", async () => {
    const out = path.join(tmp, "one");
    const warnings: string[] = [];
    const r = await convertMetaToHf({ inputDir: "test/fixtures/meta/tiny-llama", outputDir: out, llamaVersion: "2", onWarning: (w) => warnings.push(w) });
    expect(r.numShards).toBe(1);
    expectEqualsHfFixtureAsF16(out, ["model.safetensors"]);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    const ref = JSON.parse(fs.readFileSync(path.join(HF, "config.json"), "utf8"));
    for (const k of ["hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "rms_norm_eps", "vocab_size", "head_dim", "tie_word_embeddings", "bos_token_id", "eos_token_id"]) {
      expect(cfg[k], k).toEqual(ref[k]);
    }
    expect(cfg.rope_theta).toBe(ref.rope_parameters.rope_theta);
    expect(cfg.torch_dtype).toBe("float16");
    expect(cfg.max_position_embeddings).toBe(4096);
    expect(warnings.join()).toMatch(/no tokenizer.model/);
    // No staging folder left behind.
    expect(fs.readdirSync(out).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors"]);
  });

  it("merges the 2-shard checkpoint into the same tensors, and shards the output with an index", async () => {
    const out = path.join(tmp, "two");
    const r = await convertMetaToHf({ inputDir: "test/fixtures/meta/tiny-llama-2shard", outputDir: out, maxShardBytes: 100_000 });
    expect(r.numShards).toBeGreaterThan(2);
    const index = JSON.parse(fs.readFileSync(path.join(out, "model.safetensors.index.json"), "utf8"));
    const files = [...new Set(Object.values(index.weight_map) as string[])].sort();
    expect(files[0]).toBe(`model-00001-of-${String(r.numShards).padStart(5, "0")}.safetensors`);
    expect(index.metadata.total_size).toBe(r.bytesWritten);
    expectEqualsHfFixtureAsF16(out, files);
  });

  it("GQA + Llama 3 layout (embedding split on dim 0, 1 kv head per shard, tied): HF → Meta 2 shards → HF is exact", async () => {
    const src = "test/fixtures/hf/tiny-llama-gqa-llama3rope";
    const meta = path.join(tmp, "gqa-meta");
    convertHfToMeta(src, meta, 2, true);
    fs.copyFileSync("test/fixtures/tokenizers/llama3/tokenizer.model", path.join(meta, "tokenizer.model")); // Meta's tiktoken file
    const params = JSON.parse(fs.readFileSync(path.join(meta, "params.json"), "utf8"));
    expect(params).toMatchObject({ dim: 96, n_heads: 6, n_kv_heads: 2, multiple_of: 8, ffn_dim_multiplier: 0.78125 });
    const out = path.join(tmp, "gqa-back");
    const r = await convertMetaToHf({ inputDir: meta, outputDir: out, llamaVersion: "3" });
    expect(r.config).toMatchObject({ num_key_value_heads: 2, intermediate_size: 200, tie_word_embeddings: true, vocab_size: 640, bos_token_id: 128000 });
    const a = SafetensorsFile.open(path.join(out, "model.safetensors"));
    const b = SafetensorsFile.open(path.join(src, "model.safetensors"));
    expect(a.names().sort()).toEqual(b.names().sort());
    for (const n of b.names()) {
      const x = a.read(n).toFloat32();
      const y = b.read(n).toFloat32();
      let diff = 0;
      for (let i = 0; i < y.length; i++) if (x[i] !== y[i]) diff++;
      expect(diff, n).toBe(0);
    }
    a.close();
    b.close();
    // The tiktoken tokenizer.model became a tokenizer.json with Llama 3.0's special-token names (--llama_version 3).
    expect(r.files).toContain("tokenizer.json");
    const tj = JSON.parse(fs.readFileSync(path.join(out, "tokenizer.json"), "utf8"));
    const names = JSON.parse(fs.readFileSync("test/fixtures/tokenizers/llama3/special_tokens.json", "utf8")).llama3_0 as Record<string, number>;
    expect(Object.fromEntries(tj.added_tokens.map((t: { content: string; id: number }) => [t.content, t.id]))).toEqual(names);
    expect(Object.keys(tj.model.vocab)).toHaveLength(128000);
    expect(JSON.parse(fs.readFileSync(path.join(out, "tokenizer_config.json"), "utf8")).tokenizer_class).toBe("PreTrainedTokenizerFast");
    // Read as LLaMA 2 (embedding split on dim 1), the same shards do not fit: a clear error.
    await expect(convertMetaToHf({ inputDir: meta, outputDir: path.join(tmp, "gqa-v2") })).rejects.toThrow(/tok_embeddings.weight" merges to \[320, 96\]|vocab_size 640 but tok_embeddings has 320 rows/);
    expect(ffnParamsFor(4096, 11008)).toEqual({ multiple_of: 256 });
  });

  it("finds the older input_dir/<model_size>/ layout and copies a sentencepiece tokenizer", async () => {
    const input = path.join(tmp, "old-layout");
    fs.mkdirSync(path.join(input, "7B"), { recursive: true });
    for (const f of ["params.json", "consolidated.00.pth"]) fs.copyFileSync(path.join("test/fixtures/meta/tiny-llama", f), path.join(input, "7B", f));
    fs.copyFileSync("test/fixtures/tokenizers/llama2/tokenizer.model", path.join(input, "tokenizer.model"));
    const out = path.join(tmp, "old-out");
    const r = await convertMetaToHf({ inputDir: input, modelSize: "7B", outputDir: out, llamaVersion: "1" });
    expect(r.config.max_position_embeddings).toBe(2048);
    expect(fs.readFileSync(path.join(out, "tokenizer.model")).equals(fs.readFileSync("test/fixtures/tokenizers/llama2/tokenizer.model"))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(out, "tokenizer_config.json"), "utf8")).tokenizer_class).toBe("LlamaTokenizer");
  });

  it("reports bad input clearly: missing params, shard gaps, wrong multiple_of", async () => {
    await expect(convertMetaToHf({ inputDir: tmp, outputDir: path.join(tmp, "x") })).rejects.toThrow(/no params.json/);
    const gap = path.join(tmp, "gap");
    fs.mkdirSync(gap);
    fs.copyFileSync("test/fixtures/meta/tiny-llama/params.json", path.join(gap, "params.json"));
    fs.copyFileSync("test/fixtures/meta/tiny-llama/consolidated.00.pth", path.join(gap, "consolidated.01.pth"));
    await expect(convertMetaToHf({ inputDir: gap, outputDir: path.join(tmp, "y") })).rejects.toThrow(/expected consolidated\.00\.pth/);
    const bad = path.join(tmp, "bad-ffn");
    fs.mkdirSync(bad);
    fs.copyFileSync("test/fixtures/meta/tiny-llama/consolidated.00.pth", path.join(bad, "consolidated.00.pth"));
    fs.writeFileSync(path.join(bad, "params.json"), JSON.stringify({ dim: 64, multiple_of: 256, n_heads: 4, n_layers: 2, norm_eps: 1e-6, vocab_size: -1 }));
    const err = await convertMetaToHf({ inputDir: bad, outputDir: path.join(tmp, "z") }).catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(String(err.message)).toMatch(/feed_forward.w1.weight" merges to \[176, 64\].*implies \[256, 64\].*multiple_of 256/);
    expect(fs.existsSync(path.join(tmp, "z", "config.json"))).toBe(false);
    expect(fs.existsSync(path.join(tmp, "z"))).toBe(false); // validation fails before anything is written
    fs.writeFileSync(path.join(bad, "params.json"), JSON.stringify({ dim: 64, n_heads: 5, n_layers: 2 }));
    await expect(convertMetaToHf({ inputDir: bad, outputDir: path.join(tmp, "w") })).rejects.toThrow(ConfigError);
  });
});

describe("converted model's logits", () => {
  it("match HF's golden logits within fp16 weight rounding, and equal those of hf/tiny-llama rounded to fp16", async () => {
    const out = path.join(tmp, "logits");
    await convertMetaToHf({ inputDir: "test/fixtures/meta/tiny-llama-2shard", outputDir: out });
    // The reference: the HF fixture's own weights rounded to float16, next to its own config.
    const ref = path.join(tmp, "hf-f16");
    fs.mkdirSync(ref);
    const st = SafetensorsFile.open(path.join(HF, "model.safetensors"));
    saveSafetensors(path.join(ref, "model.safetensors"), new Map(st.names().map((n) => [n, st.read(n)])), { dtype: "f16" });
    st.close();
    fs.copyFileSync(path.join(HF, "config.json"), path.join(ref, "config.json"));
    const converted = await LlamaForCausalLM.fromPretrained(out);
    const rounded = await LlamaForCausalLM.fromPretrained(ref);
    const golden = JSON.parse(fs.readFileSync(path.join(HF, "golden.json"), "utf8"));
    const gold = SafetensorsFile.open(path.join(HF, "golden.safetensors"));
    for (const c of ["single", "batch_left_padded"]) {
      const { input_ids: ids, attention_mask: mask } = golden.cases[c] as { input_ids: number[][]; attention_mask: number[][] };
      const a = (await converted.forward({ inputIds: ids, attentionMask: mask })).logits.toFloat32();
      const b = (await rounded.forward({ inputIds: ids, attentionMask: mask })).logits.toFloat32();
      expect(Array.from(a)).toEqual(Array.from(b));
      const want = gold.read(`${c}.logits`).toFloat32();
      const V = 512;
      const T = ids[0]!.length;
      let d = 0;
      ids.forEach((_, bi) => {
        for (let t = 0; t < T; t++) {
          if (!mask[bi]![t]) continue; // padded query positions are not compared
          for (let v = 0; v < V; v++) d = Math.max(d, Math.abs(a[(bi * T + t) * V + v]! - want[(bi * T + t) * V + v]!));
        }
      });
      // fp16 weights (relative rounding 2^-11) over 2 layers: measured ~4e-3 on logits of magnitude ~3.
      expect(d, c).toBeLessThan(1e-2);
      expect(d, c).toBeGreaterThan(0);
    }
    gold.close();
  });
});

describe("converter pieces", () => {
  it("intermediate_size follows Meta's FeedForward rounding for the published models", () => {
    expect(computeIntermediateSize(4096)).toBe(11008); // LLaMA 7B
    expect(computeIntermediateSize(5120)).toBe(13824); // 13B
    expect(computeIntermediateSize(8192, 1.3, 4096)).toBe(28672); // Llama 2 70B
    expect(computeIntermediateSize(4096, 1.3, 1024)).toBe(14336); // Llama 3 8B
    expect(computeIntermediateSize(64, 1, 16)).toBe(176); // the tiny fixture
  });

  it("config: Llama 3.1 gets llama3 rope scaling and 128k positions; CodeLlama-style theta gets 16k", () => {
    const p = readMetaParams("test/fixtures/meta/tiny-llama/params.json");
    const c31 = metaParamsToHfConfig({ ...p, rope_theta: 500000 }, "3.1", { vocabSize: 512, tied: false, dtype: "bfloat16" });
    expect(c31.rope_scaling).toEqual({ factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192, rope_type: "llama3" });
    expect(c31.max_position_embeddings).toBe(131072);
    expect(c31.bos_token_id).toBe(128000);
    const code = metaParamsToHfConfig({ ...p, rope_theta: 1e6 }, "2", { vocabSize: 512, tied: false, dtype: "float16" });
    expect(code.max_position_embeddings).toBe(16384);
  });

  it("rotary permutations are inverse row shuffles matching HF's permute on a worked example", () => {
    // One head of 4 rows (head_dim 4): Meta rows [r0 r1 r2 r3] = pairs (r0,r1), (r2,r3) → HF [r0 r2 r1 r3].
    const src = Uint8Array.from([0, 1, 2, 3, 10, 11, 12, 13]); // 2 heads × 4 rows × 1 byte
    expect(Array.from(interleavedToHalfSplit(src, 8, 1, 2))).toEqual([0, 2, 1, 3, 10, 12, 11, 13]);
    const rnd = Uint8Array.from({ length: 48 * 3 }, (_, i) => (i * 37) % 251);
    expect(halfSplitToInterleaved(interleavedToHalfSplit(rnd, 48, 3, 6), 48, 3, 6)).toEqual(rnd);
  });

  it("plans shards in order without splitting a tensor", () => {
    const t = (name: string, n: number) => ({ name, dtype: "F16" as const, shape: [n] });
    const plan = planShards([t("a", 10), t("b", 10), t("c", 30), t("d", 5)], 40);
    expect(plan.map((s) => s.tensors.map((x) => x.name))).toEqual([["a", "b"], ["c"], ["d"]]);
    expect(plan.map((s) => s.file)).toEqual(["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]);
  });
});
