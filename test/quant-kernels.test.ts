// Quantized weights kept in their ggml blocks (lib/tensor/quantized.ts) on the CPU:
//  - the wasm dequantize kernels give every weight bit for bit as ggml's reference
//    (lib/io/gguf-dequant.ts), on quantizer output and on random bytes (any scale, NaN/inf too);
//  - x·Wᵀ on the blocks equals the float32 kernel on the dequantized matrix, bit for bit
//    (same products, same accumulation), for decode and prefill (T = 1, 7, 129), rows not a
//    multiple of the 4-row block or of the thread split, with and without wasm;
//  - a GGUF mixing all eight types generates the same greedy tokens and logits as its
//    dequantized F32 twin, with no float32 copy of the quantized weights;
//  - a LoRA gradient on a Q8_0 base equals the one on its F32 twin (the input gradient
//    through the quantized Linears dequantizes a few rows at a time).
import { describe, it, expect, afterAll, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CpuBackend, CpuTensor } from "../lib/backend/cpu/cpu-backend.js";
import { kernelModule, MAX_PAGES } from "../lib/backend/cpu/wasm-kernels.js";
import { wasm } from "../lib/backend/cpu/wasm-api.js";
import { dequantizeBlocks } from "../lib/io/gguf-dequant.js";
import { f16ToF32Table } from "../lib/tensor/dtype.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { QUANT_LAYOUT, QUANT_TYPES, QuantizedTensor, dequantizeRows, type QuantType } from "../lib/tensor/quantized.js";
import { quantizeRows, type QuantizedType } from "../lib/quant/quantize.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { LoraModel } from "../lib/peft/lora-train.js";
import { backprop, createDifferentiableBackend, type DifferentiableBackend } from "../lib/autograd/differentiable.js";
import { writeGguf } from "../lib/io/gguf-writer.js";
import { GgufFile } from "../lib/io/gguf.js";
import { GgmlType } from "../lib/io/gguf-types.js";
import { makeMixedGguf, rotateTypes } from "./quant-fixture.js";
import { diffStats } from "./peft-helpers.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "quant-kernels-"));
const backends: { dispose(): void }[] = [];
afterAll(() => {
  backends.forEach((b) => b.dispose());
  fs.rmSync(tmp, { recursive: true, force: true });
});

let seed = 12345;
const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
const randn = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (rand() - 0.5) * 2 * scale);

/** A [rows, cols] matrix quantized by the bit-exact quantizer (with a few outlier rows). */
function quantMatrix(type: QuantType, rows: number, cols: number): QuantizedTensor {
  const f = randn(rows * cols);
  for (let r = 0; r < rows; r += 5) f[r * cols + (r % cols)] = 40 * (r % 2 ? 1 : -1);
  return new QuantizedTensor(type, quantizeRows(QUANT_LAYOUT[type].ggml as QuantizedType, f, cols), [rows, cols], `test ${type}`);
}

const dense = (q: QuantizedTensor) => new Tensor(dequantizeRows(q.type, q.data, q.cols, 0, q.rows, new Float32Array(q.size)), q.shape, "f32");
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe("wasm dequantize kernels: every weight as ggml's dequantize_row_*", () => {
  const mod = kernelModule();
  it.runIf(mod !== undefined)("all eight types, on quantizer output and on random bytes (NaN/inf scales included)", () => {
    const memory = new wasm!.Memory({ initial: 64, maximum: MAX_PAGES, shared: true });
    const k = new wasm!.Instance(mod!, { env: { memory } }).exports as Record<string, (...a: number[]) => void>;
    const table = 1 << 20, src = 4096, dst = 2 << 20;
    new Float32Array(memory.buffer, table, 65536).set(f16ToF32Table());
    for (const type of QUANT_TYPES) {
      const L = QUANT_LAYOUT[type];
      const blocks = 24;
      const random = new Uint8Array(blocks * L.bytes).map(() => (rand() * 256) | 0);
      for (const input of [quantMatrix(type, 3, 8 * L.elems).data.subarray(0, blocks * L.bytes), random]) {
        const ref = new Float32Array(blocks * L.elems);
        dequantizeBlocks(L.ggml, input, ref, blocks);
        new Uint8Array(memory.buffer, src, input.length).set(input);
        k[`deq_${type}`]!(src, dst, blocks, table);
        const got = new Float32Array(memory.buffer, dst, ref.length).slice();
        // bit for bit; a NaN weight only has to be a NaN (ggml's float ops do not fix a payload)
        const bad = [...bits(ref)].findIndex((b, i) => b !== bits(got)[i] && !(Number.isNaN(ref[i]) && Number.isNaN(got[i])));
        expect(bad, `${type} weight ${bad}: ${ref[bad]} vs ${got[bad]}`).toBe(-1);
      }
    }
  });
});

describe("x·Wᵀ on quantized blocks = the float32 kernel on the dequantized matrix", () => {
  for (const wasm of [true, false]) {
    it(`${wasm ? "wasm kernels (threads)" : "JavaScript kernels"}: all types, T = 1, 7, 129, odd row counts`, async () => {
      const be = await CpuBackend.create({ wasm });
      backends.push(be);
      for (const type of QUANT_TYPES) {
        // 13 rows: not a multiple of the 4-row block; 518 × 512: over 96 KiB, so split over the threads, 518 % 4 = 2
        for (const [N, K] of [[13, QUANT_LAYOUT[type].elems === 256 ? 256 : 96], [wasm ? 518 : 67, 512]] as const) {
          const q = quantMatrix(type, N, K);
          const wq = be.uploadQuantized(q);
          const wf = be.upload(dense(q));
          expect(wq.quant).toBe(type);
          for (const T of [1, 7, 129]) {
            const x = be.upload(new Tensor(randn(T * K), [1, T, K], "f32"));
            const yq = (be.readSync(be.linear(x, wq))).toFloat32();
            const yf = (be.readSync(be.linear(x, wf))).toFloat32();
            const i = [...bits(yq)].findIndex((b, j) => b !== bits(yf)[j]);
            expect(i, `${type} N ${N} T ${T}: output ${i} ${yq[i]} vs ${yf[i]}`).toBe(-1);
            // and near the double-precision product (the kernel really multiplies)
            if (T === 7 && N === 13) {
              const W = dense(q).data as Float32Array, xs = (be.readSync(x)).toFloat32();
              let worst = 0;
              for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
                let s = 0, mag = 0;
                for (let kk = 0; kk < K; kk++) { s += xs[t * K + kk]! * W[n * K + kk]!; mag += Math.abs(xs[t * K + kk]! * W[n * K + kk]!); }
                worst = Math.max(worst, Math.abs(yq[t * N + n]! - s) / mag);
              }
              expect(worst).toBeLessThan(1e-6);
            }
          }
        }
      }
    });
  }

  it("linearMany with quantized and f16 weights together; embedding rows; read() dequantizes", async () => {
    const be = await CpuBackend.create();
    backends.push(be);
    const a = quantMatrix("q4_0", 21, 64), b = quantMatrix("q6_k", 9, 256);
    const x = be.upload(new Tensor(randn(3 * 64), [3, 64], "f32"));
    const [ya] = be.linearMany(x, [be.uploadQuantized(a), be.upload(dense(a))]).map((t) => be.readSync(t).toFloat32());
    expect(ya).toEqual(be.readSync(be.linear(x, be.upload(dense(a)))).toFloat32());
    const table = be.uploadQuantized(b);
    const emb = be.readSync(be.embedding(table, Int32Array.from([8, 0, 3]), 1, 3)).toFloat32();
    const full = dense(b).data as Float32Array;
    expect(emb).toEqual(Float32Array.from([...full.subarray(8 * 256, 9 * 256), ...full.subarray(0, 256), ...full.subarray(3 * 256, 4 * 256)]));
    expect(be.readSync(table).toFloat32()).toEqual(full);
  });

  it("opt-in int8 decode (quantDot: \"int8\"): Q4_0/Q8_0/Q4_K/Q6_K within its documented bound, really used; other types and prefill stay exact", async () => {
    const exact = await CpuBackend.create();
    const int8 = await CpuBackend.create({ quantDot: "int8" });
    backends.push(exact, int8);
    if (!int8.description.includes("int8")) return; // no wasm here: the mode does not exist
    // 37 rows on one thread; 518 rows (over 96 KiB) split over the threads, which share x's Q8_0 copy
    for (const [type, N, K] of [
      ["q4_0", 37, 512], ["q8_0", 37, 512], ["q4_k", 37, 512], ["q6_k", 37, 512], ["q5_k", 37, 512],
      ["q4_0", 518, 512], ["q8_0", 518, 512], ["q4_k", 518, 512], ["q6_k", 518, 512],
    ] as const) {
      const q = quantMatrix(type, N, K);
      const W = dense(q).data as Float32Array;
      for (const T of [1, 3]) {
        const xs = randn(T * K, 2);
        const ya = exact.readSync(exact.linear(exact.upload(new Tensor(xs, [T, K], "f32")), exact.uploadQuantized(q))).toFloat32();
        const yb = int8.readSync(int8.linear(int8.upload(new Tensor(xs, [T, K], "f32")), int8.uploadQuantized(q))).toFloat32();
        if (T > 1 || type === "q5_k") {
          expect(yb).toEqual(ya); // prefill and types without int8 kernels: exact
          continue;
        }
        expect(yb).not.toEqual(ya);
        // |Δy| ≤ Σ_b (max|x_b| / 254 + 2⁻¹¹·max|x_b|)·Σ_b|w| (x rounded to 8 bits with an f16 scale)
        for (let n = 0; n < N; n++) {
          let bound = 0;
          for (let b = 0; b < K / 32; b++) {
            let amax = 0, wsum = 0;
            for (let k = b * 32; k < b * 32 + 32; k++) { amax = Math.max(amax, Math.abs(xs[k]!)); wsum += Math.abs(W[n * K + k]!); }
            bound += (amax / 254 + amax * 2 ** -11) * wsum;
          }
          expect(Math.abs(yb[n]! - ya[n]!), `${type} row ${n}`).toBeLessThanOrEqual(bound * 1.001 + 1e-6);
        }
      }
    }
  });

  it("a byte length that disagrees with type and shape, or a shape no block divides: one-line errors naming the tensor", () => {
    expect(() => new QuantizedTensor("q4_k", new Uint8Array(143), [1, 256], "blk.0.attn_q.weight"))
      .toThrow("blk.0.attn_q.weight: q4_k [1, 256] needs 144 bytes, got 143");
    expect(() => new QuantizedTensor("q8_0", new Uint8Array(34), [1, 48], "w")).toThrow("w: row length 48 is not a multiple of the q8_0 block of 32");
  });
});

describe("a GGUF mixing all eight types (tiny-stories) against its dequantized F32 twin", () => {
  const mixed = path.join(tmp, "mixed.gguf"), twin = path.join(tmp, "twin.gguf");
  let types = new Map<string, QuantType | "f32">();
  beforeAll(() => {
    types = makeMixedGguf("models/tiny-stories", path.join(tmp, "work.gguf"), mixed, twin, rotateTypes);
  });

  it("the weights stay in their blocks (no float32 copy), greedy tokens equal, logits within 1e-4 × max |logit|", async () => {
    expect(new Set(types.values())).toEqual(new Set([...QUANT_TYPES, "f32"]));
    const a = await LlamaForCausalLM.fromPretrained(mixed);
    const b = await LlamaForCausalLM.fromPretrained(twin);
    // every quantized GGUF tensor is held as exactly its file bytes
    const g = GgufFile.open(mixed);
    let quantBytes = 0, fileQuantBytes = 0;
    for (const p of a.parameters()) {
      const t = p.get() as CpuTensor;
      if (t.quant) quantBytes += t.data.byteLength;
    }
    for (const name of g.tensorNames()) if (types.get(name) !== "f32") fileQuantBytes += g.info(name).byteSize;
    g.close();
    expect(quantBytes).toBe(fileQuantBytes);
    expect((a.model.layers[0]!.self_attn.q_proj.weight as CpuTensor).quant).toBe(types.get("blk.0.attn_q.weight"));

    const prompts = [[1, 9038, 2501, 263, 931].map((t) => t % 2048), [1, 200, 300, 17]];
    for (const p of prompts) {
      const la = (await a.forward({ inputIds: [p] })).logits.toFloat32();
      const lb = (await b.forward({ inputIds: [p] })).logits.toFloat32();
      const max = Math.max(...Array.from(lb, Math.abs));
      expect(diffStats(la, lb).abs).toBeLessThanOrEqual(1e-4 * max);
      const ga = await a.generate({ inputIds: [p], maxNewTokens: 24 });
      const gb = await b.generate({ inputIds: [p], maxNewTokens: 24 });
      expect(ga).toEqual(gb);
    }
  });

  it("a type without kernels (Q2_K) fails to load with the type and the tensor named", async () => {
    const g = GgufFile.open(twin);
    const meta = [...g.metadata];
    const specs = g.tensorNames().map((name) => {
      const info = g.info(name);
      const t = g.read(name);
      if (name === "blk.0.attn_k.weight") {
        return { name, shape: info.shape, type: GgmlType.Q2_K, data: () => new Uint8Array((info.shape[0]! * info.shape[1]! / 256) * 84) };
      }
      return { name, shape: info.shape, type: GgmlType.F32, data: () => t };
    });
    g.close();
    const bad = path.join(tmp, "q2k.gguf");
    writeGguf(bad, meta, specs);
    await expect(LlamaForCausalLM.fromPretrained(bad)).rejects.toThrow(/tensor "blk\.0\.attn_k\.weight".*Q2_K/);
  });
});

describe("LoRA on a quantized frozen base (CPU tape)", () => {
  const be: DifferentiableBackend[] = [];
  afterAll(() => be.forEach((b) => b.dispose()));

  it("the LoRA gradient on a Q8_0 base equals the one on its dequantized F32 twin within 1e-4", async () => {
    const q8 = path.join(tmp, "tl-q8.gguf"), f32 = path.join(tmp, "tl-f32.gguf");
    const types = makeMixedGguf("test/fixtures/hf/tiny-llama", path.join(tmp, "tl-work.gguf"), q8, f32, () => "q8_0");
    expect(types.get("blk.1.attn_q.weight")).toBe("q8_0");
    const tape = await createDifferentiableBackend("cpu");
    be.push(tape);
    const config = { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] };
    const grads: Float32Array[][] = [];
    for (const file of [q8, f32]) {
      const base = await LlamaForCausalLM.fromPretrained(file, { backend: tape });
      if (file === q8) expect(base.model.layers[1]!.mlp.up_proj.weight.quant).toBe("q8_0");
      seed = 99;
      const probe = LoraModel.create(base, config);
      const values = new Map([...probe.modules].map(([m, p]) => [m, { A: randn(p.A.size, 0.3), B: randn(p.B.size, 0.3) }]));
      const lora = LoraModel.fromValues(base, config, values);
      const ids = [[1, 40, 77, 3, 250, 9, 31, 8], [1, 5, 6, 7, 8, 9, 10, 11]];
      const out = await lora.forward({ inputIds: ids, labels: ids });
      await backprop(tape, out.loss!);
      grads.push([...lora.modules.values()].flatMap((p) => [p.A.grad!.slice(), p.B.grad!.slice()]));
    }
    const [gq, gf] = grads as [Float32Array[], Float32Array[]];
    expect(gq.length).toBe(gf.length);
    let worst = 0, scale = 0;
    gq.forEach((g, i) => {
      worst = Math.max(worst, diffStats(g, gf[i]!).abs);
      scale = Math.max(scale, ...Array.from(gf[i]!, Math.abs));
    });
    expect(scale).toBeGreaterThan(1e-3); // real gradients
    expect(worst).toBeLessThan(1e-4);
  });
});
