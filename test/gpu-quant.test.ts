/**
 * WebGPU kernels for weights kept in their ggml blocks (gpu/ops/quant.ts), on
 * every type, in both f16 modes (native shader-f16 and packed, the H100 path):
 *  - the embedding gather gives each weight bit for bit as lib/io/gguf-dequant.ts
 *    (the per-weight exactness of the WGSL dequantizers);
 *  - GEMV and tiled products against dequantize-then-f32 (float64 reference)
 *    on odd shapes: rows not a multiple of the workgroup, an odd block count
 *    (rows starting at unaligned bytes), T = 1, 7, 129;
 *  - the input gradient g·W against the same reference.
 * Then whole models: a GGUF mixing all eight types (tiny-stories) against its
 * dequantized F32 twin (logits within 1e-3 relative, the same greedy tokens,
 * GPU weight memory = the file's tensor bytes), and a LoRA gradient on a Q8_0
 * base against the twin's on the WebGPU tape (no dense copy of W made).
 * Weights come from the bit-exact quantizers of lib/quant/. Lavapipe in CI: small shapes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { quantLinearInputGrad } from "../gpu/ops/quant.js";
import type { GpuTensor } from "../gpu/buffers.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { QUANT_LAYOUT, QUANT_TYPES, QuantizedTensor, dequantizeRows, type QuantType } from "../lib/tensor/quantized.js";
import { quantizeRows, type QuantizedType } from "../lib/quant/quantize.js";
import { randn, refLinear, relErr, rng } from "./gpu-reference.js";
import { GgufFile } from "../lib/io/gguf.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { LoraModel } from "../lib/peft/lora-train.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { dpoLossAndGrad } from "../lib/peft/dpo.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { backprop, createDifferentiableBackend, type DifferentiableBackend } from "../lib/autograd/differentiable.js";
import type { WebGpuTapeBackend } from "../gpu/tape-backend.js";
import { makeMixedGguf, rotateTypes } from "./quant-fixture.js";
import { diffStats } from "./peft-helpers.js";

type Mode = "native" | "packed";
const modes: Mode[] = ["native", "packed"];
const backends = new Map<Mode, WebGpuBackend>();
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gpu-quant-"));
  // Packed mode without subgroups (the H100 path), native with them: both reductions are covered.
  for (const m of modes) backends.set(m, await createWebGpuBackend({ f16: m, subgroups: m === "native" }));
});
afterAll(() => {
  for (const be of backends.values()) be.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A random [N, K] matrix quantized to `type`, rows of varied scale and offset (so mins and scales vary), and its exact values. */
function quantWeight(type: QuantType, N: number, K: number, seed: number): { q: QuantizedTensor; exact: Float32Array } {
  const r = rng(seed);
  const f = randn(r, N * K);
  for (let n = 0; n < N; n++) {
    const s = 0.05 + 2 * r(), off = n % 3 === 0 ? 0.7 * s : 0;
    for (let k = 0; k < K; k++) f[n * K + k] = f[n * K + k]! * s + off;
  }
  const bytes = quantizeRows(QUANT_LAYOUT[type].ggml as QuantizedType, f, K);
  const q = new QuantizedTensor(type, bytes, [N, K]);
  return { q, exact: dequantizeRows(type, bytes, K, 0, N, new Float32Array(N * K)) };
}

async function values(be: WebGpuBackend, t: unknown): Promise<Float32Array> {
  return (await be.read(t as GpuTensor)).data as Float32Array;
}

describe.each(modes)("quantized WebGPU kernels (f16 %s)", (mode) => {
  const be = () => backends.get(mode)!;

  for (const type of QUANT_TYPES) {
    const blk = QUANT_LAYOUT[type].elems;
    // K: an odd number of blocks (a row of 3 × 18 B starts at byte 54: unaligned), then an even one.
    const K1 = blk === 32 ? 96 : 256, K2 = blk === 32 ? 160 : 512;

    it(`${type}: the embedding gather gives every weight bit for bit; read() gives the dequantized matrix`, async () => {
      const V = 37;
      const { q, exact } = quantWeight(type, V, K1, 7);
      const table = be().uploadQuantized(q);
      expect(table.quant).toBe(type);
      const ids = Int32Array.from({ length: V + 3 }, (_, i) => (i * 11) % V);
      const got = await values(be(), be().embedding(table, ids, 2, ids.length / 2));
      const want = new Float32Array(ids.length * K1);
      ids.forEach((id, i) => want.set(exact.subarray(id * K1, (id + 1) * K1), i * K1));
      expect(got).toEqual(want);
      expect(await values(be(), table)).toEqual(exact);
    });

    // [M, K, N]: T = 1, 7 and 129 rows; N = 37 and 70 are not multiples of the GEMV's 4 rows nor the tile's 64.
    // The bias add is the same code for every type: the tiled kernel gets it for one type only (each
    // tiled variant costs seconds of shader compilation on lavapipe).
    const shapes: [number, number, number][] = [[1, K1, 37], [7, K2, 70], [129, K1, 37]];
    for (const [M, K, N] of shapes) {
      for (const kernel of ["gemv", "tiled"] as const) {
        const withBias = N === 70 && (kernel === "gemv" || type === "q4_0");
        it(`${type}: linear [${M}x${K}]·[${N}x${K}]ᵀ via ${kernel}${withBias ? " with bias" : ""}`, async () => {
          const r = rng(M * 31 + N + K);
          const x = randn(r, M * K);
          const { q, exact } = quantWeight(type, N, K, M + N + K);
          const b = withBias ? randn(r, N) : undefined;
          const y = be().linear(be().upload(new Tensor(x, [M, K])), be().uploadQuantized(q), b && be().upload(new Tensor(b, [N])), { kernel });
          expect(y.shape).toEqual([M, N]);
          expect(relErr(await values(be(), y), refLinear(x, exact, b, M, K, N))).toBeLessThan(1e-6);
        });
      }
    }

    it(`${type}: input gradient g·W [129x70]·[70x${K2}] dequantizes in the kernel`, async () => {
      const M = 129, N = 70, K = K2;
      const r = rng(3);
      const g = randn(r, M * N);
      const { q, exact } = quantWeight(type, N, K, 11);
      // Wᵀ as a dense [K, N] matrix: g·W = g·(Wᵀ)ᵀ in refLinear's terms.
      const wt = new Float32Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = exact[n * K + k]!;
      const dx = quantLinearInputGrad(be().runtime, be().upload(new Tensor(g, [M, N])) as GpuTensor, be().uploadQuantized(q) as GpuTensor);
      expect(dx.shape).toEqual([M, K]);
      expect(relErr(await values(be(), dx), refLinear(g, wt, undefined, M, N, K))).toBeLessThan(1e-6);
    });
  }

  it("an op without quantized kernels names the weight's type instead of misreading its blocks", () => {
    const { q } = quantWeight("q4_0", 1, 32, 1);
    const w = be().uploadQuantized(q);
    const x = be().upload(new Tensor(new Float32Array(32), [1, 32]));
    expect(() => be().rmsNorm(x, w, 1e-5)).toThrow("webgpu: this op cannot read a q4_0 weight [1, 32] (only linear and embedding can)");
    expect(() => be().add(w, x)).toThrow("webgpu backend: add input must be float32, got q4_0");
  });
});

describe("a GGUF mixing all eight types (tiny-stories) on WebGPU against its dequantized F32 twin", () => {
  let mixed: string, twin: string;
  let types = new Map<string, QuantType | "f32">();
  beforeAll(() => {
    mixed = path.join(tmp, "mixed.gguf");
    twin = path.join(tmp, "twin.gguf");
    types = makeMixedGguf("models/tiny-stories", path.join(tmp, "work.gguf"), mixed, twin, rotateTypes);
  });

  it("GPU memory for weights is the file's tensor bytes; logits within 1e-3 relative; the same greedy tokens", async () => {
    expect(new Set(types.values())).toEqual(new Set([...QUANT_TYPES, "f32"]));
    const g = GgufFile.open(mixed);
    const names = g.tensorNames();
    const fileBytes = names.reduce((s, n) => s + g.info(n).byteSize, 0);
    g.close();
    // A fresh backend per file, so its allocator counts only that model's weights.
    const runs: { logits: Float32Array[]; tokens: number[][][] }[] = [];
    for (const file of [mixed, twin]) {
      const be = await createWebGpuBackend({ f16: "packed", subgroups: false });
      try {
        const m = await LlamaForCausalLM.fromPretrained(file, { backend: be });
        if (file === mixed) {
          expect((m.model.layers[0]!.self_attn.q_proj.weight as GpuTensor).quant).toBe(types.get("blk.0.attn_q.weight"));
          const held = be.memory().weights;
          // Each buffer is its tensor's bytes padded to 4: within 4 bytes a tensor (far inside ±1%).
          expect(held).toBeGreaterThanOrEqual(fileBytes);
          expect(held - fileBytes).toBeLessThanOrEqual(4 * names.length);
        }
        const prompts = [[1, 9038 % 2048, 2501 % 2048, 263, 931], [1, 200, 300, 17]];
        const run = { logits: [] as Float32Array[], tokens: [] as number[][][] };
        for (const p of prompts) {
          run.logits.push((await m.forward({ inputIds: [p] })).logits.toFloat32());
          run.tokens.push(await m.generate({ inputIds: [p], maxNewTokens: 16 }));
        }
        runs.push(run);
      } finally {
        be.dispose();
      }
    }
    const [q, f] = runs as [(typeof runs)[0], (typeof runs)[0]];
    q.logits.forEach((l, i) => expect(diffStats(l, f.logits[i]!).rel).toBeLessThan(1e-3));
    expect(q.tokens).toEqual(f.tokens);
    // The CPU's wasm kernels on the same mixed file: the same tokens, logits within 1e-3 relative.
    const cpu = await LlamaForCausalLM.fromPretrained(mixed);
    const cpuLogits = (await cpu.forward({ inputIds: [[1, 200, 300, 17]] })).logits.toFloat32();
    expect(diffStats(q.logits[1]!, cpuLogits).rel).toBeLessThan(1e-3);
    expect(await cpu.generate({ inputIds: [[1, 200, 300, 17]], maxNewTokens: 16 })).toEqual(q.tokens[1]);
  });
});

describe("LoRA, prompt tuning and DPO on a quantized frozen base (WebGPU tape)", () => {
  let tape: DifferentiableBackend;
  let types = new Map<string, QuantType | "f32">();
  const q8 = () => path.join(tmp, "tl-q8.gguf"), f32 = () => path.join(tmp, "tl-f32.gguf");
  beforeAll(async () => {
    types = makeMixedGguf("test/fixtures/hf/tiny-llama", path.join(tmp, "tl-work.gguf"), q8(), f32(), () => "q8_0");
    tape = await createDifferentiableBackend("webgpu");
  });
  afterAll(() => tape?.dispose());

  it("the LoRA gradient on a Q8_0 base equals the one on its dequantized F32 twin within 1e-3 relative", async () => {
    // ffn_down's rows (176) are no multiple of 32, so it stays F32: the only matrices the backward transposes.
    const g = GgufFile.open(q8());
    const denseBytes = g.tensorNames().filter((n) => types.get(n) === "f32" && g.info(n).shape.length === 2).reduce((s, n) => s + g.info(n).byteSize, 0);
    g.close();
    expect(types.get("blk.0.ffn_down.weight")).toBe("f32");
    const gpu = (tape as WebGpuTapeBackend).gpu;
    const config = { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] };
    const grads: Float32Array[][] = [];
    for (const file of [q8(), f32()]) {
      const base = await LlamaForCausalLM.fromPretrained(file, { backend: tape });
      if (file === q8()) expect(base.model.layers[1]!.mlp.up_proj.weight.quant).toBe("q8_0");
      const r = rng(99);
      const probe = LoraModel.create(base, config);
      const values = new Map([...probe.modules].map(([m, p]) => [m, { A: randn(r, p.A.size, 0.3), B: randn(r, p.B.size, 0.3) }]));
      const lora = LoraModel.fromValues(base, config, values);
      const ids = [[1, 40, 77, 3, 250, 9, 31, 8], [1, 5, 6, 7, 8, 9, 10, 11]];
      const before = gpu.memory().weights;
      const out = await lora.forward({ inputIds: ids, labels: ids });
      await backprop(tape, out.loss!);
      // The backward made a transposed f32 copy of the F32 matrices only, none of a quantized W.
      if (file === q8()) expect(gpu.memory().weights - before).toBe(denseBytes);
      grads.push([...lora.modules.values()].flatMap((p) => [p.A.grad!.slice(), p.B.grad!.slice()]));
    }
    const [gq, gf] = grads as [Float32Array[], Float32Array[]];
    expect(gq.length).toBe(gf.length);
    gq.forEach((g, i) => {
      expect(Math.max(...Array.from(gf[i]!, Math.abs))).toBeGreaterThan(1e-4); // real gradients
      expect(diffStats(g, gf[i]!).rel).toBeLessThan(1e-3);
    });
  });

  it("prompt tuning: the soft prompt's gradient on the Q8_0 base (embedding table quantized too) equals the twin's within 1e-3 relative", async () => {
    const grads: Float32Array[] = [];
    for (const file of [q8(), f32()]) {
      const base = await LlamaForCausalLM.fromPretrained(file, { backend: tape });
      if (file === q8()) expect(base.model.embed_tokens.weight.quant).toBe("q8_0");
      const pm = PromptTuningModel.fromValues(base, { task_type: "CAUSAL_LM", num_virtual_tokens: 4 }, randn(rng(5), 4 * 64, 0.5));
      const ids = [[1, 40, 77, 3, 250, 9], [1, 5, 6, 7, 8, 9]];
      const out = await pm.forward({ inputIds: ids, labels: ids });
      await pm.backward(out.loss!);
      grads.push(pm.prompt.grad!.slice());
    }
    expect(Math.max(...Array.from(grads[1]!, Math.abs))).toBeGreaterThan(1e-4);
    expect(diffStats(grads[0]!, grads[1]!).rel).toBeLessThan(1e-3);
  });

  it("DPO (TRL's sigmoid fixture): loss and LoRA gradients on the Q8_0 base equal the twin's within 1e-3 relative", async () => {
    const dir = "test/fixtures/trl/dpo-sigmoid";
    const g = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as {
      beta: number; max_length: number; pad_token_id: number; modules: string[];
      lora: { r: number; lora_alpha: number; target_modules: string[] };
      pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
    };
    const st = SafetensorsFile.open(path.join(dir, "golden.safetensors"));
    const init = () => new Map(g.modules.map((m) => [m, { A: st.read(`init.${m}.lora_A`).toFloat32(), B: st.read(`init.${m}.lora_B`).toFloat32() }]));
    const examples = g.pairs.map((p) => ({ promptIds: p.prompt_ids, chosenIds: p.chosen_ids, rejectedIds: p.rejected_ids }));
    const opts = { beta: g.beta, lossType: "sigmoid" as const, maxLength: g.max_length, padTokenId: g.pad_token_id };
    const runs: { loss: number; grads: Float32Array[] }[] = [];
    for (const file of [q8(), f32()]) {
      const base = await LlamaForCausalLM.fromPretrained(file, { backend: tape });
      const lora = LoraModel.fromValues(base, g.lora, init());
      const r = await dpoLossAndGrad(lora, examples, opts);
      runs.push({ loss: r.loss, grads: [...lora.modules.values()].flatMap((p) => [p.A.grad!.slice(), p.B.grad!.slice()]) });
    }
    st.close();
    const [q, f] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(Math.abs(q.loss - f.loss) / Math.abs(f.loss)).toBeLessThan(1e-3);
    q.grads.forEach((gq, i) => {
      expect(Math.max(...Array.from(f.grads[i]!, Math.abs))).toBeGreaterThan(1e-5);
      expect(diffStats(gq, f.grads[i]!).rel).toBeLessThan(1e-3);
    });
  });
});
