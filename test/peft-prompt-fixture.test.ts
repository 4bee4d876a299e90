// Prompt tuning against PEFT 0.21's golden run (test/fixtures/peft/tiny-llama-prompt-tuning):
// the unchanged model code on the autograd tape backend, PEFT's forward, torch's Adam.
import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { backward } from "../lib/autograd/var.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { adamRun } from "./peft-helpers.js";
import { loadPromptAdapter } from "../lib/peft/prompt-io.js";

const FIX = "test/fixtures/peft/tiny-llama-prompt-tuning";
const BASE = "test/fixtures/hf/tiny-llama";

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function rows(x: { values: number[]; shape: readonly number[] }): number[][] {
  const [B, T] = x.shape as [number, number];
  return Array.from({ length: B }, (_, b) => x.values.slice(b * T, (b + 1) * T));
}

describe("prompt tuning matches PEFT on tiny-llama", () => {
  let golden: SafetensorsFile;
  let gjson: { loss_at_init: number; losses_per_step: number[]; adam: { lr: number; betas: [number, number]; eps: number } };
  let model: LlamaForCausalLM;
  let batch: { inputIds: number[][]; labels: number[][] };

  beforeAll(async () => {
    golden = SafetensorsFile.open(path.join(FIX, "golden.safetensors"));
    gjson = JSON.parse(fs.readFileSync(path.join(FIX, "golden.json"), "utf8"));
    model = await LlamaForCausalLM.fromPretrained(BASE, { backend: await TapeBackend.create() });
    batch = { inputIds: rows(golden.readInts("input_ids")), labels: rows(golden.readInts("labels")) };
  });

  const fresh = () =>
    PromptTuningModel.fromValues(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 8 }, golden.read("init_prompt_embeddings").toFloat32());

  it("logits, loss and gradient at init", async () => {
    const pm = fresh();
    const out = await pm.forward(batch);
    expect(out.logits.shape).toEqual([2, 20, 512]);
    expect(maxAbsDiff(out.logits.toFloat32(), golden.read("logits_at_init").toFloat32())).toBeLessThan(1e-4);
    expect(Math.abs(out.loss!.item() - gjson.loss_at_init)).toBeLessThan(1e-5);
    backward(out.loss!);
    const grad = golden.read("grad_at_init").toFloat32();
    expect(maxAbsDiff(pm.prompt.grad!, grad)).toBeLessThan(1e-5);
    // Not vacuous: the gradient is far from zero at this tolerance.
    expect(Math.max(...Array.from(grad, Math.abs))).toBeGreaterThan(1e-2);
  });

  it("the label-positions-only training loss equals the full forward's", async () => {
    const pm = fresh();
    const loss = await pm.loss(batch);
    expect(Math.abs(loss.item() - gjson.loss_at_init)).toBeLessThan(1e-5);
    backward(loss);
    expect(maxAbsDiff(pm.prompt.grad!, golden.read("grad_at_init").toFloat32())).toBeLessThan(1e-5);
  });

  it("10 Adam steps: every loss and the final prompt", async () => {
    const pm = fresh();
    const { lr, betas, eps } = gjson.adam;
    const losses = await adamRun([pm.prompt], { lr, betas, eps }, 10, () => pm.lossAndGrad(batch));
    expect(maxAbsDiff(losses, gjson.losses_per_step)).toBeLessThan(1e-5);
    const final = golden.read("final_prompt_embeddings").toFloat32();
    expect(maxAbsDiff(pm.prompt.value, final)).toBeLessThan(1e-4);
    // PEFT saved the same trained prompt as its adapter.
    expect(maxAbsDiff(loadPromptAdapter(FIX).prompt, final)).toBe(0);
  });

  it("PEFT's saved adapter loads in ours and gives PEFT's prompt", async () => {
    const pm = await PromptTuningModel.fromPretrained(model, FIX);
    expect(pm.config.num_virtual_tokens).toBe(8);
    expect(pm.config.token_dim).toBe(64);
    expect(pm.config.task_type).toBe("CAUSAL_LM");
    expect(pm.prompt.shape).toEqual([8, 64]);
    expect(maxAbsDiff(pm.prompt.value, golden.read("final_prompt_embeddings").toFloat32())).toBe(0);
  });

  it("our saved adapter has PEFT's layout (config fields, key, dtype, shape) and loads back", async () => {
    const pm = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 8, prompt_tuning_init: "RANDOM" }, { seed: 3 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "peft-pt-"));
    try {
      pm.savePretrained(dir, { baseModelNameOrPath: "../../hf/tiny-llama" });
      const ours = JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8"));
      const peft = JSON.parse(fs.readFileSync(path.join(FIX, "adapter_config.json"), "utf8"));
      expect(Object.keys(ours).sort()).toEqual(Object.keys(peft).sort());
      expect(ours).toEqual(peft);
      const st = SafetensorsFile.open(path.join(dir, "adapter_model.safetensors"));
      const ref = SafetensorsFile.open(path.join(FIX, "adapter_model.safetensors"));
      expect(st.names()).toEqual(["prompt_embeddings"]);
      expect(st.info("prompt_embeddings").dtype).toBe(ref.info("prompt_embeddings").dtype);
      expect(st.info("prompt_embeddings").shape).toEqual(ref.info("prompt_embeddings").shape);
      expect(st.metadata).toEqual(ref.metadata);
      st.close(); ref.close();
      const back = await PromptTuningModel.fromPretrained(model, dir);
      expect(Array.from(back.prompt.value)).toEqual(Array.from(pm.prompt.value));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
