import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { convertMetaToHf } from "../lib/convert/meta-to-hf.js";
import { computeIntermediateSize, metaParamsToHfConfig, readMetaParams } from "../lib/convert/params.js";
import { interleavedToHalfSplit, halfSplitToInterleaved } from "../lib/convert/rotary-permute.js";
import { planShards } from "../lib/convert/safetensors-writer.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";
import { ConfigError, FormatError } from "../lib/errors.js";

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
