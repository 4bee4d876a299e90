/**
 * The CLI side of the formats work: `llama-ts convert` (flags as HF's
 * convert_llama_weights_to_hf.py) and `--model <file>.gguf` on a model
 * command. Runs the built CLI (dist/): `node scripts/build.mjs` first.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { exportHfToGguf } from "../lib/io/gguf-export.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "formats-cli-")); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/llama-ts.js", ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("llama-ts convert", () => {
  it("converts the 2-shard Meta fixture: files on stdout, progress on stderr, hf/tiny-llama's tensors as f16", () => {
    const out = path.join(tmp, "hf");
    const r = cli("convert", "--input_dir", "test/fixtures/meta/tiny-llama-2shard", "--model_size", "7B", "--output_dir", out, "--llama_version", "2");
    expect(r.stderr).toMatch(/converting: 100%/);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").map((l) => path.basename(l)).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors"]);
    const got = SafetensorsFile.open(path.join(out, "model.safetensors"));
    const want = SafetensorsFile.open("test/fixtures/hf/tiny-llama/model.safetensors");
    const name = "model.layers.1.self_attn.k_proj.weight";
    expect(Array.from(got.read(name).data)).toEqual(Array.from(f32ToF16(want.read(name).toFloat32())));
    got.close();
    want.close();
  });

  it("bad flags exit 2 with one line; bad input exits 1 naming the folder", () => {
    const missing = cli("convert", "--model_size", "7B", "--output_dir", path.join(tmp, "x"));
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe("llama-ts convert: missing required flag --input_dir");
    const version = cli("convert", "--input_dir", tmp, "--model_size", "7B", "--output_dir", path.join(tmp, "x"), "--llama_version", "4");
    expect(version.code).toBe(2);
    expect(version.stderr).toMatch(/--llama_version: expected one of 1, 2, 3, 3.1, 3.2, 3.3, got "4"/);
    const empty = cli("convert", "--input_dir", tmp, "--model_size", "7B", "--output_dir", path.join(tmp, "x"));
    expect(empty.code).toBe(1);
    expect(empty.stderr.trim().split("\n")).toHaveLength(1);
    expect(empty.stderr).toContain(`${tmp}: no params.json here nor in ${path.join(tmp, "7B")}`);
  });
});

describe("--model accepts a .gguf file", () => {
  it("llama-ts forward --model tiny-llama.gguf gives HF's golden logits", () => {
    const file = path.join(tmp, "tiny-llama.gguf");
    exportHfToGguf("test/fixtures/hf/tiny-llama", file, { outtype: "f32" });
    const ids = JSON.parse(fs.readFileSync("test/fixtures/hf/tiny-llama/golden.json", "utf8")).cases.single.input_ids;
    const out = path.join(tmp, "fwd.safetensors");
    const r = cli("forward", "--model", file, "--input-ids", JSON.stringify(ids), "--out", out);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const got = SafetensorsFile.open(out).read("logits").toFloat32();
    const want = SafetensorsFile.open("test/fixtures/hf/tiny-llama/golden.safetensors").read("single.logits").toFloat32();
    let d = 0;
    for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!));
    expect(d).toBeLessThanOrEqual(1e-4);
  });
});
