/**
 * The HF-style API on top of the exact encoders: batch call with padding and
 * truncation, the pad policy, the v4 special-token API, save_vocabulary,
 * AutoTokenizer folder loading and its cache, chat templates, inspection
 * data and its HTML views. Expected values are written out by hand from HF
 * transformers' documented semantics.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { AutoTokenizer, inspectTokens, LlamaTokenizer, LlamaTokenizerFast } from "../lib/tokenizer/index.js";
import { tokenCompareHtml, tokenSpansHtml, tokenTableHtml, tokenSpans } from "../lib/viz/tokens.js";

const F = "test/fixtures/tokenizers";
const sp = LlamaTokenizer.fromFile(`${F}/llama2/tokenizer.model`);
const HELLO = [15043, 3186]; // "Hello world"
/** Llama 3 files without their folder's config, through AutoTokenizer's per-process cache (one parse per file). */
const llama3 = (file: "tokenizer.json" | "tokenizer.model") => AutoTokenizer.fromPretrained(`${F}/llama3/${file}`, { config: {} }) as LlamaTokenizerFast;

describe("call(): padding, truncation, attention mask", () => {
  it("pads to the longest on the left by default (LlamaTokenizer), with eos as pad and a mask", () => {
    const out = sp.call(["Hello world", "Hello"], { padding: true });
    expect(sp.padTokenSource).toBe("eos");
    expect(out.inputIds).toEqual([[1, ...HELLO], [2, 1, 15043]]);
    expect(out.attentionMask).toEqual([[1, 1, 1], [0, 1, 1]]);
  });
  it("right padding, max_length padding, a configured pad id, no mask", () => {
    const right = sp.call(["Hello world", "Hello"], { padding: "longest", paddingSide: "right" });
    expect(right.inputIds[1]).toEqual([1, 15043, 2]);
    const tok = LlamaTokenizer.fromFile(`${F}/llama2/tokenizer.model`, { padTokenId: 0 });
    const ml = tok.call("Hello", { padding: "max_length", maxLength: 5, returnAttentionMask: false });
    expect(ml).toEqual({ inputIds: [[0, 0, 0, 1, 15043]] });
    expect(tok.padTokenSource).toBe("option");
  });
  it("truncates so that the sequence with BOS fits maxLength, on either side", () => {
    const ids = sp.encode("one two three four five", { addSpecialTokens: false });
    expect(ids.length).toBe(5);
    expect(sp.call("one two three four five", { truncation: true, maxLength: 3 }).inputIds).toEqual([[1, ...ids.slice(0, 2)]]);
    expect(sp.call("one two three four five", { truncation: true, maxLength: 3, truncationSide: "left" }).inputIds).toEqual([[1, ...ids.slice(3)]]);
    expect(sp.call("one two three four five", { maxLength: 3 }).inputIds[0]!.length).toBe(6); // no truncation unless asked
  });
  it("padToMultipleOf and no special tokens", () => {
    const out = sp.call(["Hello world"], { padding: true, padToMultipleOf: 4, addSpecialTokens: false, paddingSide: "right" });
    expect(out.inputIds).toEqual([[...HELLO, 2, 2]]);
    expect(out.attentionMask).toEqual([[1, 1, 0, 0]]);
  });
  it("batchDecode undoes call() when skipping specials", () => {
    const out = sp.call(["Hello world", "Hi"], { padding: true });
    expect(sp.batchDecode(out.inputIds, { skipSpecialTokens: true })).toEqual(["Hello world", "Hi"]);
  });
});

describe("HF v4 special-token API", () => {
  const a = [100, 101];
  const b = [200];
  it("build_inputs_with_special_tokens follows add_bos_token/add_eos_token", () => {
    const t = LlamaTokenizer.fromFile(`${F}/llama2/tokenizer.model`);
    expect(t.buildInputsWithSpecialTokens(a)).toEqual([1, 100, 101]);
    expect(t.buildInputsWithSpecialTokens(a, b)).toEqual([1, 100, 101, 1, 200]);
    t.addEosToken = true;
    expect(t.buildInputsWithSpecialTokens(a, b)).toEqual([1, 100, 101, 2, 1, 200, 2]);
    expect(t.encode("Hello world")).toEqual([1, ...HELLO, 2]);
    t.addBosToken = false;
    expect(t.buildInputsWithSpecialTokens(a)).toEqual([100, 101, 2]);
  });
  it("get_special_tokens_mask and create_token_type_ids_from_sequences", () => {
    expect(sp.getSpecialTokensMask(a)).toEqual([1, 0, 0]);
    expect(sp.getSpecialTokensMask(a, b)).toEqual([1, 0, 0, 1, 0]);
    expect(sp.getSpecialTokensMask([1, 100, 2, 0], undefined, true)).toEqual([1, 0, 1, 1]);
    expect(sp.createTokenTypeIdsFromSequences(a)).toEqual([0, 0, 0]);
    expect(sp.createTokenTypeIdsFromSequences(a, b)).toEqual([0, 0, 0, 1, 1]);
    expect(sp.numSpecialTokensToAdd()).toBe(1);
    expect(sp.numSpecialTokensToAdd(true)).toBe(2);
  });
  it("save_vocabulary writes a byte-identical tokenizer.model and returns its path", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tok-save-"));
    const p1 = sp.saveVocabulary(dir);
    const p2 = sp.saveVocabulary(dir, "mine");
    expect(p1).toBe(path.join(dir, "tokenizer.model"));
    expect(p2).toBe(path.join(dir, "mine-tokenizer.model"));
    const orig = fs.readFileSync(`${F}/llama2/tokenizer.model`);
    expect(fs.readFileSync(p1).equals(orig)).toBe(true);
    expect(fs.readFileSync(p2).equals(orig)).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(["mine-tokenizer.model", "tokenizer.model"]);
    fs.rmSync(dir, { recursive: true });
  });
  it("token/id conversion and decode with skipSpecialTokens", () => {
    expect(sp.convertIdsToTokens([1, 15043, 13])).toEqual(["<s>", "▁Hello", "<0x0A>"]);
    expect(sp.convertTokensToIds(["▁Hello", "nope-not-a-piece"])).toEqual([15043, 0]);
    expect(sp.convertTokensToString(["▁Hello", "▁world", "<0x21>"])).toBe("Hello world!");
    expect(sp.decode([1, 0, 15043, 2], { skipSpecialTokens: true })).toBe("Hello");
    expect(sp.tokenize("Hello world")).toEqual(["▁Hello", "▁world"]);
    expect(sp.vocabSize).toBe(32000);
    expect([sp.bosTokenId, sp.eosTokenId, sp.unkTokenId, sp.padTokenId]).toEqual([1, 2, 0, 2]);
  });
  it("splitSpecialTokens: false recognises <s> in a tokenizer.model, as HF's slow tokenizer does", () => {
    expect(sp.encode("<s>Hi", { addSpecialTokens: false })).toEqual([529, 29879, 29958, 18567]); // "Hi" mid-word
    expect(sp.encode("<s>Hi", { addSpecialTokens: false, splitSpecialTokens: false })).toEqual([1, 6324]);
  });
});

describe("AutoTokenizer", () => {
  it("picks the class a folder calls for and applies its config", () => {
    const tiny = AutoTokenizer.fromPretrained("models/tiny-stories");
    expect(tiny).toBeInstanceOf(LlamaTokenizer);
    expect(tiny.modelMaxLength).toBe(512);
    const l2 = AutoTokenizer.fromPretrained(`${F}/llama2`);
    expect(l2).toBeInstanceOf(LlamaTokenizerFast); // tokenizer.json preferred, like transformers
    expect(AutoTokenizer.fromPretrained(`${F}/llama2`, { useFast: false })).toBeInstanceOf(LlamaTokenizer);
    const l3 = AutoTokenizer.fromPretrained(`${F}/llama3`);
    expect(l3.paddingSide).toBe("right"); // PreTrainedTokenizerFast
    expect(l3.cleanUpTokenizationSpaces).toBe(true);
    expect(l3.decode(l3.encode("Hello , world .", { addSpecialTokens: false }))).toBe("Hello, world."); // transformers' clean-up
    expect(l3.decode(l3.encode("Hello , world ."), { cleanUpTokenizationSpaces: false, skipSpecialTokens: true })).toBe("Hello , world .");
  });
  it("caches parsed vocabularies per process but returns independent tokenizers", () => {
    const a = AutoTokenizer.fromPretrained(`${F}/llama3/tokenizer.json`) as LlamaTokenizerFast;
    const b = AutoTokenizer.fromPretrained(`${F}/llama3/tokenizer.json`) as LlamaTokenizerFast;
    expect(a).not.toBe(b);
    expect(a.core).toBe(b.core);
    a.padTokenId = 5;
    expect(b.padTokenId).toBe(128001);
  });
  it("loads a single file of each format", () => {
    expect(llama3("tokenizer.model").encode("Hello world")).toEqual([128000, 9906, 1917]);
    expect(AutoTokenizer.fromPretrained(`${F}/llama2/tokenizer.model`).encode("Hello world")).toEqual([1, ...HELLO]);
  });
});

describe("chat templates (rendered by @huggingface/jinja)", () => {
  const LLAMA3 =
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
  const msgs = [{ role: "system", content: "Be brief." }, { role: "user", content: " Hi! " }];
  it("renders with the special tokens and add_generation_prompt", () => {
    const l3 = llama3("tokenizer.json");
    const text = l3.applyChatTemplate(msgs, { chatTemplate: LLAMA3, addGenerationPrompt: true, tokenize: false });
    expect(text).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    const ids = l3.applyChatTemplate(msgs, { chatTemplate: LLAMA3, addGenerationPrompt: true });
    expect(ids.slice(0, 2)).toEqual([128000, 128006]);
    expect(ids.filter((x) => x === 128009).length).toBe(2);
    expect(l3.decode(ids)).toBe(text);
  });
  it("a tokenizer.model tokenizes the template's <s> as BOS and uses tokenizer_config's template", () => {
    const cfgTemplate = "{% for m in messages %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}";
    const t = LlamaTokenizer.fromFile(`${F}/llama2/tokenizer.model`, { config: { chatTemplate: cfgTemplate, bosToken: "<s>", eosToken: "</s>" } });
    const ids = t.applyChatTemplate([{ role: "user", content: "Hello" }]);
    expect(ids[0]).toBe(1);
    expect(t.decode(ids)).toBe("[INST] Hello [/INST]");
  });
  it("errors clearly without a template and on raise_exception", () => {
    expect(() => sp.applyChatTemplate(msgs)).toThrow(/has no chat_template/);
    expect(() => sp.applyChatTemplate(msgs, { chatTemplate: "{{ raise_exception('roles must alternate') }}" })).toThrow(/chat template failed to render .*roles must alternate/);
  });
});

describe("inspection data and HTML views", () => {
  it("gives ids, tokens, byte spans and flags (sentencepiece, with the dummy prefix and byte fallback)", () => {
    const insp = inspectTokens(sp, "Hi 🦙\n");
    expect(insp.ids).toEqual(sp.encode("Hi 🦙\n"));
    const rows = insp.rows.map((r) => [r.id, r.token, r.start, r.end, r.isSpecial, r.isByte, r.addedByTemplate]);
    expect(rows).toEqual([
      [1, "<s>", 0, 0, true, false, true],
      [6324, "▁Hi", 0, 2, false, false, false],
      [29871, "▁", 2, 3, false, false, false],
      [243, "<0xF0>", 3, 4, false, true, false],
      [162, "<0x9F>", 4, 5, false, true, false],
      [169, "<0xA6>", 5, 6, false, true, false],
      [156, "<0x99>", 6, 7, false, true, false],
      [13, "<0x0A>", 7, 8, false, true, false],
    ]);
    expect(insp.byteLength).toBe(8);
    expect(insp.rows[1]!.text).toBe(" Hi");
    expect(insp.rows[7]!.charStart).toBe(5);
  });
  it("covers the input exactly for byte-level Llama 3 with special tokens in the text", () => {
    const l3 = llama3("tokenizer.json");
    const text = "Hi<|eot_id|> naïve 🦙";
    const insp = inspectTokens(l3, text);
    const spans = insp.rows.filter((r) => !r.addedByTemplate).map((r) => [r.start, r.end]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBe(spans[i - 1]![1]);
    expect(spans[0]![0]).toBe(0);
    expect(spans[spans.length - 1]![1]).toBe(insp.byteLength);
    const eot = insp.rows.find((r) => r.id === 128009)!;
    expect([eot.isSpecial, eot.charStart, eot.charEnd]).toEqual([true, 2, 12]);
  });
  it("builds escaped, self-contained HTML with hover titles and visible whitespace", () => {
    const insp = inspectTokens(sp, "<b>x</b>\t y\n");
    const html = tokenSpansHtml(insp);
    expect(html).not.toContain("<b>");
    expect(html).toContain("&lt;</span>"); // the "▁<" token, escaped
    expect(html).toMatch(/title="#1 id \d+ &quot;▁&lt;/);
    expect(html).toContain("→"); // tab
    expect(html).toContain("↵"); // newline
    expect(html).not.toMatch(/<script|https?:/);
    expect(tokenTableHtml(insp).match(/<tr>/g)!.length).toBe(insp.rows.length + 1);
    expect(tokenSpans(insp)._repr_mimebundle_()["text/html"]).toBe(html);
  });
  it("compares two tokenizers on the same text", () => {
    const text = "Tokenizers differ: 12345 🦙";
    const l3 = llama3("tokenizer.model");
    const html = tokenCompareHtml([inspectTokens(sp, text), inspectTokens(l3, text)], ["LLaMA 2", "Llama 3"]);
    expect(html).toContain(`LLaMA 2 — ${sp.encode(text).length} tokens`);
    expect(html).toContain(`Llama 3 — ${l3.encode(text).length} tokens`);
  });
});
