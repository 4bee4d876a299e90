/**
 * Quantize at load (`fromPretrained(dir, { quantize })`, lib/quant/quantize-at-load.ts)
 * against the two-step path it must equal: `quantizeModel` (what `llama-ts
 * quantize` runs, bit-identical to llama.cpp's llama-quantize) writing a GGUF,
 * then loading that file. On the default model (tiny-stories: f16, ffn width
 * 688, so ffn_down falls back to F16): every weight gets the same storage
 * (type and bytes) and the logits are bit-identical on the CPU; the same from
 * an F16 GGUF source; WebGPU loads it too (logits equal to the GGUF's on the
 * same backend). Plus progress, slabs, and one-line errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { loadPretrained } from "../lib/model/auto.js";
import { exportHfToGguf } from "../lib/io/gguf-export.js";
import { GgmlType } from "../lib/io/gguf-types.js";
import { quantizeModel } from "../lib/quant/quantize-model.js";
import { quantizeForLoad } from "../lib/quant/quantize-at-load.js";
import { QuantizedTensor } from "../lib/tensor/quantized.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { f32ToBf16, f32ToF16 } from "../lib/tensor/dtype.js";
import { quantizeRows } from "../lib/quant/quantize.js";
import type { QuantPreset } from "../lib/quant/mix.js";
import type { ProgressInfo } from "../lib/progress.js";
import { runCli } from "./cli-run.js";

const MODEL = "models/tiny-stories";
const IDS = [[1, 153, 429, 59, 1024, 338, 17, 900]];
const SLOW = 600_000;

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "quant-load-")); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The `llama-ts quantize` file of the default model in `preset`. */
async function quantizedFile(preset: QuantPreset): Promise<string> {
  const file = path.join(tmp, `${preset}.gguf`);
  if (!fs.existsSync(file)) await quantizeModel(MODEL, file, { type: preset });
  return file;
}

/** Every parameter's storage: quant type (or dtype) and its host values. */
async function storage(m: LlamaForCausalLM): Promise<Map<string, { kind: string; values: Float32Array }>> {
  const out = new Map<string, { kind: string; values: Float32Array }>();
  for (const p of m.parameters()) {
    const t = p.get();
    out.set(p.name, { kind: t.quant ?? t.dtype, values: (await m.backend.read(t)).toFloat32() });
  }
  return out;
}

async function logits(m: LlamaForCausalLM): Promise<Float32Array> {
  return (await m.forward({ inputIds: IDS })).logits.toFloat32();
}

describe("fromPretrained({ quantize }) equals llama-ts quantize, then loading the GGUF (CPU, bit for bit)", () => {
  for (const preset of ["q8_0", "q4_k_m"] as const) {
    it(preset, async () => {
      const viaFile = await LlamaForCausalLM.fromPretrained(await quantizedFile(preset));
      const atLoad = await LlamaForCausalLM.fromPretrained(MODEL, { quantize: preset });
      const [a, b] = [await storage(atLoad), await storage(viaFile)];
      expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
      for (const [name, s] of a) {
        expect(s.kind, name).toBe(b.get(name)!.kind);
        expect(Buffer.from(s.values.buffer).equals(Buffer.from(b.get(name)!.values.buffer)), name).toBe(true);
      }
      // The plan shows through: ffn_down (rows of 688) fell back to F16; the rest is in blocks.
      const kinds = Object.fromEntries([...a].map(([n, s]) => [n, s.kind]));
      expect(kinds["model.layers.0.mlp.down_proj.weight"]).toBe("f16");
      expect(kinds["model.layers.0.self_attn.q_proj.weight"]).toBe(preset === "q8_0" ? "q8_0" : "q4_k");
      expect(kinds["lm_head.weight"]).toBe(preset === "q8_0" ? "q8_0" : "q6_k");
      expect(kinds["model.norm.weight"]).toBe("f32"); // norms in F32, as convert_hf_to_gguf.py writes them
      const [la, lb] = [await logits(atLoad), await logits(viaFile)];
      expect(Buffer.from(la.buffer).equals(Buffer.from(lb.buffer))).toBe(true);
    }, SLOW);
  }

  it("from an F16 GGUF (the shared loader path): the same weights and logits as from the folder", async () => {
    const f16 = path.join(tmp, "src-f16.gguf");
    exportHfToGguf(MODEL, f16, { outtype: "f16" });
    const fromGguf = await LlamaForCausalLM.fromPretrained(f16, { quantize: "q4_k_m" });
    const viaFile = await LlamaForCausalLM.fromPretrained(await quantizedFile("q4_k_m"));
    const [la, lb] = [await logits(fromGguf), await logits(viaFile)];
    expect(Buffer.from(la.buffer).equals(Buffer.from(lb.buffer))).toBe(true);
  }, SLOW);

  it("loadPretrained takes it too; progress goes 0 → total bytes, naming each tensor's type", async () => {
    const calls: [number, number, ProgressInfo | undefined][] = [];
    const m = await loadPretrained(MODEL, { quantize: "Q4_0" as QuantPreset, onProgress: (d, t, i) => calls.push([d, t, i]) });
    const total = calls[0]![1];
    expect(calls[0]).toEqual([0, total, { unit: "bytes" }]);
    expect(calls.at(-1)!.slice(0, 2)).toEqual([total, total]);
    for (let i = 1; i < calls.length; i++) expect(calls[i]![0]).toBeGreaterThanOrEqual(calls[i - 1]![0]);
    const labels = calls.map((c) => c[2]?.label).filter(Boolean);
    expect(labels).toContain("model.layers.0.self_attn.q_proj.weight → Q4_0");
    expect(labels).toContain("model.layers.0.mlp.down_proj.weight → F16");
    expect(labels).toContain("model.norm.weight");
    expect(m.parameters().find((p) => p.name === "model.layers.1.self_attn.v_proj.weight")!.get().quant).toBe("q4_0");
  }, SLOW);
});

describe("quantizeForLoad", () => {
  it("slabs of one row give the same blocks; f32 and bf16 sources; the F16 fallback from f32 rounds to nearest even", () => {
    const rows = 5, cols = 64;
    const f = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    const t = new Tensor(f, [rows, cols], "f32");
    const whole = quantizeForLoad(t, GgmlType.Q5_1, "w") as QuantizedTensor;
    const sliced = quantizeForLoad(t, GgmlType.Q5_1, "w", 7) as QuantizedTensor;
    expect(whole).toBeInstanceOf(QuantizedTensor);
    expect(whole.type).toBe("q5_1");
    expect(Buffer.from(sliced.data).equals(Buffer.from(whole.data))).toBe(true);
    const half = quantizeForLoad(t, GgmlType.F16, "w", 7) as Tensor;
    expect(half.dtype).toBe("f16");
    expect(half.data).toEqual(f32ToF16(f));
    // bf16 source: widened exactly, so the blocks are those of its float32 values.
    const b = new Tensor(f32ToBf16(f), [rows, cols], "bf16");
    const fromBf16 = quantizeForLoad(b, GgmlType.Q8_0, "w", 100) as QuantizedTensor;
    expect(Buffer.from(fromBf16.data).equals(Buffer.from(quantizeRows(GgmlType.Q8_0, b.toFloat32(), cols)))).toBe(true);
    expect(quantizeForLoad(t, "keep", "w")).toBe(t);
    const norm = new Tensor(f32ToF16(f.subarray(0, cols)), [cols], "f16");
    expect((quantizeForLoad(norm, "keep", "norm") as Tensor).data).toEqual(norm.toFloat32());
    expect(quantizeForLoad(half, GgmlType.F16, "w")).toBe(half);
  });
});

describe("SyncQuantizePool (the built package: node scripts/build.mjs)", () => {
  it("quantizes from synchronous code on 3 threads: the bytes of one thread, for every chunk split", async () => {
    const dist = (p: string) => pathToFileURL(path.resolve("dist", p)).href;
    const { SyncQuantizePool } = (await import(dist("lib/quant/quantize-sync-pool.js"))) as typeof import("../lib/quant/quantize-sync-pool.js");
    const pool = SyncQuantizePool.create(3)!;
    expect(pool.threads).toBe(3);
    await new Promise((resolve) => setTimeout(resolve, 200)); // let the workers start, so that they take chunks too
    const rows = 700, cols = 512; // 128 rows a chunk: 6 chunks, the last one short
    const f = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.013) * (1 + (i % 11)) * 0.02);
    for (const type of [GgmlType.Q4_K, GgmlType.Q8_0, GgmlType.F16] as const) {
      const want = quantizeRows(type, f, cols);
      for (let run = 0; run < 3; run++) expect(Buffer.from(pool.quantize(type, f, cols)).equals(Buffer.from(want)), `${type} run ${run}`).toBe(true);
    }
  }, SLOW);
});

describe("bad input: one-line errors", () => {
  it("an unknown type lists the valid ones", async () => {
    await expect(LlamaForCausalLM.fromPretrained(MODEL, { quantize: "q3_k" as QuantPreset }))
      .rejects.toThrow(/^quantize "q3_k": expected one of q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m, q5_k_m$/);
  });
  it("an already quantized GGUF is not requantized", async () => {
    const q = await quantizedFile("q8_0");
    await expect(LlamaForCausalLM.fromPretrained(q, { quantize: "q4_0" }))
      .rejects.toThrow(/q8_0\.gguf: tensor "output\.weight" is Q8_0: quantize at load needs an F32, F16 or BF16 model \(requantizing is not supported\)/);
  });
});

describe("--quantize on the CLI (built: node scripts/build.mjs)", () => {
  it("generate --quantize q4_0: the same greedy tokens as generating from the quantized GGUF", async () => {
    const args = ["--input-ids", "[1, 400, 500]", "--max-new-tokens", "12", "--json"];
    const atLoad = runCli(["generate", "--model", MODEL, "--quantize", "Q4_0", ...args]);
    expect(atLoad.status, atLoad.stderr).toBe(0);
    const viaFile = runCli(["generate", "--model", await quantizedFile("q4_0"), ...args]);
    expect(viaFile.status, viaFile.stderr).toBe(0);
    // The GGUF file has no tokenizer.model beside it, so only the ids are compared (the folder's run also decodes them).
    const ids = (out: string) => (JSON.parse(out) as { output_ids: number[] }).output_ids;
    expect(ids(atLoad.stdout)).toEqual(ids(viaFile.stdout));
    expect(ids(atLoad.stdout)).toHaveLength(15);
  }, SLOW);
  it("a bad type: one line listing the types, exit 2", () => {
    const r = runCli(["forward", "--model", MODEL, "--quantize", "q3_k", "--input-ids", "[1, 2]", "--out", path.join(tmp, "bad.safetensors")]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim()).toBe(`llama-ts forward: --quantize: expected one of q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m, q5_k_m, got "q3_k"`);
  });
});

describe("webgpu", () => {
  it("loads a q4_k_m-at-load model: logits equal to the quantized GGUF's on the same backend", async () => {
    const atLoad = await LlamaForCausalLM.fromPretrained(MODEL, { device: "webgpu", quantize: "q4_k_m" });
    const viaFile = await LlamaForCausalLM.fromPretrained(await quantizedFile("q4_k_m"), { backend: atLoad.backend });
    expect(atLoad.parameters().find((p) => p.name === "lm_head.weight")!.get().quant).toBe("q6_k");
    const [la, lb] = [await logits(atLoad), await logits(viaFile)];
    expect(Buffer.from(la.buffer).equals(Buffer.from(lb.buffer))).toBe(true);
  }, SLOW);
});
