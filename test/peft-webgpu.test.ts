// Prompt-tuned inference on WebGPU (Dawn; lavapipe on CI): PEFT's forward with the fixture's initial
// prompt gives PEFT's logits and loss within 1e-3 relative on the plain (inference) backend. Training on
// WebGPU, through the differentiable backend, is in peft-webgpu-train.test.ts.
import { describe, it, expect, afterAll } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { crossEntropy, shiftedTargets } from "../lib/autograd/loss.js";
import { Var } from "../lib/autograd/var.js";

const FIX = "test/fixtures/peft/tiny-llama-prompt-tuning";

describe("prompt tuning forward on WebGPU", () => {
  let model: LlamaForCausalLM | undefined;
  afterAll(() => model?.backend.dispose());

  it("logits and loss at init match PEFT within 1e-3 relative", async () => {
    const g = SafetensorsFile.open(path.join(FIX, "golden.safetensors"));
    const { loss_at_init } = JSON.parse(fs.readFileSync(path.join(FIX, "golden.json"), "utf8")) as { loss_at_init: number };
    const rows = (x: { values: number[]; shape: readonly number[] }) =>
      Array.from({ length: x.shape[0]! }, (_, b) => x.values.slice(b * x.shape[1]!, (b + 1) * x.shape[1]!));
    model = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama", { device: "webgpu" });
    const pm = PromptTuningModel.fromValues(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 8 }, g.read("init_prompt_embeddings").toFloat32());
    const out = await pm.forward({ inputIds: rows(g.readInts("input_ids")) });
    const ref = g.read("logits_at_init").toFloat32(), got = out.logits.toFloat32();
    let maxDiff = 0, maxRef = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!));
      maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    }
    expect(maxDiff / maxRef).toBeLessThan(1e-3);
    const labels = pm.prefixLabels(rows(g.readInts("labels")));
    const loss = crossEntropy(Var.constant(got, out.logits.shape), shiftedTargets(labels, out.logits.shape[1]!)).item();
    expect(Math.abs(loss - loss_at_init) / loss_at_init).toBeLessThan(1e-3);
  });
});
