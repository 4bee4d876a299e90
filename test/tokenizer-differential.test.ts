/**
 * Randomized differential test against an independent implementation:
 * Debian's python3-sentencepiece (the C++ library) on seeded random Unicode
 * strings (whitespace runs, emoji and ZWJ sequences, CJK, combining marks,
 * digits of many scripts, code, special-token look-alikes, random code points
 * from all planes), for the LLaMA 2 and the default model's tokenizer.model,
 * and an NFKC model (precompiled charsmap, remove_extra_whitespaces; see
 * test/fixtures/tokenizer-extra/README.md).
 * Also decodes random id sequences (byte tokens, controls, unk, ▁ pieces).
 * One python process answers the whole batch. Change the seed with
 * LLAMA_TS_FUZZ_SEED to explore; every run must have 0 mismatches.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { LlamaTokenizer } from "../lib/tokenizer/index.js";
import { mulberry32 } from "../lib/mulberry32.js";

const MODELS = ["test/fixtures/tokenizers/llama2/tokenizer.model", "models/tiny-stories/tokenizer.model", "test/fixtures/tokenizer-extra/nfkc-bpe.model"];
const N_TEXTS = 2500;
const N_DECODE = 1000;
const SEED = Number(process.env.LLAMA_TS_FUZZ_SEED ?? 20240611);

/** mulberry32: a small seeded PRNG, so every run tests the same strings unless the seed changes. */
const rng = mulberry32;

const WHITESPACE = [" ", "  ", "    ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2009", "\u200b", "\u0085", "\ufeff", "\u2028", "\v", "\f"];
const EMOJI = ["🦙", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🏳️‍🌈", "😀", "🤖", "✨", "🧑‍💻", "#️⃣"];
const WORDS = ["the", "Hello", "world", "tokenizer", "LLaMA", "don't", "it's", "naïve", "café", "Straße", "über", "ñandú", "grabbed", "ΑΒΓ", "Привет", "مرحبا", "שלום", "नमस्ते", "こんにちは", "你好世界", "안녕하세요", "ภาษาไทย", "ქართული"];
const CODE = ["def f(x):\n    return x**2", "for (let i = 0; i < n; i++) {", "<div class=\"a\">", "SELECT * FROM t;", "a->b", "x != y && z", "#include <stdio.h>", "```js\nconsole.log(1)\n```"];
const SPECIAL = ["<s>", "</s>", "<unk>", "<0x41>", "▁", "▁▁", "<|begin_of_text|>", "[INST]", "<<SYS>>", "\ufffd", "\u0000"];
const DIGITS = ["0", "12345", "3.14159", "1,000,000", "٣٤٥", "१२३", "１２３", "Ⅻ", "½", "²"];
const COMBINING = ["\u0301", "\u0308", "\u0327", "\u20dd", "\u0332", "\u093f", "\u0e31"];
/** Ranges for random code points (no surrogates: Python cannot encode them). */
const RANGES: [number, number][] = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0xdff], [0x1100, 0x11ff], [0x2000, 0x2bff], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xf8ff], [0xfb00, 0xfffd], [0x10000, 0x1ffff], [0x20000, 0x2a6df], [0xe0000, 0xe007f], [0x1, 0x1f]];

function randomText(r: () => number): string {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const parts: string[] = [];
  const n = 1 + Math.floor(r() * 12);
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.2) parts.push(pick(WORDS));
    else if (k < 0.35) parts.push(pick(WHITESPACE).repeat(1 + Math.floor(r() * 3)));
    else if (k < 0.45) parts.push(pick(EMOJI));
    else if (k < 0.52) parts.push(pick(CODE));
    else if (k < 0.6) parts.push(pick(SPECIAL));
    else if (k < 0.68) parts.push(pick(DIGITS));
    else if (k < 0.75) parts.push(pick(WORDS) + pick(COMBINING));
    else {
      const [lo, hi] = pick(RANGES);
      const len = 1 + Math.floor(r() * 6);
      for (let j = 0; j < len; j++) parts.push(String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1))));
    }
    if (r() < 0.5) parts.push(" ");
  }
  let s = parts.join("");
  if (r() < 0.1) s = " ".repeat(1 + Math.floor(r() * 4)) + s;
  if (r() < 0.1) s += " ".repeat(1 + Math.floor(r() * 4));
  return s;
}

function randomIds(r: () => number, vocab: number): number[] {
  const len = Math.floor(r() * 12);
  const ids: number[] = [];
  for (let i = 0; i < len; i++) {
    const k = r();
    // Weighted toward the tricky ids: controls/unk (0-2), byte tokens (3-258), then anything.
    ids.push(k < 0.15 ? Math.floor(r() * 3) : k < 0.55 ? 3 + Math.floor(r() * 256) : Math.floor(r() * vocab));
  }
  return ids;
}

/** The first python3 that can import sentencepiece (Debian's is /usr/bin/python3). */
function findPython(): string {
  const candidates = [process.env.LLAMA_TS_PYTHON, "/usr/bin/python3", "python3"].filter((x): x is string => !!x);
  for (const py of candidates) {
    const r = spawnSync(py, ["-c", "import sentencepiece"], { encoding: "utf8" });
    if (r.status === 0) return py;
  }
  throw new Error(`no python3 with sentencepiece found (tried ${candidates.join(", ")}); install python3-sentencepiece (scripts/setup-system.sh) or set LLAMA_TS_PYTHON`);
}

describe("differential test vs python3-sentencepiece", () => {
  const r = rng(SEED);
  const texts = Array.from({ length: N_TEXTS }, () => randomText(r));
  const toks = MODELS.map((m) => LlamaTokenizer.fromFile(m));
  const decodeLists = toks.map((t) => Array.from({ length: N_DECODE }, () => randomIds(r, t.vocabSize)));
  const py = findPython();
  const res = spawnSync(py, ["test/tokenizer-spm-oracle.py"], {
    input: JSON.stringify({ texts, models: MODELS.map((path, i) => ({ path, decode: decodeLists[i] })) }),
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  if (res.status !== 0) throw new Error(`oracle failed: ${res.stderr}`);
  const oracle = JSON.parse(res.stdout) as { version: string; models: { ids: number[][]; roundtrip: string[]; decoded: string[] }[] };

  it(`generated ${N_TEXTS} distinct-enough strings (seed ${SEED})`, () => {
    expect(new Set(texts).size).toBeGreaterThan(N_TEXTS * 0.95);
    expect(texts.some((t) => /\p{Script=Han}/u.test(t)) && texts.some((t) => /\p{Extended_Pictographic}/u.test(t)) && texts.some((t) => /\p{M}/u.test(t))).toBe(true);
  });

  MODELS.forEach((model, m) => {
    it(`${model}: encode matches sentencepiece ${oracle.version} on every string`, () => {
      const mismatches = texts
        .map((t, i) => ({ text: t, want: oracle.models[m]!.ids[i]!, got: toks[m]!.encode(t, { addSpecialTokens: false }) }))
        .filter((x) => JSON.stringify(x.want) !== JSON.stringify(x.got));
      expect(mismatches.slice(0, 3)).toEqual([]);
    });
    it(`${model}: decode matches sentencepiece on ${N_DECODE} random id lists`, () => {
      const mismatches = decodeLists[m]!
        .map((ids, i) => ({ ids, want: oracle.models[m]!.decoded[i], got: toks[m]!.decode(ids) }))
        .filter((x) => x.want !== x.got);
      expect(mismatches.slice(0, 3)).toEqual([]);
    });
    it(`${model}: decode(encode(text)) matches sentencepiece on every string`, () => {
      const mismatches = texts
        .map((t, i) => ({ text: t, want: oracle.models[m]!.roundtrip[i], got: toks[m]!.decode(toks[m]!.encode(t)) }))
        .filter((x) => x.want !== x.got);
      expect(mismatches.slice(0, 3)).toEqual([]);
    });
  });
});
