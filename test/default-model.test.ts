/**
 * The default model by name, from any working directory: `llama-ts generate`
 * without --model, and `fromPretrained("tiny-stories")` /
 * `AutoTokenizer.fromPretrained("tiny-stories")` through the package entry,
 * imported and required (notebook cells are CommonJS), run in a temporary folder outside the
 * checkout. Resolution order: an existing path first, then the package's
 * models/. Reference: HF transformers' float32 greedy sequence for the prompt
 * (test/fixtures/generate/hf_reference.json). Needs `node scripts/build.mjs`.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const ROOT = process.cwd();
const BIN = path.join(ROOT, "bin", "llama-ts.js");
const ref = JSON.parse(fs.readFileSync("test/fixtures/generate/hf_reference.json", "utf8")) as {
  stories_samples_greedy: { prompt: string; input_ids: number[]; hf_float32_sequence: number[] }[];
};
const once = ref.stories_samples_greedy.find((s) => s.prompt === "Once upon a time")!;
const NEW = 20;

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-default-model-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function node(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, args, { cwd, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A script that loads the model and tokenizer by `name` and prints the greedy ids for the prompt. */
const script = (load: string, name: string) => `
${load}
const tok = AutoTokenizer.fromPretrained(${JSON.stringify(name)});
const ids = tok.encode(${JSON.stringify(once.prompt)});
(async () => {
  const model = await LlamaForCausalLM.fromPretrained(${JSON.stringify(name)});
  const [seq] = await model.generate({ inputIds: [ids], maxNewTokens: ${NEW} });
  console.log(JSON.stringify({ vocab: model.config.vocab_size, seq }));
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

describe("the default model by name, outside the checkout", () => {
  it("`llama-ts generate --prompt` without --model generates what --model models/tiny-stories does (HF's greedy tokens)", () => {
    expect(path.relative(ROOT, tmp).startsWith("..")).toBe(true);
    const args = ["generate", "--prompt", once.prompt, "--max-new-tokens", String(NEW), "--json"];
    const outside = node([BIN, ...args], tmp);
    expect(outside.code, outside.err).toBe(0);
    const inside = node([BIN, ...args, "--model", "models/tiny-stories"], ROOT);
    expect(inside.code, inside.err).toBe(0);
    expect(outside.out).toBe(inside.out);
    const got = JSON.parse(outside.out) as { input_ids: number[]; output_ids: number[]; text: string };
    expect(got.input_ids).toEqual(once.input_ids);
    expect(got.output_ids).toEqual(once.hf_float32_sequence.slice(0, once.input_ids.length + NEW));
    expect(got.text.startsWith(once.prompt)).toBe(true);
    // The plain text mode too (streamed), the same story.
    const text = node([BIN, "generate", "--prompt", once.prompt, "--max-new-tokens", String(NEW)], tmp);
    expect(text.code, text.err).toBe(0);
    expect(text.out.trim()).toBe(got.text.trim());
  });

  for (const [build, load] of [
    ["CommonJS (require)", `const { LlamaForCausalLM, AutoTokenizer } = require(${JSON.stringify(path.join(ROOT, "dist/index.js"))});`],
    ["ESM (import)", `const { LlamaForCausalLM, AutoTokenizer } = await import(${JSON.stringify(`file://${path.join(ROOT, "dist/index.js")}`)});`],
  ] as const) {
    it(`${build}: fromPretrained("tiny-stories") and AutoTokenizer.fromPretrained("tiny-stories")`, () => {
      const file = path.join(tmp, build.startsWith("CommonJS") ? "load.cjs" : "load.mjs");
      fs.writeFileSync(file, script(load, "tiny-stories"));
      const r = node([file], tmp);
      expect(r.code, r.err).toBe(0);
      const { seq } = JSON.parse(r.out) as { seq: number[] };
      expect(seq).toEqual(once.hf_float32_sequence.slice(0, once.input_ids.length + NEW));
    });
  }

  it("an existing path wins over the package's model of the same name; an unknown name lists the package's models", () => {
    const dir = fs.mkdtempSync(path.join(tmp, "cwd-"));
    // A folder named tiny-stories in the working directory: the small test model (vocab 512), not the package's (2048).
    fs.cpSync(path.join(ROOT, "test/fixtures/hf/tiny-llama"), path.join(dir, "tiny-stories"), { recursive: true });
    const esm = `const { LlamaForCausalLM } = await import(${JSON.stringify(`file://${path.join(ROOT, "dist/index.js")}`)});`;
    const file = path.join(dir, "which.mjs");
    fs.writeFileSync(file, `${esm}
const local = await LlamaForCausalLM.fromPretrained("tiny-stories");
const shipped = await LlamaForCausalLM.fromPretrained(${JSON.stringify(path.join(ROOT, "models/tiny-stories"))});
let error = "";
try { await LlamaForCausalLM.fromPretrained("no-such-model"); } catch (e) { error = e.message; }
console.log(JSON.stringify({ local: local.config.vocab_size, shipped: shipped.config.vocab_size, error }));
`);
    const r = node([file], dir);
    expect(r.code, r.err).toBe(0);
    const got = JSON.parse(r.out) as { local: number; shipped: number; error: string };
    expect(got.local).toBe(512);
    expect(got.shipped).toBe(2048);
    expect(got.error).toBe("model folder not found: no-such-model (nor a model of the package: tiny-stories)");
    // The CLI names the flag.
    const cli = node([BIN, "generate", "--model", "no-such-model", "--prompt", "x"], dir);
    expect(cli.code).toBe(2);
    expect(cli.err.trim()).toBe("llama-ts generate: --model: no such file or folder: no-such-model; not a model of the package (tiny-stories)");
  });
});
