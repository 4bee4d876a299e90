/**
 * `llama-ts generate` through the built CLI (run `node scripts/build.mjs`
 * first; `npm test` does): the --json contract, --prompt through the folder's
 * tokenizer, text: null without one, sampling flags, and bad input as one
 * readable line with a non-zero exit.
 */
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";

function cli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync("node", ["bin/llama-ts.js", "generate", ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const TINY = "test/fixtures/hf/tiny-llama";
const golden = JSON.parse(fs.readFileSync(`${TINY}/golden.json`, "utf8")).generate[0] as {
  prompt: number[];
  greedy: number[];
  "greedy_repetition_penalty_1.3": number[];
};
const n = golden.greedy.length - golden.prompt.length;

describe("llama-ts generate", () => {
  it("--input-ids --json: HF's greedy tokens, text null (no tokenizer in the folder)", () => {
    const r = cli(["--model", TINY, "--input-ids", JSON.stringify(golden.prompt), "--max-new-tokens", String(n), "--json"]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ input_ids: golden.prompt, output_ids: golden.greedy, text: null });
  });

  it("--repetition-penalty 1.3 gives HF's tokens", () => {
    const r = cli(["--model", TINY, "--input-ids", JSON.stringify(golden.prompt), "--max-new-tokens", String(n), "--repetition-penalty", "1.3", "--json"]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).output_ids).toEqual(golden["greedy_repetition_penalty_1.3"]);
  });

  it("--prompt goes through the model folder's tokenizer; text mode streams the same text", () => {
    const j = cli(["--model", "models/tiny-stories", "--prompt", "Once upon a time", "--max-new-tokens", "16", "--json"]);
    expect(j.code, j.err).toBe(0);
    const o = JSON.parse(j.out);
    expect(o.input_ids).toEqual([1, 404, 428, 261, 371]);
    expect(o.output_ids.slice(0, 5)).toEqual(o.input_ids);
    expect(o.output_ids).toHaveLength(21);
    expect(o.text.startsWith("Once upon a time, there was a boy named Charlie.")).toBe(true);
    const t = cli(["--model", "models/tiny-stories", "--prompt", "Once upon a time", "--max-new-tokens", "16"]);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toBe(o.text + "\n");
  });

  it("sampling: the same --seed reproduces; --top-k 1 is greedy; --num-return-sequences prints one object per line", () => {
    const base = ["--model", "models/tiny-stories", "--prompt", "Lily wanted to", "--max-new-tokens", "12", "--json", "--do-sample", "--temperature", "1.2"];
    const a = cli([...base, "--seed", "4", "--num-return-sequences", "2"]);
    const b = cli([...base, "--seed", "4", "--num-return-sequences", "2"]);
    expect(a.code, a.err).toBe(0);
    expect(b.out).toBe(a.out);
    const lines = a.out.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    const greedy = cli(["--model", "models/tiny-stories", "--prompt", "Lily wanted to", "--max-new-tokens", "12", "--json"]);
    const topk1 = cli([...base, "--seed", "9", "--top-k", "1"]);
    expect(JSON.parse(topk1.out).output_ids).toEqual(JSON.parse(greedy.out).output_ids);
  });

  it("several --prompt flags: a left-padded batch, one JSON line each, equal to each prompt alone", () => {
    const r = cli(["--model", "models/tiny-stories", "--prompt", "Once upon a time", "--prompt", "Ben and his friend Mia went to the park.", "--max-new-tokens", "8", "--json"]);
    expect(r.code, r.err).toBe(0);
    const [a, b] = r.out.trim().split("\n").map((l) => JSON.parse(l));
    const alone = JSON.parse(cli(["--model", "models/tiny-stories", "--prompt", "Once upon a time", "--max-new-tokens", "8", "--json"]).out);
    expect(a.text).toBe(alone.text);
    expect(b.text.startsWith("Ben and his friend Mia went to the park. Ben was so excited!")).toBe(true);
  });

  const bad: [string, string[], RegExp][] = [
    ["a missing model folder", ["--model", "no/such/dir", "--input-ids", "[1,2]"], /--model: no such file or folder: no\/such\/dir/],
    ["--prompt without a tokenizer", ["--model", TINY, "--prompt", "hi"], /no tokenizer\.model or tokenizer\.json in the model folder; use --input-ids/],
    ["a token id ≥ vocab_size", ["--model", TINY, "--input-ids", "[1, 999]"], /inputIds\[0\]\[1\] = 999: expected a token id in \[0, 512\)/],
    ["malformed --input-ids", ["--model", TINY, "--input-ids", "[1, 2"], /--input-ids: not valid JSON/],
    ["an empty prompt", ["--model", TINY, "--input-ids", "[]"], /--input-ids: expected a JSON list of integer token ids/],
    ["both --prompt and --input-ids", ["--model", TINY, "--prompt", "x", "--input-ids", "[1]"], /give exactly one of --prompt TEXT or --input-ids JSON/],
    ["several sequences from greedy", ["--model", TINY, "--input-ids", "[1,2]", "--num-return-sequences", "2"], /numReturnSequences 2 needs sampling or beam search/],
    ["a bad --top-p", ["--model", TINY, "--input-ids", "[1,2]", "--do-sample", "--top-p", "2"], /topP must be in \[0, 1\], got 2/],
  ];
  for (const [what, args, msg] of bad) {
    it(`bad input: ${what} → one line on stderr, non-zero exit`, () => {
      const r = cli(args);
      expect(r.code).not.toBe(0);
      expect(r.out).toBe("");
      expect(r.err).toMatch(msg);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).not.toMatch(/\n\s+at /);
    });
  }
});
