/**
 * Bad input: each case gives an error naming the file/tensor/field and what
 * was expected — through the library (error class + message) and through the
 * CLI (`llama-ts forward`: non-zero exit, one line on stderr, no stack trace).
 * The CLI half runs the built dist/ (npm test builds first).
 */
import { describe, it, expect, beforeAll } from "vitest";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { SafetensorsFile, saveSafetensors } from "../lib/io/safetensors.js";
import { FormatError, InputError, LlamaError } from "../lib/errors.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { HF, ROOT } from "./core-helpers.js";

const SRC = path.join(HF, "tiny-llama");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "core-errors-"));

/** A copy of tiny-llama with its weights rewritten by `edit` (name → tensor, or a raw file writer). */
function variant(name: string, edit: { tensors?: (t: Map<string, Tensor>) => void; raw?: (bytes: Buffer) => Buffer; config?: string }): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "config.json"), edit.config ?? fs.readFileSync(path.join(SRC, "config.json")));
  const file = path.join(dir, "model.safetensors");
  if (edit.tensors) {
    const st = SafetensorsFile.open(path.join(SRC, "model.safetensors"));
    const map = new Map(st.names().map((n) => [n, st.read(n)]));
    edit.tensors(map);
    saveSafetensors(file, map);
  } else {
    const bytes = fs.readFileSync(path.join(SRC, "model.safetensors"));
    fs.writeFileSync(file, edit.raw ? edit.raw(bytes) : bytes);
  }
  return dir;
}

/** Rewrites the JSON header (keeping the data) and returns the new file bytes. */
function withHeader(bytes: Buffer, change: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void): Buffer {
  const len = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + len).toString("utf8"));
  change(header);
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([out, json, bytes.subarray(8 + len)]);
}

interface Case {
  what: string;
  dir: () => string;
  ids?: number[][];
  error: new (...a: never[]) => LlamaError;
  message: RegExp;
}

const cases: Case[] = [
  {
    what: "a truncated safetensors file",
    dir: () => variant("truncated", { raw: (b) => b.subarray(0, b.length - 1000) }),
    error: FormatError, message: /model\.safetensors: tensor ".*": data_offsets \[\d+, \d+\] point past the end of the data/,
  },
  {
    what: "a header length beyond the file",
    dir: () => variant("header-length", { raw: (b) => { const c = Buffer.from(b); c.writeBigUInt64LE(BigInt(b.length + 10), 0); return c; } }),
    error: FormatError, message: /model\.safetensors: safetensors header length \d+ points past the end of the file/,
  },
  {
    what: "offsets past the end",
    dir: () => variant("offsets", { raw: (b) => withHeader(b, (h) => { h["model.norm.weight"]!.data_offsets = [10_000_000, 10_000_256]; }) }),
    error: FormatError, message: /tensor "model\.norm\.weight": data_offsets \[10000000, 10000256\] point past the end/,
  },
  {
    what: "a malformed config.json",
    dir: () => variant("bad-config", { config: '{"vocab_size": 512, "hidden_size": ' }),
    error: FormatError, message: /config\.json: malformed JSON/,
  },
  {
    what: "a missing model folder",
    dir: () => path.join(work, "does-not-exist"),
    // The library names the folder; the CLI checks --model first and says the same in its words.
    error: LlamaError, message: /(model folder not found|--model: no such file or folder): .*does-not-exist/,
  },
  {
    what: "an unsupported dtype in the header",
    dir: () => variant("dtype-header", { raw: (b) => withHeader(b, (h) => { h["model.norm.weight"]!.dtype = "F8_E4M3"; }) }),
    error: FormatError, message: /tensor "model\.norm\.weight": unsupported dtype "F8_E4M3"/,
  },
  {
    what: "a weight stored with a non-float dtype",
    dir: () => variant("dtype-int", { raw: (b) => withHeader(b, (h) => { h["model.norm.weight"]!.dtype = "I32"; }) }),
    error: FormatError, message: /tensor "model\.norm\.weight" has dtype I32; expected F32, F16 or BF16/,
  },
  {
    what: "a tensor with the wrong shape for the config",
    dir: () => variant("shape", { tensors: (m) => m.set("model.layers.1.mlp.up_proj.weight", Tensor.zeros([170, 64])) }),
    error: FormatError, message: /tensor "model\.layers\.1\.mlp\.up_proj\.weight" has shape \[170, 64\], expected \[176, 64\]/,
  },
  {
    what: "a missing tensor",
    dir: () => variant("missing", { tensors: (m) => m.delete("model.layers.0.self_attn.k_proj.weight") }),
    error: FormatError, message: /missing tensor "model\.layers\.0\.self_attn\.k_proj\.weight" \(expected shape \[64, 64\]/,
  },
  {
    what: "a token id >= vocab_size",
    dir: () => SRC, ids: [[1, 2, 512]],
    error: InputError, message: /input_ids\[0\]\[2\] = 512: expected a token id in \[0, 512\)/,
  },
  {
    what: "an empty input",
    dir: () => SRC, ids: [[]],
    error: InputError, message: /input_ids is empty|--input-ids is empty/,
  },
];

describe("bad input through the library", () => {
  for (const c of cases) {
    it(c.what, async () => {
      const run = async () => {
        const m = await LlamaForCausalLM.fromPretrained(c.dir());
        await m.forward({ inputIds: c.ids ?? [[1, 2, 3]] });
      };
      await expect(run()).rejects.toThrow(c.error);
      await expect(run()).rejects.toThrow(c.message);
    });
  }
});

describe("bad input through the CLI (llama-ts forward)", () => {
  beforeAll(() => {
    if (!fs.existsSync(path.join(ROOT, "dist", "cli", "main.js"))) throw new Error("dist/ is missing: run `node scripts/build.mjs` first");
  });
  for (const c of cases) {
    it(c.what, () => {
      const out = path.join(work, "out.safetensors");
      const r = spawnSync(process.execPath, [
        path.join(ROOT, "bin", "llama-ts.js"), "forward", "--model", c.dir(), "--input-ids", JSON.stringify(c.ids ?? [[1, 2, 3]]), "--out", out,
      ], { encoding: "utf8" });
      expect(r.status).not.toBe(0);
      expect(r.stdout).toBe("");
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^llama-ts forward: /);
      expect(lines[0]).toMatch(c.message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    });
  }
});

describe("llama-ts forward writes HF's tensors", () => {
  it("names and shapes for the left-padded batch; values match the library", async () => {
    const out = path.join(work, "fw.safetensors");
    const ids = [[1, 180, 256, 432], [0, 0, 1, 49]];
    const mask = [[1, 1, 1, 1], [0, 0, 1, 1]];
    const r = spawnSync(process.execPath, [
      path.join(ROOT, "bin", "llama-ts.js"), "forward", "--model", SRC, "--input-ids", JSON.stringify(ids),
      "--attention-mask", JSON.stringify(mask), "--out", out,
    ], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe("");
    const f = SafetensorsFile.open(out);
    const shapes = Object.fromEntries(f.names().map((n) => [n, [f.info(n).dtype, ...f.info(n).shape]]));
    expect(shapes).toEqual({
      logits: ["F32", 2, 4, 512],
      "hidden_states.0": ["F32", 2, 4, 64], "hidden_states.1": ["F32", 2, 4, 64], "hidden_states.2": ["F32", 2, 4, 64],
      "attentions.0": ["F32", 2, 4, 4, 4], "attentions.1": ["F32", 2, 4, 4, 4],
      "past_key.0": ["F32", 2, 4, 4, 16], "past_key.1": ["F32", 2, 4, 4, 16],
      "past_value.0": ["F32", 2, 4, 4, 16], "past_value.1": ["F32", 2, 4, 4, 16],
    });
    const m = await LlamaForCausalLM.fromPretrained(SRC);
    const lib = await m.forward({ inputIds: ids, attentionMask: mask });
    expect(Array.from(f.read("logits").toFloat32())).toEqual(Array.from(lib.logits.toFloat32()));
  });

  it("a sequence-classification checkpoint writes logits [B, num_labels]", () => {
    const out = path.join(work, "fw-cls.safetensors");
    const r = spawnSync(process.execPath, [
      path.join(ROOT, "bin", "llama-ts.js"), "forward", "--model", path.join(HF, "tiny-llama-seqcls"),
      "--input-ids", "[[1, 31, 331, 303]]", "--out", out,
    ], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(SafetensorsFile.open(out).info("logits").shape).toEqual([1, 3]);
  });
});
