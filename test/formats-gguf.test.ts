import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GgufFile } from "../lib/io/gguf.js";
import { GgmlType, GgufValueType } from "../lib/io/gguf-types.js";
import { gguf, writeGguf } from "../lib/io/gguf-writer.js";
import { exportHfToGguf } from "../lib/io/gguf-export.js";
import { readGgufAsHf } from "../lib/io/gguf-hf.js";
import { fitRopeFreqs, ggufToHfName, hfToGgufName, llama3RopeFactors } from "../lib/io/gguf-llama.js";
import { readGgufTokenizer, syntheticSpmVocab } from "../lib/io/gguf-tokenizer.js";
import { tokenizerFromGguf } from "../lib/io/gguf-tokenizer-build.js";
import { LlamaTokenizer } from "../lib/tokenizer/index.js";
import { LlamaForCausalLM } from "../lib/model/index.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";
import { FormatError } from "../lib/errors.js";

const FIX = "test/fixtures/gguf";
let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gguf-")); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("GGUF reader (fixtures written by gguf-py)", () => {
  it("reads metadata of every value type as gguf-py reads it back", () => {
    const g = GgufFile.open(path.join(FIX, "types.gguf"));
    const want = JSON.parse(fs.readFileSync(path.join(FIX, "types.metadata.json"), "utf8")) as Record<string, unknown>;
    expect(g.version).toBe(3);
    expect(g.alignment).toBe(64);
    expect(g.dataOffset % 64).toBe(0);
    for (const [k, v] of Object.entries(want)) {
      if (k.startsWith("_") || k === "t.arr_nested") continue;
      const got = g.get(k);
      const plain = typeof got === "object" ? got.items : got;
      expect(plain, k).toEqual(v);
    }
    expect(g.metadata.get("t.u64")!.type).toBe(GgufValueType.UINT64);
    expect(g.metadata.get("t.f32")!.type).toBe(GgufValueType.FLOAT32);
    // gguf-py flattens nested arrays when reading back; the file holds [[1, 2], [3]].
    const nested = g.get("t.arr_nested") as { items: { items: number[] }[] };
    expect(nested.items.map((a) => a.items)).toEqual([[1, 2], [3]]);
    expect(g.string("t.str")).toBe("héllo ▁wörld");
    expect(() => g.number("t.str")).toThrow(/metadata "t.str": expected a number/);
    expect(() => g.number("missing.key")).toThrow(/missing metadata key "missing.key"/);
    g.close();
  });

  it("dequantizes F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q5_K/Q6_K exactly as gguf-py does", () => {
    const g = GgufFile.open(path.join(FIX, "types.gguf"));
    const want = SafetensorsFile.open(path.join(FIX, "types.expected.safetensors"));
    const types = JSON.parse(fs.readFileSync(path.join(FIX, "types.metadata.json"), "utf8"))._tensor_types as Record<string, string>;
    expect(new Set(Object.values(types))).toEqual(new Set(["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]));
    for (const name of want.names()) {
      const got = g.read(name);
      const exp = want.read(name);
      expect(got.shape, name).toEqual(exp.shape);
      expect(Array.from(got.toFloat32()), name).toEqual(Array.from(exp.toFloat32()));
      expect(GgmlType[g.info(name).type], name).toBe(types[name]);
    }
    expect(g.read("f16").dtype).toBe("f16"); // 16-bit weights stay 16-bit
    expect(g.read("bf16").dtype).toBe("bf16");
    g.close();
  });

  it("reads version 2 files (same layout) and rejects v1, big-endian and foreign files with the file named", () => {
    const bytes = fs.readFileSync(path.join(FIX, "types.gguf"));
    const v2 = path.join(tmp, "v2.gguf");
    const b2 = Buffer.from(bytes);
    b2.writeUInt32LE(2, 4);
    fs.writeFileSync(v2, b2);
    const g = GgufFile.open(v2);
    expect(g.version).toBe(2);
    expect(g.read("q8_0").shape).toEqual([2, 64]);
    g.close();
    const v1 = path.join(tmp, "v1.gguf");
    b2.writeUInt32LE(1, 4);
    fs.writeFileSync(v1, b2);
    expect(() => GgufFile.open(v1)).toThrow(/version 1 is not supported/);
    b2.writeUInt32BE(3, 4);
    fs.writeFileSync(v1, b2);
    expect(() => GgufFile.open(v1)).toThrow(/big-endian/);
    expect(() => GgufFile.open("test/fixtures/hf/tiny-llama/config.json")).toThrow(FormatError);
    expect(() => GgufFile.open("test/fixtures/hf/tiny-llama/config.json")).toThrow(/config.json: not a GGUF file/);
  });
});

describe("a GGUF made by llama.cpp's convert_hf_to_gguf.py (Q8_0, sentencepiece vocab)", () => {
  const FILE = path.join(FIX, "llamacpp", "tiny-llama-q8_0.gguf");
  const expected = () => JSON.parse(fs.readFileSync(path.join(FIX, "llamacpp", "expected.json"), "utf8"));

  it("config and weights: hf/tiny-llama's, each within half a Q8_0 step (q/k un-permuted)", () => {
    const r = readGgufAsHf(FILE);
    const ref = JSON.parse(fs.readFileSync("test/fixtures/hf/tiny-llama/config.json", "utf8"));
    for (const k of ["hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "vocab_size", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "max_position_embeddings"]) {
      expect(r.config[k], k).toEqual(ref[k]);
    }
    expect(r.config.rope_theta).toBe(10000);
    expect(r.config.rope_scaling).toBeNull();
    const types = expected().tensor_types as Record<string, string>;
    const st = SafetensorsFile.open("test/fixtures/hf/tiny-llama/model.safetensors");
    for (const n of st.names()) {
      const info = r.weights.info(n);
      const want = st.read(n).toFloat32();
      const got = r.weights.read(n).toFloat32();
      let d = 0;
      let m = 0;
      for (let i = 0; i < want.length; i++) {
        d = Math.max(d, Math.abs(want[i]! - got[i]!));
        m = Math.max(m, Math.abs(want[i]!));
      }
      // Q8_0 rounds to steps of d = amax(block)/127 (≤ d/2), plus d itself stored as f16 (≤ 127·d·2^-11 at the block's
      // largest value); F16 to 11 bits; F32 exactly. A wrong row order would be off by O(|w|).
      const bound = info.ggmlType === "Q8_0" ? (m / 127) * (0.5 + 127 * 2 ** -11) : info.ggmlType === "F16" ? m / 2048 : 0;
      expect(d, `${n} (${info.ggmlType})`).toBeLessThanOrEqual(bound);
      expect(types[r.gguf.tensors.get(hfToGgufName(n)!)!.name]).toBe(info.ggmlType);
    }
    st.close();
    r.weights.close();
  });

  it("its tokenizer metadata rebuilds the sentencepiece tokenizer: sentencepiece's ids, and the same as the .model file", () => {
    const r = readGgufAsHf(FILE);
    r.weights.close();
    expect(r.tokenizer!.model).toBe("llama");
    const tok = tokenizerFromGguf(r.tokenizer!, FILE);
    const spm = LlamaTokenizer.fromFile(path.join(FIX, "llamacpp", "tokenizer.model"));
    for (const s of expected().samples as { text: string; ids: number[] }[]) {
      expect(tok.encode(s.text, { addSpecialTokens: false }), s.text).toEqual(s.ids);
      expect(tok.encode(s.text), s.text).toEqual(spm.encode(s.text));
      expect(tok.decode(s.ids)).toBe(s.text);
    }
  });

  it("loads as a model (fromPretrained on the .gguf): logits near HF's golden (Q8_0 weight error)", async () => {
    const m = await LlamaForCausalLM.fromPretrained(FILE);
    expect(m.config.vocab_size).toBe(512);
    const ids = JSON.parse(fs.readFileSync("test/fixtures/hf/tiny-llama/golden.json", "utf8")).cases.single.input_ids;
    const got = (await m.forward({ inputIds: ids })).logits.toFloat32();
    const st = SafetensorsFile.open("test/fixtures/hf/tiny-llama/golden.safetensors");
    const want = st.read("single.logits").toFloat32();
    st.close();
    let d = 0;
    for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!));
    expect(d).toBeGreaterThan(1e-3); // quantized: not the f32 model
    expect(d).toBeLessThan(0.2); // measured 0.089 on logits of magnitude ~3
  });
});

describe("GGUF writer", () => {
  it("round-trips metadata of every type, tensors, and a custom alignment", () => {
    const file = path.join(tmp, "rt.gguf");
    const md: [string, ReturnType<typeof gguf.u8>][] = [
      ["general.architecture", gguf.str("llama")],
      ["a.u8", gguf.u8(255)], ["a.i8", gguf.i8(-128)], ["a.u16", gguf.u16(65535)], ["a.i16", gguf.i16(-32768)],
      ["a.u32", gguf.u32(4294967295)], ["a.i32", gguf.i32(-5)], ["a.f32", gguf.f32(1.5)], ["a.f64", gguf.f64(1 / 3)],
      ["a.u64", gguf.u64(2n ** 63n)], ["a.i64", gguf.i64(-7)], ["a.bool", gguf.bool(false)], ["a.str", gguf.str("日本")],
      ["a.arr", gguf.arr(GgufValueType.STRING, ["x", "yz"])],
      ["a.empty", gguf.arr(GgufValueType.INT32, [])],
    ];
    const w = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
    const h = new Tensor(f32ToF16([0.5, -2, 4, 8]), [4], "f16");
    writeGguf(file, md, [
      { name: "w", shape: [2, 3], type: GgmlType.F32, data: () => w },
      { name: "w16", shape: [2, 3], type: GgmlType.F16, data: () => w },
      { name: "h", shape: [4], type: GgmlType.F16, data: () => h },
    ], { alignment: 128 });
    const g = GgufFile.open(file);
    expect(g.alignment).toBe(128);
    for (const [k, e] of md) {
      expect(g.metadata.get(k)!.type, k).toBe(e.type);
      expect(g.get(k), k).toEqual(e.type === GgufValueType.FLOAT64 || e.type === GgufValueType.UINT64 ? e.value : e.value);
    }
    expect(g.info("w").ne).toEqual([3, 2]);
    expect(Array.from(g.read("w").toFloat32())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(g.read("w16").toFloat32())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(g.read("h").toFloat32())).toEqual([0.5, -2, 4, 8]);
    for (const t of g.tensors.values()) expect((t.offset - g.dataOffset) % 128).toBe(0);
    g.close();
  });

  it("a failing tensor producer leaves no file behind", () => {
    const file = path.join(tmp, "fail.gguf");
    expect(() => writeGguf(file, [], [{ name: "x", shape: [2], type: GgmlType.F32, data: () => Tensor.from([1, 2, 3]) }])).toThrow(/has shape \[3\], planned \[2\]/);
    expect(fs.readdirSync(tmp).filter((f) => f.includes("fail"))).toEqual([]);
  });
});

describe("GGUF ↔ HF LLaMA mapping", () => {
  it("maps tensor names both ways", () => {
    expect(hfToGgufName("model.layers.3.self_attn.q_proj.weight")).toBe("blk.3.attn_q.weight");
    expect(hfToGgufName("model.layers.0.post_attention_layernorm.weight")).toBe("blk.0.ffn_norm.weight");
    expect(hfToGgufName("lm_head.weight")).toBe("output.weight");
    expect(ggufToHfName("blk.12.ffn_down.weight")).toBe("model.layers.12.mlp.down_proj.weight");
    expect(ggufToHfName("token_embd.weight")).toBe("model.embed_tokens.weight");
    expect(ggufToHfName("rope_freqs.weight")).toBeUndefined();
  });

  for (const c of ["tiny-llama", "tiny-llama-gqa-llama3rope"]) {
    it(`${c}: export (F32) then readGgufAsHf gives back the same weights and an equivalent config`, () => {
      const dir = `test/fixtures/hf/${c}`;
      const file = path.join(tmp, `${c}.gguf`);
      exportHfToGguf(dir, file, { outtype: "f32" });
      const r = readGgufAsHf(file);
      const ref = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
      for (const k of ["hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "head_dim", "vocab_size", "tie_word_embeddings", "max_position_embeddings", "bos_token_id", "eos_token_id"]) {
        expect(r.config[k], k).toEqual(ref[k]);
      }
      expect(r.config.rms_norm_eps).toBeCloseTo(ref.rms_norm_eps, 12);
      expect(r.config.rope_theta).toBe(ref.rope_theta ?? ref.rope_parameters.rope_theta);
      const st = SafetensorsFile.open(path.join(dir, "model.safetensors"));
      expect(r.weights.names().sort()).toEqual(st.names().sort());
      for (const n of st.names()) {
        // q/k rows go through the llama.cpp permutation and back.
        expect(Array.from(r.weights.read(n).toFloat32()), n).toEqual(Array.from(st.read(n).toFloat32()));
      }
      const q = r.gguf.read("blk.0.attn_q.weight").toFloat32();
      const hfQ = st.read("model.layers.0.self_attn.q_proj.weight").toFloat32();
      const H = ref.hidden_size as number;
      // Interleaved layout on disk: GGUF row 1 is HF row head_dim/2 (the partner of row 0).
      expect(Array.from(q.subarray(H, 2 * H))).toEqual(Array.from(hfQ.subarray((ref.head_dim / 2) * H, (ref.head_dim / 2 + 1) * H)));
      if (ref.rope_scaling) {
        // llama3 scaling travels as a rope_freqs tensor; the fitted parameters must give the same divisors.
        expect(r.gguf.tensors.has("rope_freqs.weight")).toBe(true);
        const s = r.config.rope_scaling as Record<string, number>;
        expect(s.rope_type).toBe("llama3");
        const theta = ref.rope_theta as number;
        const a = llama3RopeFactors(theta, ref.head_dim, ref.rope_scaling);
        const b = llama3RopeFactors(theta, ref.head_dim, s as never);
        for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 5);
      } else {
        expect(r.config.rope_scaling).toBeNull();
      }
      st.close();
      r.weights.close();
    });
  }

  it("F16 export keeps norms in F32 and weights in F16, readable as f16 tensors", () => {
    const file = path.join(tmp, "f16.gguf");
    exportHfToGguf("test/fixtures/hf/tiny-llama", file, { outtype: "f16" });
    const r = readGgufAsHf(file);
    expect(r.gguf.info("blk.0.attn_norm.weight").type).toBe(GgmlType.F32);
    expect(r.gguf.info("blk.0.attn_q.weight").type).toBe(GgmlType.F16);
    expect(r.config.torch_dtype).toBe("float16");
    const st = SafetensorsFile.open("test/fixtures/hf/tiny-llama/model.safetensors");
    const k = r.weights.read("model.layers.1.self_attn.k_proj.weight");
    expect(k.dtype).toBe("f16");
    expect(Array.from(k.data)).toEqual(Array.from(f32ToF16(st.read("model.layers.1.self_attn.k_proj.weight").toFloat32())));
    st.close();
    r.weights.close();
  });

  it("fits rope_freqs of Llama 3.1 (and a linear all-low case); refuses non-llama3 shapes", () => {
    const p31 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const f = llama3RopeFactors(500000, 128, p31);
    const fit = fitRopeFreqs(f, 500000, 128);
    expect(fit).not.toBeNull();
    const again = llama3RopeFactors(500000, 128, fit as never);
    for (let i = 0; i < f.length; i++) expect(again[i]).toBeCloseTo(f[i]!, 5);
    expect(fitRopeFreqs(new Float32Array(64).fill(4), 10000, 128)).toEqual({ rope_type: "linear", factor: 4 });
    expect(fitRopeFreqs(new Float32Array(64).fill(1), 10000, 128)).toBeNull();
    const odd = Float32Array.from(f).reverse();
    expect(() => fitRopeFreqs(odd, 500000, 128)).toThrow(/not monotone/);
  });

  it("tokenizer metadata round-trips as plain data", () => {
    const file = path.join(tmp, "tok.gguf");
    const tok = syntheticSpmVocab(300);
    tok.chatTemplate = "{{ messages }}";
    exportHfToGguf("test/fixtures/hf/tiny-llama", file, { tokenizer: { ...tok, tokens: [...tok.tokens, ...Array.from({ length: 212 }, (_, i) => `x${i}`)], scores: [...tok.scores!, ...new Array(212).fill(-1)], tokenTypes: [...tok.tokenTypes!, ...new Array(212).fill(1)] } });
    const g = GgufFile.open(file);
    const back = readGgufTokenizer(g)!;
    expect(back.model).toBe("llama");
    expect(back.tokens.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
    expect(back.tokens).toHaveLength(512);
    expect(back.tokenTypes!.slice(0, 4)).toEqual([2, 3, 3, 6]);
    expect(back.bosTokenId).toBe(1);
    expect(back.chatTemplate).toBe("{{ messages }}");
    g.close();
  });
});
