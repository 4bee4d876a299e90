// Weights spread over several WebAssembly memories (lib/backend/cpu/wasm-engine.ts): with a
// small cap on the bytes per memory (the memoryMiB option / LLAMA_TS_WASM_MEMORY_MIB), the
// default model (f16), its F32 GGUF and a GGUF mixing all eight quantized types each spread
// over ≥ 3 memories, with worker threads that attach the memories added after they started;
// logits are bit-identical to the one-memory run and greedy generate gives the same tokens.
// Prefill products too big for one workspace run in blocks of x rows with the same bits.
import { describe, it, expect, afterAll, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CpuBackend } from "../lib/backend/cpu/cpu-backend.js";
import { createLinearEngine } from "../lib/backend/cpu/linear-engine.js";
import { WasmLinearEngine } from "../lib/backend/cpu/wasm-engine.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { makeMixedGguf, rotateTypes } from "./quant-fixture.js";

const MODEL = "models/tiny-stories";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cpu-memories-"));
const disposers: { dispose(): void }[] = [];
afterAll(() => {
  disposers.forEach((d) => d.dispose());
  fs.rmSync(tmp, { recursive: true, force: true });
});

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const memoriesOf = (be: CpuBackend) => Number(/(\d+) memories/.exec(be.description)?.[1] ?? 1);

/** Attention calls the wasm engine declined (the JavaScript kernel ran instead). */
let declined = 0;
const attention = WasmLinearEngine.prototype.attention;
WasmLinearEngine.prototype.attention = function (this: WasmLinearEngine, ...args: Parameters<typeof attention>) {
  const done = attention.apply(this, args);
  if (!done) declined++;
  return done;
};

/**
 * Loads `source` on a one-memory backend and on one capped at `mib` per memory; same logits
 * bits, same tokens, and attention always on the wasm kernels (keys and values of a layer
 * may sit in two memories). Returns how many memories the capped backend used.
 */
async function compare(source: string, mib: number, quantDot: "exact" | "int8" = "exact"): Promise<number> {
  declined = 0;
  const one = await CpuBackend.create({ threads: 3, quantDot });
  const many = await CpuBackend.create({ threads: 3, quantDot, memoryMiB: mib });
  disposers.push(one, many);
  expect(one.description).toContain("wasm simd kernels, 3 threads");
  const a = await LlamaForCausalLM.fromPretrained(source, { backend: one });
  const b = await LlamaForCausalLM.fromPretrained(source, { backend: many });
  for (const ids of [[1, 9038, 2501, 263, 931].map((t) => t % 2048), [1, 200, 300, 17, 5, 6, 7, 8, 9]]) {
    const la = (await a.forward({ inputIds: [ids] })).logits.toFloat32();
    const lb = (await b.forward({ inputIds: [ids] })).logits.toFloat32();
    expect(bytesOf(lb).equals(bytesOf(la))).toBe(true);
    const ga = await a.generate({ inputIds: [ids], maxNewTokens: 20 });
    const gb = await b.generate({ inputIds: [ids], maxNewTokens: 20 });
    expect(gb).toEqual(ga);
  }
  expect(memoriesOf(one)).toBe(1);
  expect(declined).toBe(0);
  return memoriesOf(many);
}

describe("weights over several WebAssembly memories", () => {
  const mixed = path.join(tmp, "mixed.gguf"), twin = path.join(tmp, "twin.gguf");
  beforeAll(() => {
    makeMixedGguf(MODEL, path.join(tmp, "work.gguf"), mixed, twin, rotateTypes);
  });

  it("default model (f16 safetensors): same logits bits and greedy tokens, ≥ 3 memories", async () => {
    const n = await compare(MODEL, 3);
    console.log(`tiny-stories f16, 3 MiB per memory: ${n} memories`);
    expect(n).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it("F32 GGUF: same logits bits and greedy tokens, ≥ 3 memories", async () => {
    const n = await compare(twin, 4);
    console.log(`tiny-stories F32 GGUF, 4 MiB per memory: ${n} memories`);
    expect(n).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it("GGUF mixing all eight quantized types: same logits bits and greedy tokens, ≥ 3 memories (exact and int8 decode)", async () => {
    const n = await compare(mixed, 2);
    console.log(`tiny-stories mixed quantized GGUF, 2 MiB per memory: ${n} memories`);
    expect(n).toBeGreaterThanOrEqual(3);
    expect(await compare(mixed, 2, "int8")).toBe(n);
  }, 180_000);

  it("LLAMA_TS_WASM_MEMORY_MIB sets the cap; a bad value is a one-line error naming it", async () => {
    const saved = process.env.LLAMA_TS_WASM_MEMORY_MIB;
    try {
      process.env.LLAMA_TS_WASM_MEMORY_MIB = "1";
      const e = await createLinearEngine({ threads: 1 });
      disposers.push(e);
      for (let i = 0; i < 3; i++) e.adopt(new Float32Array(150_000), "f32"); // 600 kB each: one per 1 MiB memory
      expect(e.description).toMatch(/3 memories/);
      process.env.LLAMA_TS_WASM_MEMORY_MIB = "lots";
      await expect(createLinearEngine()).rejects.toThrow('LLAMA_TS_WASM_MEMORY_MIB: "lots" is not a size in MiB above 0 and at most 4096');
      await expect(createLinearEngine({ memoryMiB: -2 })).rejects.toThrow("memoryMiB: -2 is not a size in MiB");
    } finally {
      if (saved === undefined) delete process.env.LLAMA_TS_WASM_MEMORY_MIB;
      else process.env.LLAMA_TS_WASM_MEMORY_MIB = saved;
    }
  });

  it("a prefill whose outputs pass the 64 MiB workspace runs in blocks of rows, with the same bits as row by row", async () => {
    const e = (await WasmLinearEngine.create(2))!;
    disposers.push(e);
    const K = 8, N = 2 ** 19 + 3, M = 70; // 2 MiB of output per x row: blocks of 32, 32, 6 rows; 3 tail rows in JavaScript
    const w = e.adopt(Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37)), "f32");
    const x = Float32Array.from({ length: M * K }, (_, i) => Math.cos(i * 1.3));
    const y = new Float32Array(M * N);
    e.run(x, M, K, [{ w, dtype: "f32", N, y }]);
    const row = new Float32Array(N);
    for (const m of [0, 31, 32, 63, 64, 69]) {
      e.run(x.subarray(m * K, (m + 1) * K), 1, K, [{ w, dtype: "f32", N, y: row }]);
      expect(bytesOf(y.subarray(m * N, (m + 1) * N)).equals(bytesOf(row))).toBe(true);
    }
  }, 60_000);
});
