/**
 * Bad input gets clear errors, never a crash or a silent wrong answer:
 * truncated/corrupt sentencepiece models, tokenizer.json files of unsupported
 * kinds, bad tiktoken lines, out-of-vocabulary ids in decode, bad configs.
 * Lone UTF-16 surrogates in text are encoded as U+FFFD, without throwing.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, FormatError, InputError } from "../lib/errors.js";
import { AutoTokenizer, LlamaTokenizer, LlamaTokenizerFast, parseSentencePieceModel, parseTokenizerConfig } from "../lib/tokenizer/index.js";
import { TokenizerJson, type TokenizerJsonSpec } from "../lib/tokenizer/tokenizer-json.js";
import { parseTiktoken } from "../lib/tokenizer/tiktoken.js";

const MODEL = "test/fixtures/tokenizers/llama2/tokenizer.model";
const bytes = new Uint8Array(fs.readFileSync(MODEL));

/** A tiny valid byte-fallback BPE tokenizer.json, to mutate. */
function tinySpec(): TokenizerJsonSpec & { model: Record<string, unknown> } {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, a: 4, b: 5, "▁a": 6, ab: 7, "▁ab": 8 };
  return {
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
    added_tokens: [{ id: 1, content: "<s>", special: true }],
    model: { type: "BPE", vocab, merges: ["▁ a", "a b", "▁a b"], unk_token: "<unk>", fuse_unk: true, byte_fallback: false },
  };
}

describe("corrupt or truncated tokenizer.model", () => {
  it("every truncation is a FormatError naming the file", () => {
    const cuts = [1, 2, 5, 17, 100, 1000, 4096, bytes.length >> 2, bytes.length >> 1, bytes.length - 200, bytes.length - 1];
    for (const n of cuts) {
      expect(() => parseSentencePieceModel(bytes.subarray(0, n), "cut.model"), `cut at ${n}`).toThrow(FormatError);
      try {
        parseSentencePieceModel(bytes.subarray(0, n), "cut.model");
      } catch (e) {
        expect((e as Error).message).toMatch(/^cut\.model: /);
      }
    }
  });
  it("empty, text and random files are rejected with a reason", () => {
    expect(() => parseSentencePieceModel(new Uint8Array(0), "empty.model")).toThrow(/empty file/);
    expect(() => parseSentencePieceModel(new TextEncoder().encode("hello world, not protobuf\n"), "t.model")).toThrow(FormatError);
    const r = new Uint8Array(4096).map((_, i) => (i * 2654435761) >>> 24);
    expect(() => parseSentencePieceModel(r, "r.model")).toThrow(FormatError);
  });
  it("a length pointing past the end says so", () => {
    const b = Uint8Array.from([0x0a, 0x7f, 0x0a, 0x01, 0x61]); // pieces: length 127, 3 bytes present
    expect(() => parseSentencePieceModel(b, "x.model")).toThrow(/declares 127 bytes but only 3 remain/);
  });
  it("random byte corruption never escapes as anything but FormatError", () => {
    let seed = 12345;
    const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let parsed = 0;
    for (let k = 0; k < 150; k++) {
      const c = bytes.slice(0, 20000);
      for (let j = 0; j < 3; j++) c[Math.floor(next() * c.length)] = Math.floor(next() * 256);
      try {
        parseSentencePieceModel(c, "fuzz.model");
        parsed++;
      } catch (e) {
        expect(e).toBeInstanceOf(FormatError);
      }
    }
    expect(parsed).toBeLessThan(150);
  });
  it("a missing file is a FormatError naming it", () => {
    expect(() => LlamaTokenizer.fromFile("no/such/tokenizer.model")).toThrow(/no\/such\/tokenizer\.model: cannot read/);
    expect(() => AutoTokenizer.fromPretrained("no/such/dir")).toThrow(FormatError);
  });
});

describe("tokenizer.json of unsupported kinds", () => {
  it("the tiny spec itself works (so the failures below are meaningful)", () => {
    const t = new LlamaTokenizerFast(new TokenizerJson("tiny.json", tinySpec()));
    expect(t.encode("ab a", { addSpecialTokens: false })).toEqual([8, 6]);
    expect(t.decode([8, 6])).toBe("ab a");
  });
  it("unknown model types are named", () => {
    for (const type of ["WordPiece", "Unigram", "WordLevel", "Foo"]) {
      const s = tinySpec();
      s.model.type = type;
      expect(() => new TokenizerJson("m.json", s)).toThrow(new RegExp(`m\\.json: model\\.type is "${type}"; only "BPE"`));
    }
  });
  it("unsupported steps and broken merges are named", () => {
    const s1 = { ...tinySpec(), pre_tokenizer: { type: "BertPreTokenizer" } };
    expect(() => new TokenizerJson("p.json", s1)).toThrow(/unsupported pre-tokenizer type "BertPreTokenizer"/);
    const s2 = { ...tinySpec(), decoder: { type: "CTC" } };
    expect(() => new TokenizerJson("d.json", s2)).toThrow(/unsupported decoder type "CTC"/);
    const s3 = { ...tinySpec(), normalizer: { type: "Precompiled" } };
    expect(() => new TokenizerJson("n.json", s3)).toThrow(/unsupported normalizer type "Precompiled"/);
    const s4 = tinySpec();
    s4.model.merges = ["a zz"];
    expect(() => new TokenizerJson("g.json", s4)).toThrow(/merges\[0\] "a zz": token "zz" is not in the vocab/);
  });
  it("invalid JSON is a FormatError", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tok-"));
    const f = path.join(dir, "tokenizer.json");
    fs.writeFileSync(f, "{ not json");
    expect(() => LlamaTokenizerFast.fromFile(f)).toThrow(/tokenizer\.json: not valid JSON/);
    fs.rmSync(dir, { recursive: true });
  });
  it("bad tiktoken lines name the line", () => {
    expect(() => parseTiktoken(new TextEncoder().encode("IQ== 0\nnot-base64! 1\n"), "t.model")).toThrow(/t\.model: line 2: expected "base64 rank"/);
    expect(() => parseTiktoken(new TextEncoder().encode("IQ== 0\nIg== 0\n"), "t.model")).toThrow(/rank 0 appears twice/);
  });
  it("bad tokenizer_config fields are ConfigErrors naming the field", () => {
    expect(() => parseTokenizerConfig({ padding_side: "middle" }, "tokenizer_config.json")).toThrow(ConfigError);
    expect(() => parseTokenizerConfig({ add_bos_token: "yes" }, "tokenizer_config.json")).toThrow(/"add_bos_token" must be true or false/);
  });
});

describe("decode rejects ids outside the vocabulary", () => {
  const tok = LlamaTokenizer.fromFile(MODEL);
  it("names the id and its position", () => {
    expect(() => tok.decode([15043, 32000])).toThrow(InputError);
    expect(() => tok.decode([15043, 32000])).toThrow(/token id 32000 at position 1 is outside the vocabulary .*0\.\.31999/);
    expect(() => tok.decode([-1])).toThrow(/token id -1 at position 0/);
    expect(() => tok.decode([1.5])).toThrow(/token id 1\.5/);
    expect(() => tok.convertIdsToTokens([99999])).toThrow(InputError);
  });
  it("non-string text is an InputError", () => {
    expect(() => tok.encode(undefined as unknown as string)).toThrow(/encode: text must be a string/);
  });
});

describe("lone surrogates", () => {
  const sp = LlamaTokenizer.fromFile(MODEL);
  const fast = new LlamaTokenizerFast(new TokenizerJson("tiny.json", tinySpec()));
  const cases = ["\ud800", "a\udc00b", "x\ud83d", "\udfff\ud800", "ok 🦙 \ud83e"];
  it("encode as U+FFFD without throwing (sentencepiece and tokenizer.json)", () => {
    for (const t of cases) {
      const fixed = t.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
      expect(sp.encode(t)).toEqual(sp.encode(fixed));
      expect(() => fast.encode(t)).not.toThrow();
      expect(sp.decode(sp.encode(t))).toBe(fixed);
    }
  });
});
