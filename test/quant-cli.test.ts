/**
 * `llama-ts quantize` (the built CLI): writes the GGUF llama.cpp's
 * llama-quantize writes (same tensor bytes as the golden digests), names the
 * tensors that fell back on stderr, prints the file on stdout; bad input is
 * one line on stderr, a non-zero exit, and no file.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { runCli } from "./cli-run.js";
import { GgufFile } from "../lib/io/gguf.js";

const golden = JSON.parse(fs.readFileSync("test/fixtures/ggml-quant/tiny-stories.json", "utf8")) as Record<string, { tensors: Record<string, { type: number; sha256: string }> }>;
let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "quant-cli-")); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("llama-ts quantize", () => {
  it("--type q4_0 on the default model (3 worker threads): llama.cpp's bytes, fallbacks named, and the file generates", () => {
    const out = path.join(tmp, "tiny-q4_0.gguf");
    const r = runCli(["quantize", "--model", "models/tiny-stories", "--type", "Q4_0", "--out", out, "--threads", "3"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${out}\n`);
    const fallbacks = r.stderr.split("\n").filter((l) => l.startsWith("llama-ts quantize: fallback: "));
    expect(fallbacks).toHaveLength(6);
    expect(fallbacks[0]).toContain("blk.0.ffn_down.weight (row length 688): Q4_0 needs rows that are a multiple of its block → F16");
    expect(r.stderr).toMatch(/57 tensors \(38 Q4_0, 13 F32, 6 F16\), 4\.40 MiB/);
    const g = GgufFile.open(out);
    for (const [name, want] of Object.entries(golden.q4_0!.tensors)) {
      expect(g.info(name).type, name).toBe(want.type);
      expect(createHash("sha256").update(g.readRaw(name)).digest("hex"), name).toBe(want.sha256);
    }
    g.close();
    const gen = runCli(["generate", "--model", out, "--input-ids", "[1, 400, 500]", "--max-new-tokens", "8", "--json"]);
    expect(gen.status, gen.stderr).toBe(0);
    expect(gen.stdout).toMatch(/400, ?500(, ?\d+){8}/);
  });

  for (const [what, args, message] of [
    ["an unknown type", ["--model", "models/tiny-stories", "--type", "q3_k"], /^llama-ts quantize: --type: expected one of q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m, q5_k_m, got "q3_k"$/],
    ["a missing model", ["--model", "/no/such/model", "--type", "q8_0"], /^llama-ts quantize: --model: no such file or folder: \/no\/such\/model/],
    ["no --type", ["--model", "models/tiny-stories"], /^llama-ts quantize: missing required flag --type$/],
  ] as const) {
    it(`${what}: one line, exit 2, nothing written`, () => {
      const out = path.join(tmp, "bad.gguf");
      const r = runCli(["quantize", ...args, "--out", out]);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(message);
      expect(fs.readdirSync(tmp).filter((f) => f.includes("bad"))).toEqual([]);
    });
  }

  it("q6_k on one thread and on two: llama.cpp's bytes both times", () => {
    for (const threads of ["1", "2"]) {
      const out = path.join(tmp, `tiny-q6_k-${threads}.gguf`);
      const r = runCli(["quantize", "--type", "q6_k", "--out", out, "--threads", threads], { timeoutMs: 600_000 });
      expect(r.status, r.stderr).toBe(0);
      const g = GgufFile.open(out);
      for (const [name, want] of Object.entries(golden.q6_k!.tensors)) {
        expect(createHash("sha256").update(g.readRaw(name)).digest("hex"), name).toBe(want.sha256);
      }
      g.close();
    }
  }, 1_200_000);

  it("an already quantized source: one line, exit 1, nothing written", () => {
    const src = path.join(tmp, "src-q8.gguf");
    expect(runCli(["quantize", "--type", "q8_0", "--out", src]).status).toBe(0);
    const r = runCli(["quantize", "--model", src, "--type", "q4_0", "--out", path.join(tmp, "bad-requant.gguf")]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^llama-ts quantize: .*src-q8\.gguf: tensor "output\.weight" is Q8_0: quantizing needs an F32, F16 or BF16 model \(requantizing is not supported\)$/);
    expect(fs.readdirSync(tmp).filter((f) => f.includes("bad"))).toEqual([]);
  });
});
