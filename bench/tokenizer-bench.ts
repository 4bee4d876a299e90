/**
 * Tokenizer benchmark: tokens/s encoding 1 MB of English and 1 MB of
 * mixed-script text (both generated deterministically here, no downloads),
 * for our tokenizers next to @sctg/sentencepiece-js (sentencepiece compiled to
 * WASM) and @huggingface/tokenizers (JS) on the same files, in one run. Also
 * load times, and whether each peer's ids agree with ours.
 *
 * "cold" = a freshly loaded tokenizer's first encode (our per-word caches
 * empty); "warm" = the median of the next runs.
 *
 * Run: node --import tsx bench/tokenizer-bench.ts [--mb 1] [--repeats 3]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { SentencePieceProcessor } from "@sctg/sentencepiece-js";
import { LlamaTokenizer, LlamaTokenizerFast } from "../lib/tokenizer/index.js";
import { mulberry32 } from "../lib/mulberry32.js";

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const MB = Number(flag("mb", "1"));
const REPEATS = Number(flag("repeats", "3"));
const F = "test/fixtures/tokenizers";

/** mulberry32: the same seeded corpus on every run. */
const rng = mulberry32;

const ENGLISH = (
  "the of and to a in that is was he for it with as his on be at by i this had not are but from or have an they which one you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three states himself few house use during without again place around however home small found mrs thought went say part once general high upon school every don't does got united left number course war until always away something fact though water less public put think almost hand enough far took head yet government system better set told nothing night end why called didn't eyes find going look asked later knew point next city business give group toward young let room president side social present given several order national possible rather second face per among form important often things looked early white case john become large big need four within felt along children saw best church ever least power development light thing seemed family interest want members mind country area others done turned although open god service problem certain kind different thus began door help means sense whole matter perhaps itself york it's times law human line above name example action company hands local show whether five history gave today either act feet across taken past quite anyone having seen death experience body word half really week field car words already themselves i'm information tell together college shall money period held keep sure probably free seems political real behind cannot"
).split(" ");

function englishText(bytes: number, r: () => number): string {
  const parts: string[] = [];
  let n = 0;
  let sentence = 0;
  while (n < bytes) {
    let w = ENGLISH[Math.floor(r() * ENGLISH.length)]!;
    if (sentence === 0) w = w[0]!.toUpperCase() + w.slice(1);
    sentence++;
    let sep = " ";
    const k = r();
    if (sentence > 6 && k < 0.12) {
      sep = r() < 0.85 ? ". " : r() < 0.5 ? "? " : "! ";
      if (r() < 0.15) sep = ".\n\n";
      sentence = 0;
    } else if (k < 0.05) sep = ", ";
    else if (k < 0.06) w = `"${w}"`;
    else if (k < 0.07) w = String(Math.floor(r() * 10000));
    parts.push(w + sep);
    n += w.length + sep.length;
  }
  return parts.join("").slice(0, bytes);
}

const MIXED = [
  "东京是日本的首都，人口众多。", "Москва — столица России.", "القاهرة هي عاصمة مصر.", "दिल्ली भारत की राजधानी है।", "서울은 한국의 수도입니다.",
  "Ελληνικά γράμματα και λέξεις.", "ภาษาไทยไม่มีช่องว่าง", "Café naïve façade — über Straße.", "🦙🚀👍🏽 emoji 👨‍👩‍👧 🇯🇵", "if (x != null) { return x * 2; }",
  "12,345.67 + 3.14e-10", "tab\tseparated\tvalues\n", "    indented code\n", "日本語のテキスト、カタカナとひらがな。", "עברית מימין לשמאל",
];

function mixedText(bytes: number, r: () => number): string {
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const s = r() < 0.3 ? englishText(60 + Math.floor(r() * 100), r) : MIXED[Math.floor(r() * MIXED.length)]!;
    const sep = r() < 0.1 ? "\n" : " ";
    parts.push(s + sep);
    n += Buffer.byteLength(s + sep);
  }
  let t = parts.join("");
  while (Buffer.byteLength(t) > bytes) t = t.slice(0, t.length - 1 - (t.length > 1 && /[\udc00-\udfff]/.test(t[t.length - 1]!) ? 1 : 0));
  return t;
}

const r = rng(42);
const texts: [string, string][] = [
  [`${MB} MB English`, englishText(MB * 1_000_000, r)],
  [`${MB} MB mixed-script`, mixedText(MB * 1_000_000, r)],
];

interface Impl {
  name: string;
  file: string;
  load: () => Promise<(text: string) => ArrayLike<number>>;
  /** Our implementation this one is compared with for agreement. */
  sameAs?: string;
}

const IMPLS: Impl[] = [
  { name: "llama-ts LlamaTokenizer", file: "llama2/tokenizer.model", load: async () => { const t = LlamaTokenizer.fromFile(`${F}/llama2/tokenizer.model`); return (s) => t.encode(s, { addSpecialTokens: false }); } },
  {
    name: "@sctg/sentencepiece-js (WASM)", file: "llama2/tokenizer.model", sameAs: "llama-ts LlamaTokenizer",
    load: async () => {
      const sp = new SentencePieceProcessor();
      await sp.loadFromB64StringModel(fs.readFileSync(`${F}/llama2/tokenizer.model`).toString("base64"));
      return (s) => sp.encodeIds(s);
    },
  },
  { name: "llama-ts LlamaTokenizerFast", file: "llama2/tokenizer.json", load: async () => { const t = LlamaTokenizerFast.fromFile(`${F}/llama2/tokenizer.json`); return (s) => t.encode(s, { addSpecialTokens: false }); } },
  {
    name: "@huggingface/tokenizers (JS)", file: "llama2/tokenizer.json", sameAs: "llama-ts LlamaTokenizerFast",
    load: async () => {
      const t = new HfTokenizer(JSON.parse(fs.readFileSync(`${F}/llama2/tokenizer.json`, "utf8")), JSON.parse(fs.readFileSync(`${F}/llama2/tokenizer_config.json`, "utf8")));
      return (s) => t.encode(s, { add_special_tokens: false }).ids;
    },
  },
  { name: "llama-ts LlamaTokenizerFast", file: "llama3/tokenizer.json", load: async () => { const t = LlamaTokenizerFast.fromFile(`${F}/llama3/tokenizer.json`); return (s) => t.encode(s, { addSpecialTokens: false }); } },
  { name: "llama-ts LlamaTokenizerFast", file: "llama3/tokenizer.model", load: async () => { const t = LlamaTokenizerFast.fromFile(`${F}/llama3/tokenizer.model`); return (s) => t.encode(s, { addSpecialTokens: false }); } },
  {
    name: "@huggingface/tokenizers (JS)", file: "llama3/tokenizer.json", sameAs: "llama-ts LlamaTokenizerFast",
    load: async () => {
      const t = new HfTokenizer(JSON.parse(fs.readFileSync(`${F}/llama3/tokenizer.json`, "utf8")), JSON.parse(fs.readFileSync(`${F}/llama3/tokenizer_config.json`, "utf8")));
      return (s) => t.encode(s, { add_special_tokens: false }).ids;
    },
  },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`);

console.log(`# tokenizer bench: node --import tsx bench/tokenizer-bench.ts ${process.argv.slice(2).join(" ")}`);
console.log(`machine: ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}, node ${process.version}, ${os.platform()} ${os.release()}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
console.log(`texts: ${texts.map(([n, t]) => `${n} (${Buffer.byteLength(t)} bytes, ${t.length} UTF-16 units)`).join("; ")}`);
console.log("");
console.log("| implementation | file | load ms | text | tokens | cold tok/s | warm tok/s | ids agree with llama-ts |");
console.log("| --- | --- | ---: | --- | ---: | ---: | ---: | --- |");

const ours = new Map<string, ArrayLike<number>>();
for (const impl of IMPLS) {
  const t0 = performance.now();
  const encode = await impl.load();
  const loadMs = performance.now() - t0;
  for (const [label, text] of texts) {
    let t = performance.now();
    const ids = encode(text);
    const cold = performance.now() - t;
    const warm: number[] = [];
    for (let k = 0; k < REPEATS; k++) {
      t = performance.now();
      encode(text);
      warm.push(performance.now() - t);
    }
    const key = `${impl.file}|${label}`;
    let agree = "–";
    if (impl.sameAs) {
      const ref = ours.get(key);
      if (ref) {
        let same = ref.length === ids.length;
        for (let i = 0; same && i < ids.length; i++) same = ref[i] === ids[i];
        agree = same ? "yes" : `NO (${ids.length} vs ${ref.length} ids)`;
      }
    } else ours.set(key, ids);
    console.log(`| ${impl.name} | ${impl.file} | ${loadMs.toFixed(0)} | ${label} | ${ids.length} | ${fmt(ids.length / (cold / 1000))} | ${fmt(ids.length / (median(warm) / 1000))} | ${agree} |`);
  }
}
