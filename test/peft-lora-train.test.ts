// LoRA training against PEFT 0.21 (test/fixtures/peft/tiny-llama-lora-train, made by
// scripts/fixtures/make_lora_train.py: r 4, alpha 8, q_proj/v_proj/down_proj, B started non-zero
// so both matrices have gradients): logits and loss at init, every A and B gradient, 5 Adam steps,
// the final matrices — on the CPU tape to PEFT's precision and on WebGPU within 1e-3 relative.
// Saved adapters have PEFT's keys and load back through readLoraAdapter/loadLora.
import { describe, it, expect, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { adamRun, closeTo, diffStats, intRows } from "./peft-helpers.js";
import { LoraModel } from "../lib/peft/lora-train.js";
import { loadLora, readLoraAdapter } from "../lib/peft/lora.js";
import { backprop, createDifferentiableBackend, type DifferentiableBackend } from "../lib/autograd/differentiable.js";

const FIX = "test/fixtures/peft/tiny-llama-lora-train";
const BASE = "test/fixtures/hf/tiny-llama";
const golden = SafetensorsFile.open(path.join(FIX, "golden.safetensors"));
const gjson = JSON.parse(fs.readFileSync(path.join(FIX, "golden.json"), "utf8")) as {
  modules: string[]; loss_at_init: number; losses_per_step: number[]; adam: { lr: number; betas: [number, number]; eps: number };
};
const rows = (name: string) => intRows(golden, name);
const batch = { inputIds: rows("input_ids"), attentionMask: rows("attention_mask"), labels: rows("labels") };
const ref = (name: string) => golden.read(name).toFloat32();
const CONFIG = { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] };
const initValues = () => new Map(gjson.modules.map((m) => [m, { A: ref(`init.${m}.lora_A`), B: ref(`init.${m}.lora_B`) }]));


describe("LoRA training matches PEFT", () => {
  const backends: DifferentiableBackend[] = [];
  afterAll(() => backends.forEach((b) => b.dispose()));

  for (const device of ["cpu", "webgpu"] as const) {
    const close = (d: { abs: number; rel: number }, cpuAbs: number) => closeTo(device, d, cpuAbs);

    it(`${device}: logits, loss and every A/B gradient at init; 5 Adam steps; final matrices`, async () => {
      const be = await createDifferentiableBackend(device);
      backends.push(be);
      const base = await LlamaForCausalLM.fromPretrained(BASE, { backend: be });
      const lora = LoraModel.fromValues(base, CONFIG, initValues());
      expect([...lora.modules.keys()].sort()).toEqual([...gjson.modules].sort());

      const out = await lora.forward(batch);
      close(diffStats(out.logits.toFloat32(), ref("logits_at_init")), 1e-4);
      close(diffStats([out.loss!.item()], [gjson.loss_at_init]), 1e-5);
      await backprop(be, out.loss!);
      for (const [m, { A, B }] of lora.modules) {
        close(diffStats(A.grad!, ref(`grad.${m}.lora_A`)), 1e-5);
        close(diffStats(B.grad!, ref(`grad.${m}.lora_B`)), 1e-5);
      }
      // Without the adapter the base model's logits are different (the low-rank path is really used) …
      const plain = await base.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask });
      expect(diffStats(plain.logits.toFloat32(), ref("logits_at_init")).abs).toBeGreaterThan(1e-3);

      const trained = LoraModel.fromValues(base, CONFIG, initValues());
      const losses = await adamRun(trained.parameters(), gjson.adam, 5, () => trained.lossAndGrad(batch));
      close(diffStats(losses, gjson.losses_per_step), 1e-5);
      for (const [m, { A, B }] of trained.modules) {
        close(diffStats(A.value, ref(`final.${m}.lora_A`)), 1e-4);
        close(diffStats(B.value, ref(`final.${m}.lora_B`)), 1e-4);
      }
      // … and the Linears are plain again after each forward.
      expect(base.model.layers[0]!.self_attn.q_proj.lora).toBeUndefined();
    });
  }

  it("every Linear of a GQA model (k/v with fewer heads; its lm_head is tied, so not a target): the live low-rank path equals the merged adapter", async () => {
    const be = await createDifferentiableBackend("cpu");
    backends.push(be);
    const base = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama-gqa-llama3rope", { backend: be });
    const targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"];
    let seed = 7;
    const rand = (n: number) => Float32Array.from({ length: n }, () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.2);
    const probe = LoraModel.create(base, { r: 2, lora_alpha: 6, target_modules: targets });
    const values = new Map([...probe.modules].map(([m, p]) => [m, { A: rand(p.A.size), B: rand(p.B.size) }]));
    const lora = LoraModel.fromValues(base, { r: 2, lora_alpha: 6, target_modules: targets }, values);
    expect(base.config.tie_word_embeddings).toBe(true);
    expect(lora.modules.size).toBe(base.config.num_hidden_layers * 7);
    const ids = [[1, 40, 77, 3, 250, 9]];
    const live = (await lora.forward({ inputIds: ids }, { grad: false })).logits.toFloat32();
    const loaded = await loadLora(base, lora.toAdapter());
    const merged = (await base.forward({ inputIds: ids })).logits.toFloat32();
    loaded.unload();
    const plain = (await base.forward({ inputIds: ids })).logits.toFloat32();
    expect(diffStats(live, merged).abs).toBeLessThan(1e-4);
    expect(diffStats(live, plain).abs).toBeGreaterThan(1e-2); // the adapter changes the function

    // An untied lm_head is a target like any other Linear.
    const untied = await LlamaForCausalLM.fromPretrained(BASE, { backend: be });
    const head = LoraModel.create(untied, { r: 2, lora_alpha: 4, target_modules: ["lm_head", "up_proj"] });
    expect([...head.modules.keys()]).toContain("lm_head");
    const headValues = new Map([...head.modules].map(([m, p]) => [m, { A: rand(p.A.size), B: rand(p.B.size) }]));
    const headLora = LoraModel.fromValues(untied, { r: 2, lora_alpha: 4, target_modules: ["lm_head", "up_proj"] }, headValues);
    const headLive = (await headLora.forward({ inputIds: ids }, { grad: false })).logits.toFloat32();
    const headLoaded = await loadLora(untied, headLora.toAdapter());
    const headMerged = (await untied.forward({ inputIds: ids })).logits.toFloat32();
    headLoaded.unload();
    expect(diffStats(headLive, headMerged).abs).toBeLessThan(1e-4);
  });

  it("create() starts as PEFT does (B = 0: the output is the base model's); saved adapters have PEFT's keys and load back", async () => {
    const be = await createDifferentiableBackend("cpu");
    backends.push(be);
    const base = await LlamaForCausalLM.fromPretrained(BASE, { backend: be });
    const fresh = LoraModel.create(base, CONFIG, { seed: 1 });
    const [withLora, plain] = [await fresh.forward(batch, { grad: false }), await base.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask })];
    expect(diffStats(withLora.logits.toFloat32(), plain.logits.toFloat32()).abs).toBe(0);
    const bound = 1 / Math.sqrt(base.config.hidden_size);
    const A0 = fresh.modules.get("model.layers.0.self_attn.q_proj")!.A.value;
    expect(Math.max(...Array.from(A0, Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...Array.from(A0, Math.abs))).toBeGreaterThan(bound / 2);

    const trained = LoraModel.fromValues(base, CONFIG, new Map(gjson.modules.map((m) => [m, { A: ref(`final.${m}.lora_A`), B: ref(`final.${m}.lora_B`) }])));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lora-train-"));
    try {
      trained.savePretrained(dir, { baseModelNameOrPath: "../../hf/tiny-llama" });
      const ours = SafetensorsFile.open(path.join(dir, "adapter_model.safetensors"));
      const peft = SafetensorsFile.open(path.join(FIX, "adapter_model.safetensors"));
      expect(ours.names().sort()).toEqual(peft.names().sort());
      for (const n of peft.names()) expect(diffStats(ours.read(n).toFloat32(), peft.read(n).toFloat32()).abs).toBe(0);
      ours.close();
      peft.close();
      // Our adapter in the merged inference path gives the trained LoRA forward's logits.
      const live = (await trained.forward(batch, { grad: false })).logits.toFloat32();
      const adapter = readLoraAdapter(dir);
      const loaded = await loadLora(base, adapter);
      const merged = (await base.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask })).logits.toFloat32();
      loaded.unload();
      expect(diffStats(merged, live).abs).toBeLessThan(1e-4);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
