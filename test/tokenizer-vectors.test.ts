/**
 * Every fixture vector in test/fixtures/tokenizers/{llama2,llama3} (made by
 * sentencepiece / HF tokenizers / tiktoken, see that folder's README):
 * ids with and without BOS, token strings, decoded text, decode quirks.
 * A tokenizer.model follows sentencepiece; a tokenizer.json follows HF
 * tokenizers (`ids_hf_tokenizer_json`, `decoded_hf_tokenizer_json` where they differ).
 */
import * as fs from "node:fs";
import { describe, expect, it } from "vitest";
import { LlamaTokenizer, LlamaTokenizerFast } from "../lib/tokenizer/index.js";
import { parseTiktoken, tiktokenSpec, llama3SpecialTokenNames } from "../lib/tokenizer/tiktoken.js";
import type { MergeIds } from "../lib/tokenizer/hf-bpe.js";

const F = "test/fixtures/tokenizers";
const json = <T>(p: string): T => JSON.parse(fs.readFileSync(p, "utf8")) as T;

interface Vec2 { text: string; ids: number[]; ids_with_bos: number[]; decoded: string; decoded_with_bos: string; pieces: string[]; ids_hf_tokenizer_json?: number[] }
interface Vec3 { text: string; ids: number[]; ids_with_bos: number[]; decoded: string; decoded_with_bos: string; tokens: string[]; ids_specials_as_text?: number[] }
interface DecVec { ids: number[]; decoded: string; decoded_hf_tokenizer_json?: string; decoded_hf_tokenizer_json_skip_special?: string }

const v2 = json<Vec2[]>(`${F}/llama2/vectors.json`);
const d2 = json<DecVec[]>(`${F}/llama2/decode_vectors.json`);
const v3 = json<Vec3[]>(`${F}/llama3/vectors.json`);
const d3 = json<DecVec[]>(`${F}/llama3/decode_vectors.json`);

/** Compares all rows at once and reports the first few failures with their text. */
function expectAll<T>(rows: T[], got: (r: T) => unknown, want: (r: T) => unknown, label: (r: T) => unknown): void {
  const bad = rows.filter((r) => JSON.stringify(got(r)) !== JSON.stringify(want(r)));
  const show = bad.slice(0, 3).map((r) => ({ input: label(r), want: want(r), got: got(r) }));
  expect(show).toEqual([]);
  expect(rows.length).toBeGreaterThan(0);
}

describe("LLaMA 2 tokenizer.model (sentencepiece semantics)", () => {
  const tok = LlamaTokenizer.fromFile(`${F}/llama2/tokenizer.model`);
  it("has the fixture's 957 vectors", () => expect(v2.length).toBe(957));
  it("ids without BOS", () => expectAll(v2, (e) => tok.encode(e.text, { addSpecialTokens: false }), (e) => e.ids, (e) => e.text));
  it("ids with BOS", () => expectAll(v2, (e) => tok.encode(e.text), (e) => e.ids_with_bos, (e) => e.text));
  it("pieces", () => expectAll(v2, (e) => tok.convertIdsToTokens(e.ids), (e) => e.pieces, (e) => e.text));
  it("decode", () => expectAll(v2, (e) => tok.decode(e.ids), (e) => e.decoded, (e) => e.text));
  it("decode with BOS", () => expectAll(v2, (e) => tok.decode(e.ids_with_bos), (e) => e.decoded_with_bos, (e) => e.text));
  it("decode quirks (decode_vectors.json)", () => expectAll(d2, (e) => tok.decode(e.ids), (e) => e.decoded, (e) => e.ids));
  it("spells out the documented quirks", () => {
    expect(tok.decode([1, 15043, 3186])).toBe("Hello world"); // BOS skipped when finding the first piece
    expect(tok.decode([243, 162])).toBe("\ufffd\ufffd"); // one U+FFFD per invalid byte
    expect(tok.decode([35, 15043])).toBe("  Hello"); // a <0x20> byte token keeps its space
    expect(tok.encode("<s>", { addSpecialTokens: false })).toEqual([529, 29879, 29958]); // plain text
  });
});

describe("LLaMA 2 tokenizer.json (HF tokenizers semantics)", () => {
  const tok = LlamaTokenizerFast.fromFile(`${F}/llama2/tokenizer.json`);
  it("ids without BOS", () => expectAll(v2, (e) => tok.encode(e.text, { addSpecialTokens: false }), (e) => e.ids_hf_tokenizer_json ?? e.ids, (e) => e.text));
  it("ids with BOS", () => expectAll(v2, (e) => tok.encode(e.text), (e) => [1, ...(e.ids_hf_tokenizer_json ?? e.ids)], (e) => e.text));
  it("decode (texts without special-token strings)", () =>
    expectAll(v2.filter((e) => !e.ids_hf_tokenizer_json), (e) => tok.decode(e.ids), (e) => e.decoded, (e) => e.text));
  it("decode quirks", () => expectAll(d2, (e) => tok.decode(e.ids), (e) => e.decoded_hf_tokenizer_json ?? e.decoded, (e) => e.ids));
  it("decode quirks with skipSpecialTokens", () => {
    const rows = d2.filter((e) => e.decoded_hf_tokenizer_json_skip_special !== undefined);
    expect(rows.length).toBeGreaterThan(3);
    expectAll(rows, (e) => tok.decode(e.ids, { skipSpecialTokens: true }), (e) => e.decoded_hf_tokenizer_json_skip_special, (e) => e.ids);
  });
  it("the 6 special-token texts differ from sentencepiece as HF does", () => {
    expect(v2.filter((e) => e.ids_hf_tokenizer_json).length).toBe(6);
    expect(tok.encode("<s>", { addSpecialTokens: false })).toEqual([1]);
  });
});

describe("Llama 3 tokenizer.json (byte-level BPE)", () => {
  const tok = LlamaTokenizerFast.fromFile(`${F}/llama3/tokenizer.json`);
  it("has the fixture's 957 vectors", () => expect(v3.length).toBe(957));
  it("ids without BOS", () => expectAll(v3, (e) => tok.encode(e.text, { addSpecialTokens: false }), (e) => e.ids, (e) => e.text));
  it("ids with BOS", () => expectAll(v3, (e) => tok.encode(e.text), (e) => e.ids_with_bos, (e) => e.text));
  it("ids with special-token text kept as text (Meta's default)", () =>
    expectAll(v3, (e) => tok.encode(e.text, { addSpecialTokens: false, splitSpecialTokens: true }), (e) => e.ids_specials_as_text ?? e.ids, (e) => e.text));
  it("tokens", () => expectAll(v3, (e) => tok.convertIdsToTokens(e.ids), (e) => e.tokens, (e) => e.text));
  it("decode", () => expectAll(v3, (e) => tok.decode(e.ids), (e) => e.decoded, (e) => e.text));
  it("decode with BOS", () => expectAll(v3, (e) => tok.decode(e.ids_with_bos), (e) => e.decoded_with_bos, (e) => e.text));
  it("decode quirks", () => expectAll(d3, (e) => tok.decode(e.ids), (e) => e.decoded_hf_tokenizer_json ?? e.decoded, (e) => e.ids));
  it("U+0085 and U+FEFF follow Unicode White_Space, not JavaScript's \\s", () => {
    for (const t of ["a \x85b", "it\x85's", "a \ufeffb", "it\ufeff's"]) {
      const e = v3.find((x) => x.text === t);
      expect(e, t).toBeDefined();
      expect(tok.encode(t, { addSpecialTokens: false })).toEqual(e!.ids);
    }
  });
  it("special tokens have the Llama 3.1 names and ids", () => {
    const names = json<{ llama3_1: Record<string, number> }>(`${F}/llama3/special_tokens.json`).llama3_1;
    for (const [name, id] of Object.entries(names)) expect(tok.tokenToId(name)).toBe(id);
    expect(tok.bosTokenId).toBe(128000);
    expect(tok.eosTokenId).toBe(128001);
  });
});

describe("Llama 3 tiktoken tokenizer.model", () => {
  const tok = LlamaTokenizerFast.fromFile(`${F}/llama3/tokenizer.model`);
  it("gives the same ids as tokenizer.json on every vector", () => {
    expectAll(v3, (e) => tok.encode(e.text), (e) => e.ids_with_bos, (e) => e.text);
    expectAll(v3, (e) => tok.encode(e.text, { addSpecialTokens: false, splitSpecialTokens: true }), (e) => e.ids_specials_as_text ?? e.ids, (e) => e.text);
  });
  it("decodes every vector", () => expectAll(v3, (e) => tok.decode(e.ids_with_bos), (e) => e.decoded_with_bos, (e) => e.text));
  it("derives exactly tokenizer.json's 280147 merges, in order", () => {
    const spec = tiktokenSpec(parseTiktoken(fs.readFileSync(`${F}/llama3/tokenizer.model`), "tokenizer.model"), "tokenizer.model", llama3SpecialTokenNames("3.1"));
    const m = (spec.model as { merges: MergeIds }).merges;
    const ref = json<{ model: { vocab: Record<string, number>; merges: string[] } }>(`${F}/llama3/tokenizer.json`).model;
    expect(m.left.length).toBe(ref.merges.length);
    let firstBad = -1;
    for (let i = 0; i < ref.merges.length && firstBad < 0; i++) {
      const [a, b] = ref.merges[i]!.split(" ");
      if (ref.vocab[a!] !== m.left[i] || ref.vocab[b!] !== m.right[i] || ref.vocab[a! + b!] !== m.merged![i]) firstBad = i;
    }
    expect(firstBad).toBe(-1);
  });
  it("Llama 3.0 and 3.1 special-token names match special_tokens.json", () => {
    const st = json<Record<"llama3_0" | "llama3_1", Record<string, number>>>(`${F}/llama3/special_tokens.json`);
    for (const [version, key] of [["3.0", "llama3_0"], ["3.1", "llama3_1"]] as const) {
      const names = llama3SpecialTokenNames(version);
      expect(Object.fromEntries(names.map((n, i) => [n, 128000 + i]))).toEqual(st[key]);
    }
  });
});

describe("default model tokenizer (models/tiny-stories)", () => {
  const tok = LlamaTokenizer.fromFile("models/tiny-stories/tokenizer.model");
  const samples = json<{ hf_tokenizer_check: { mismatches: { text: string; hf: number[]; sentencepiece: number[] }[] } }>("models/tiny-stories/samples.json");
  it("follows sentencepiece where HF's slow tokenizer differs", () => {
    const mm = samples.hf_tokenizer_check.mismatches;
    expect(mm.length).toBeGreaterThan(0);
    for (const m of mm) {
      expect(tok.encode(m.text)).toEqual(m.sentencepiece);
      expect(tok.encode(m.text)).not.toEqual(m.hf);
    }
  });
  it("has the model's vocabulary and specials", () => {
    expect(tok.vocabSize).toBe(2048);
    expect([tok.unkTokenId, tok.bosTokenId, tok.eosTokenId]).toEqual([0, 1, 2]);
    expect(tok.decode(tok.encode("Once upon a time, there was a cat."))).toBe("Once upon a time, there was a cat.");
  });
});
