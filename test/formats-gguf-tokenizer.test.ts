/**
 * Tokenizers through GGUF: the real LLaMA 2 (sentencepiece) and Llama 3
 * (byte-level BPE) tokenizers are written as `tokenizer.ggml.*` metadata,
 * read back, and rebuilt with the tokenizer module's classes; both our
 * tokenizer and llama.cpp's (loading the same file) must reproduce the
 * fixture vectors. Also the converter's Llama 3 tiktoken → tokenizer.json.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Llama } from "node-llama-cpp";
import { loadCpuLlama } from "./llamacpp-helpers.js";
import { readSentencePieceModel } from "../lib/tokenizer/sentencepiece-model.js";
import { sentencePieceToGgufData, tokenizerFromGguf, tokenizerJsonToGgufData } from "../lib/io/gguf-tokenizer-build.js";
import { readGgufTokenizer, tokenizerMetadata, type GgufTokenizerData } from "../lib/io/gguf-tokenizer.js";
import { gguf, writeGguf, type GgufTensorSpec } from "../lib/io/gguf-writer.js";
import { GgmlType } from "../lib/io/gguf-types.js";
import { GgufFile } from "../lib/io/gguf.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { tiktokenToTokenizerJson } from "../lib/convert/tokenizer-files.js";

const TOK = "test/fixtures/tokenizers";
interface Vector { text: string; ids: number[]; ids_with_bos: number[]; decoded: string }
let llama: Llama;
let tmp: string;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gguf-tok-"));
  llama = await loadCpuLlama();
});
afterAll(async () => {
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A GGUF holding the tokenizer plus a 1-layer all-zero LLaMA of that vocabulary (llama.cpp loads only whole models). */
function writeTokenizerGguf(file: string, data: GgufTokenizerData): void {
  const V = data.tokens.length;
  const H = 8;
  const z = (name: string, shape: number[]): GgufTensorSpec => ({ name, shape, type: GgmlType.F32, data: () => Tensor.zeros(shape) });
  writeGguf(file, [
    ["general.architecture", gguf.str("llama")], ["llama.block_count", gguf.u32(1)], ["llama.context_length", gguf.u32(64)],
    ["llama.embedding_length", gguf.u32(H)], ["llama.feed_forward_length", gguf.u32(16)], ["llama.attention.head_count", gguf.u32(1)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(1e-5)], ...tokenizerMetadata(data),
  ], [
    z("token_embd.weight", [V, H]), z("blk.0.attn_norm.weight", [H]), z("blk.0.attn_q.weight", [H, H]), z("blk.0.attn_k.weight", [H, H]),
    z("blk.0.attn_v.weight", [H, H]), z("blk.0.attn_output.weight", [H, H]), z("blk.0.ffn_norm.weight", [H]),
    z("blk.0.ffn_gate.weight", [16, H]), z("blk.0.ffn_up.weight", [16, H]), z("blk.0.ffn_down.weight", [H, 16]), z("output_norm.weight", [H]),
  ]);
}

const CASES: { name: string; data: () => GgufTokenizerData; model: string; parseSpecial: boolean }[] = [
  { name: "llama2", model: "llama", parseSpecial: false, data: () => sentencePieceToGgufData(readSentencePieceModel(`${TOK}/llama2/tokenizer.model`)) },
  {
    name: "llama3", model: "gpt2", parseSpecial: true,
    data: () => tokenizerJsonToGgufData(JSON.parse(fs.readFileSync(`${TOK}/llama3/tokenizer.json`, "utf8")), `${TOK}/llama3/tokenizer.json`),
  },
];

describe("tokenizers stored in GGUF", () => {
  for (const c of CASES) {
    it(`${c.name}: written, read back and rebuilt, ours and llama.cpp's reproduce all fixture vectors`, async () => {
      const file = path.join(tmp, `${c.name}.gguf`);
      writeTokenizerGguf(file, c.data());
      const g = GgufFile.open(file);
      const data = readGgufTokenizer(g)!;
      g.close();
      expect(data.model).toBe(c.model);
      const tok = tokenizerFromGguf(data, file);
      const vectors = JSON.parse(fs.readFileSync(`${TOK}/${c.name}/vectors.json`, "utf8")) as Vector[];
      const mismatches: string[] = [];
      for (const v of vectors) {
        const ids = tok.encode(v.text, { addSpecialTokens: false });
        const withBos = tok.encode(v.text);
        if (JSON.stringify(ids) !== JSON.stringify(v.ids) || JSON.stringify(withBos) !== JSON.stringify(v.ids_with_bos) || tok.decode(v.ids) !== v.decoded) {
          mismatches.push(v.text);
        }
      }
      expect(mismatches).toEqual([]);
      const model = await llama.loadModel({ modelPath: file });
      try {
        // llama.cpp's tokenizer on the same metadata (HF parses special-token text in Llama 3; so does llama.cpp when asked).
        const cpp = vectors.filter((v) => JSON.stringify(Array.from(model.tokenize(v.text, c.parseSpecial))) !== JSON.stringify(v.ids)).map((v) => v.text);
        expect(cpp).toEqual([]);
      } finally {
        await model.dispose();
      }
      expect(vectors.length).toBe(957);
    });
  }

  it("converter: Meta's Llama 3 tiktoken tokenizer.model → tokenizer.json with HF's vocab, merges and special tokens", () => {
    const got = tiktokenToTokenizerJson(`${TOK}/llama3/tokenizer.model`) as { model: { vocab: Record<string, number>; merges: string[][] }; added_tokens: { id: number; content: string; special: boolean }[] };
    const want = JSON.parse(fs.readFileSync(`${TOK}/llama3/tokenizer.json`, "utf8"));
    expect(got.model.vocab).toEqual(want.model.vocab);
    const wantMerges = (want.model.merges as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(" ") : m));
    expect(got.model.merges.map((m) => m.join(" "))).toEqual(wantMerges);
    expect(got.added_tokens.map((t) => [t.id, t.content, t.special])).toEqual(want.added_tokens.map((t: { id: number; content: string; special: boolean }) => [t.id, t.content, t.special]));
  });
});
