/**
 * The model on device "webgpu" against HF transformers' goldens (test/fixtures/hf)
 * and against the CPU backend on the f16 default model, in both f16 modes
 * (native shader-f16, and packed-in-u32: the H100 path). Every tensor forward
 * writes (logits, hidden states, attentions, past keys/values) within 1e-3
 * relative (‖Δ‖/‖ref‖ over unpadded query positions); greedy generations
 * token-identical.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { LlamaForSequenceClassification } from "../lib/model/seq-cls.js";
import { getBackend } from "../lib/backend/registry.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { HF, ROOT, golden } from "./core-helpers.js";
import { relErr } from "./gpu-reference.js";

const TOL = 1e-3;

/** ‖a − b‖ / ‖b‖ over entries whose query position (axis tAxis; batch on axis 0) is unpadded. */
function maskedRelErr(a: Tensor, b: Tensor, mask: number[][], tAxis: number): number {
  expect(a.shape).toEqual(b.shape);
  const x = a.toFloat32();
  const y = b.toFloat32();
  const strides = a.shape.map((_, i) => a.shape.slice(i + 1).reduce((p, d) => p * d, 1));
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const bi = Math.floor(i / strides[0]!) % a.shape[0]!;
    const ti = Math.floor(i / strides[tAxis]!) % a.shape[tAxis]!;
    if (mask[bi]![ti] === 0) continue;
    xs.push(x[i]!);
    ys.push(y[i]!);
  }
  return relErr(xs, ys);
}

for (const f16 of ["native", "packed"] as const) {
  describe(`webgpu parity (f16 ${f16})`, () => {
    let be: WebGpuBackend;
    beforeAll(async () => {
      be = await createWebGpuBackend({ f16 });
    });
    afterAll(() => be?.dispose());

    for (const name of ["tiny-llama", "tiny-llama-gqa-llama3rope"]) {
      describe(name, () => {
        const g = golden(name);
        let model: LlamaForCausalLM;
        beforeAll(async () => {
          model = await LlamaForCausalLM.fromPretrained(path.join(HF, name), { backend: be });
        });

        for (const caseName of Object.keys(g.json.cases)) {
          it(`${caseName}: logits, hidden states, attentions, past keys/values within 1e-3`, async () => {
            const c = g.json.cases[caseName]!;
            const out = await model.forward({
              inputIds: c.input_ids, attentionMask: c.attention_mask, outputHiddenStates: true, outputAttentions: true,
            });
            const ref = (k: string) => g.tensors.read(`${caseName}.${k}`);
            const L = model.config.num_hidden_layers;
            const m = c.attention_mask;
            expect(maskedRelErr(out.logits, ref("logits"), m, 1)).toBeLessThan(TOL);
            expect(out.hiddenStates).toHaveLength(L + 1);
            for (let i = 0; i <= L; i++) {
              expect(maskedRelErr(out.hiddenStates![i]!, ref(`hidden_states.${i}`), m, 1), `hidden_states.${i}`).toBeLessThan(TOL);
            }
            expect(out.attentions).toHaveLength(L);
            const kv = await out.pastKeyValues!.toHost();
            for (let i = 0; i < L; i++) {
              expect(maskedRelErr(out.attentions![i]!, ref(`attentions.${i}`), m, 2), `attentions.${i}`).toBeLessThan(TOL);
              expect(maskedRelErr(kv.keys[i]!, ref(`past_key.${i}`), m, 2), `past_key.${i}`).toBeLessThan(TOL);
              expect(maskedRelErr(kv.values[i]!, ref(`past_value.${i}`), m, 2), `past_value.${i}`).toBeLessThan(TOL);
            }
            out.pastKeyValues!.release();
          });
        }

        it("prefill in two chunks through the KV cache matches the one-pass logits", async () => {
          const ids = g.json.cases.single!.input_ids[0]!;
          const cut = Math.floor(ids.length / 2);
          const first = await model.forward({ inputIds: [ids.slice(0, cut)] });
          const second = await model.forward({ inputIds: [ids.slice(cut)], pastKeyValues: first.pastKeyValues });
          const V = model.config.vocab_size;
          const tail = g.tensors.read("single.logits").toFloat32().subarray(cut * V);
          expect(relErr(second.logits.toFloat32(), tail)).toBeLessThan(TOL);
          second.pastKeyValues!.release();
        });

        g.json.generate.forEach((gen, i) => {
          const n = gen.greedy.length - gen.prompt.length;
          it(`prompt ${i}: greedy and repetition_penalty 1.3 generations are token-identical to HF`, async () => {
            expect((await model.generate({ inputIds: [gen.prompt], maxNewTokens: n, doSample: false }))[0]).toEqual(gen.greedy);
            const rp = await model.generate({ inputIds: [gen.prompt], maxNewTokens: n, doSample: false, repetitionPenalty: 1.3 });
            expect(rp[0]).toEqual(gen["greedy_repetition_penalty_1.3"]);
          });
        });
      });
    }

    it("tiny-llama-seqcls: pooled logits (right padding) within 1e-3", async () => {
      const g = golden("tiny-llama-seqcls").json as unknown as { input_ids: number[][]; attention_mask: number[][]; logits: number[][] };
      const model = await LlamaForSequenceClassification.fromPretrained(path.join(HF, "tiny-llama-seqcls"), { backend: be });
      const out = await model.forward({ inputIds: g.input_ids, attentionMask: g.attention_mask });
      expect(out.logits.shape).toEqual([3, 3]);
      expect(relErr(out.logits.toFloat32(), g.logits.flat())).toBeLessThan(TOL);
    });

    it("default model (f16 weights stay 16-bit on the GPU): logits and a greedy continuation match the CPU backend", async () => {
      const dir = path.join(ROOT, "models", "tiny-stories");
      const gpuModel = await LlamaForCausalLM.fromPretrained(dir, { backend: be });
      const cpuModel = await LlamaForCausalLM.fromPretrained(dir, { backend: await getBackend("cpu") });
      // 5.4M parameters: 10.8 MB in f16 (as on disk), 21.6 MB if widened to f32.
      expect(gpuModel.model.layers[0]!.self_attn.q_proj.weight.dtype).toBe("f16");
      const fileBytes = fs.statSync(path.join(dir, "model.safetensors")).size;
      // Counted from the model's own GPU tensors, not as a change in the allocator's total: earlier
      // tests' models may be garbage-collected (and their buffers freed) while this one loads.
      const bytesPer = { f32: 4, f16: 2, bf16: 2 } as const;
      const onGpu = gpuModel.parameters().reduce((s, p) => {
        const t = p.get();
        return s + t.shape.reduce((a, b) => a * b, 1) * bytesPer[t.dtype];
      }, 0);
      expect(onGpu).toBeLessThanOrEqual(fileBytes);
      expect(onGpu).toBeGreaterThan(fileBytes * 0.95);
      expect(be.memory().weights).toBeGreaterThanOrEqual(onGpu);
      const prompt = [[1, 9038, 2501, 263, 931], [1, 450, 2217, 11203, 471]].map((r) => r.map((t) => t % 2048));
      const [a, b] = await Promise.all([gpuModel.forward({ inputIds: prompt }), cpuModel.forward({ inputIds: prompt })]);
      expect(relErr(a.logits.toFloat32(), b.logits.toFloat32())).toBeLessThan(TOL);
      a.pastKeyValues?.release();
      const gpuSeq = await gpuModel.generate({ inputIds: [prompt[0]!], maxNewTokens: 16, doSample: false });
      const cpuSeq = await cpuModel.generate({ inputIds: [prompt[0]!], maxNewTokens: 16, doSample: false });
      expect(gpuSeq).toEqual(cpuSeq);
      // Past 256 positions decode attention splits its keys and o_proj's GEMV merges the splits: the
      // decode steps' scores still match the CPU's, and so do the greedy tokens.
      const long = [Array.from({ length: 300 }, (_, i) => 1 + ((i * 37) % 2000))];
      const run = (m: LlamaForCausalLM) => m.generate({ inputIds: long, maxNewTokens: 6, doSample: false, returnDictInGenerate: true, outputScores: true });
      const [g, c] = [await run(gpuModel), await run(cpuModel)];
      expect(g.sequences).toEqual(c.sequences);
      g.scores!.forEach((step, i) => expect(relErr(step.toFloat32(), c.scores![i]!.toFloat32())).toBeLessThan(TOL));
    });
  });
}
