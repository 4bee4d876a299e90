/**
 * `llama-ts tokenize` / `llama-ts detokenize` through the built CLI
 * (bin/llama-ts.js runs dist/: `node scripts/build.mjs` first; npm test does).
 * Expected ids come from the fixture vectors (sentencepiece / tiktoken).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

const F = "test/fixtures/tokenizers";

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["bin/llama-ts.js", ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("llama-ts tokenize / detokenize", () => {
  it("tokenize --json prints ids and tokens, BOS unless --no-bos", () => {
    const r = cli("tokenize", "--tokenizer", `${F}/llama2/tokenizer.model`, "--text", "Hello world", "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ids: [1, 15043, 3186], tokens: ["<s>", "▁Hello", "▁world"] });
    const nb = cli("tokenize", "--tokenizer", "models/tiny-stories", "--text", "  two  spaces and 12345", "--no-bos", "--json");
    expect(JSON.parse(nb.stdout).ids).toEqual([1981, 1981, 771, 1981, 521, 919, 1990, 296, 1981, 2045, 2044, 2039, 2038, 2036]);
  });
  it("--jsonl prints one line per input line, in order (tiktoken file)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tok-cli-"));
    const f = path.join(dir, "in.jsonl");
    fs.writeFileSync(f, ['"Hello world"', '""', '"🦙"'].join("\n") + "\n");
    const r = cli("tokenize", "--tokenizer", `${F}/llama3/tokenizer.model`, "--jsonl", f);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { ids: number[] });
    expect(lines.map((l) => l.ids)).toEqual([[128000, 9906, 1917], [128000], [128000, 9468, 99, 247]]);
    fs.writeFileSync(f, '"ok"\n{"text": 1}\n');
    const bad = cli("tokenize", "--tokenizer", `${F}/llama3/tokenizer.model`, "--jsonl", f);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/in\.jsonl: line 2: expected a JSON string, got object/);
    fs.rmSync(dir, { recursive: true });
  });
  it("--text-file and the plain table output", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tok-cli-"));
    const f = path.join(dir, "t.txt");
    fs.writeFileSync(f, "Hello\n");
    const r = cli("tokenize", "--tokenizer", `${F}/llama2/tokenizer.json`, "--text-file", f);
    expect(r.stdout).toBe('0\t1\t"<s>"\n1\t15043\t"▁Hello"\n2\t13\t"<0x0A>"\n');
    fs.rmSync(dir, { recursive: true });
  });
  it("detokenize prints the text; bad ids and bad usage are one-line errors", () => {
    expect(cli("detokenize", "--tokenizer", `${F}/llama2/tokenizer.model`, "--ids", "[1, 15043, 3186]").stdout).toBe("Hello world\n");
    expect(cli("detokenize", "--tokenizer", `${F}/llama2/tokenizer.model`, "--ids", "[243, 162]", "--json").stdout).toBe('"\\ufffd\\ufffd"\n'.replace(/\\ufffd/g, "\ufffd"));
    const bad = cli("detokenize", "--tokenizer", `${F}/llama2/tokenizer.model`, "--ids", "[15043, 40000]");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^llama-ts detokenize: decode: token id 40000 at position 1 is outside the vocabulary/);
    expect(bad.stderr.trim().split("\n").length).toBe(1);
    const usage = cli("tokenize", "--tokenizer", `${F}/llama2/tokenizer.model`);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/exactly one of --text, --text-file or --jsonl/);
  });
});
