/**
 * llama.cpp parity: our GGUF writer's files, loaded by llama.cpp (through
 * node-llama-cpp's prebuilt CPU binary, an independent LLaMA implementation),
 * must give the same next-token distributions at every position as our model
 * loaded from the same GGUF file (and as HF's golden logits).
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Llama, Token } from "node-llama-cpp";
import { loadCpuLlama } from "./llamacpp-helpers.js";
import { exportHfToGguf } from "../lib/io/gguf-export.js";
import { LlamaForCausalLM } from "../lib/model/index.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";

let llama: Llama;
let tmp: string;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llamacpp-"));
  llama = await loadCpuLlama();
});
afterAll(async () => {
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Row-wise softmax of [T, V] logits. */
function softmaxRows(logits: Float32Array, V: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / V; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    let m = -Infinity;
    for (const x of row) m = Math.max(m, x);
    let z = 0;
    for (let v = 0; v < V; v++) z += out[r * V + v] = Math.exp(row[v]! - m);
    for (let v = 0; v < V; v++) out[r * V + v]! /= z;
  }
  return out;
}

/** llama.cpp's next-token probabilities after each prefix of `ids`, as [T, V]. */
async function llamaCppProbs(file: string, ids: number[], V: number): Promise<Float64Array> {
  const model = await llama.loadModel({ modelPath: file });
  const ctx = await model.createContext({ contextSize: 256, batchSize: 256, sequences: 1 });
  try {
    const res = await ctx.getSequence().controlledEvaluate(ids.map((id) => [id as Token, { generateNext: { probabilities: true } }]));
    const out = new Float64Array(ids.length * V);
    for (let t = 0; t < ids.length; t++) {
      const probs = res[t]?.next.probabilities;
      if (!probs) throw new Error(`llama.cpp returned no probabilities at position ${t}`);
      expect(probs.size).toBe(V);
      for (const [tok, p] of probs) out[t * V + tok] = p;
    }
    return out;
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const CASES = ["tiny-llama", "tiny-llama-gqa-llama3rope"];

describe("llama.cpp parity (node-llama-cpp prebuilt CPU)", () => {
  for (const c of CASES) {
    it(`${c}: F32 GGUF → llama.cpp vs ours from the same file: max |Δp| ≤ 1e-3 at every position`, async () => {
      const dir = `test/fixtures/hf/${c}`;
      const golden = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8"));
      const ids: number[] = golden.cases.single.input_ids[0];
      const file = path.join(tmp, `${c}-f32.gguf`);
      exportHfToGguf(dir, file, { outtype: "f32" });

      const ours = await LlamaForCausalLM.fromPretrained(file);
      const V = ours.config.vocab_size;
      const out = await ours.forward({ inputIds: [ids] });
      const pOurs = softmaxRows(out.logits.toFloat32(), V);
      const pCpp = await llamaCppProbs(file, ids, V);
      const dCpp = maxAbsDiff(pOurs, pCpp);

      // And both against HF's golden logits for the same input.
      const st = SafetensorsFile.open(path.join(dir, "golden.safetensors"));
      const pHf = softmaxRows(st.read("single.logits").toFloat32(), V);
      st.close();
      const dHf = maxAbsDiff(pOurs, pHf);
      console.log(`${c}: T=${ids.length} V=${V} max|Δp| ours vs llama.cpp ${dCpp.toExponential(2)}, ours vs HF ${dHf.toExponential(2)}`);
      expect(dCpp).toBeLessThanOrEqual(1e-3);
      expect(dHf).toBeLessThanOrEqual(1e-4);
      // The distributions are not flat: a real comparison, not two uniform vectors.
      expect(Math.max(...pCpp)).toBeGreaterThan(3 / V);
    });
  }

  it("a Q8_0 GGUF made by llama.cpp's own converter: ours (dequantized) vs llama.cpp: max |Δp| ≤ 1e-3", async () => {
    const file = "test/fixtures/gguf/llamacpp/tiny-llama-q8_0.gguf";
    const ids: number[] = JSON.parse(fs.readFileSync("test/fixtures/hf/tiny-llama/golden.json", "utf8")).cases.single.input_ids[0];
    const ours = await LlamaForCausalLM.fromPretrained(file);
    const V = ours.config.vocab_size;
    const pOurs = softmaxRows((await ours.forward({ inputIds: [ids] })).logits.toFloat32(), V);
    const d = maxAbsDiff(pOurs, await llamaCppProbs(file, ids, V));
    console.log(`tiny-llama Q8_0 (llama.cpp-made): max|Δp| ours vs llama.cpp ${d.toExponential(2)}`);
    expect(d).toBeLessThanOrEqual(1e-3);
  });

  it("tiny-llama: F16 GGUF (norms F32) → llama.cpp vs ours from the same file: max |Δp| ≤ 1e-3", async () => {
    const dir = "test/fixtures/hf/tiny-llama";
    const ids: number[] = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")).cases.single.input_ids[0];
    const file = path.join(tmp, "tiny-llama-f16.gguf");
    exportHfToGguf(dir, file, { outtype: "f16" });
    const ours = await LlamaForCausalLM.fromPretrained(file);
    const V = ours.config.vocab_size;
    const pOurs = softmaxRows((await ours.forward({ inputIds: [ids] })).logits.toFloat32(), V);
    const d = maxAbsDiff(pOurs, await llamaCppProbs(file, ids, V));
    console.log(`tiny-llama F16: max|Δp| ours vs llama.cpp ${d.toExponential(2)}`);
    expect(d).toBeLessThanOrEqual(1e-3);
  });
});
