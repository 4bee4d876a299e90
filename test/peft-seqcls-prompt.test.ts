// SEQ_CLS prompt tuning against PEFT 0.21 (test/fixtures/peft/tiny-llama-seqcls-prompt, made by
// scripts/fixtures/make_prompt_seqcls.py): PEFT trains the classification head with the prompt
// (modules_to_save "score") and saves it as `base_model.score.weight`. Logits, loss, both gradients,
// 5 Adam steps and the final prompt + head: on the CPU to PEFT's precision, on WebGPU within 1e-3
// relative; adapters interchange both ways, head included.
import { describe, it, expect, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LlamaForSequenceClassification, setWarningSink } from "../lib/model/seq-cls.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { adamRun, closeTo, diffStats, intRows } from "./peft-helpers.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { createDifferentiableBackend, type DifferentiableBackend } from "../lib/autograd/differentiable.js";

const FIX = "test/fixtures/peft/tiny-llama-seqcls-prompt";
const BASE = "test/fixtures/hf/tiny-llama-seqcls";
const golden = SafetensorsFile.open(path.join(FIX, "golden.safetensors"));
const gjson = JSON.parse(fs.readFileSync(path.join(FIX, "golden.json"), "utf8")) as {
  loss_at_init: number; losses_per_step: number[]; adam: { lr: number; betas: [number, number]; eps: number };
};
const rows = (name: string) => intRows(golden, name);
const batch = { inputIds: rows("input_ids"), attentionMask: rows("attention_mask"), classLabels: golden.readInts("labels").values };
const ref = (name: string) => golden.read(name).toFloat32();

/** max |a − b|, and relative to max |b|. */

describe("SEQ_CLS prompt tuning (prompt + score head) matches PEFT", () => {
  setWarningSink(() => {}); // inputs_embeds + padding: the pooled-position warning is expected here
  const backends: DifferentiableBackend[] = [];
  afterAll(() => backends.forEach((b) => b.dispose()));

  for (const device of ["cpu", "webgpu"] as const) {
    const close = (d: { abs: number; rel: number }, cpuAbs: number) => closeTo(device, d, cpuAbs);

    it(`${device}: logits, loss, prompt and head gradients at init; 5 Adam steps; final prompt and head`, async () => {
      const be = await createDifferentiableBackend(device);
      backends.push(be);
      const base = await LlamaForSequenceClassification.fromPretrained(BASE, { backend: be });
      const fresh = () => PromptTuningModel.fromValues(base, { task_type: "SEQ_CLS", num_virtual_tokens: 4 }, ref("init_prompt_embeddings"),
        { score: ref("init_score_weight") });

      const pm = fresh();
      const out = await pm.forward(batch);
      expect(out.logits.shape).toEqual([3, 3]);
      close(diffStats(out.logits.toFloat32(), ref("logits_at_init")), 1e-4);
      close(diffStats([out.loss!.item()], [gjson.loss_at_init]), 1e-5);
      await pm.backward(out.loss!);
      close(diffStats(pm.prompt.grad!, ref("grad_prompt_at_init")), 1e-5);
      close(diffStats(pm.score!.grad!, ref("grad_score_at_init")), 1e-5);
      expect(Math.max(...Array.from(ref("grad_score_at_init"), Math.abs))).toBeGreaterThan(1e-2); // not vacuous

      const trained = fresh();
      const params = await trained.trainableParameters();
      expect(params).toHaveLength(2);
      const losses = await adamRun(params, gjson.adam, 5, () => trained.lossAndGrad(batch));
      close(diffStats(losses, gjson.losses_per_step), 1e-5);
      close(diffStats(trained.prompt.value, ref("final_prompt_embeddings")), 1e-4);
      close(diffStats(trained.score!.value, ref("final_score_weight")), 1e-4);
      // The base model's own head is untouched (the adapter trains its copy, as PEFT's modules_to_save).
      expect(Array.from((await be.read(base.score.weight)).toFloat32())).toEqual(Array.from(ref("init_score_weight")));
    });
  }

  it("PEFT's saved adapter loads with its trained head; ours saves the head under PEFT's key", async () => {
    const be = await createDifferentiableBackend("cpu");
    backends.push(be);
    const base = await LlamaForSequenceClassification.fromPretrained(BASE, { backend: be });
    const pm = await PromptTuningModel.fromPretrained(base, FIX);
    expect(pm.config.task_type).toBe("SEQ_CLS");
    expect(Array.from(pm.score!.value)).toEqual(Array.from(ref("final_score_weight")));
    expect(Array.from(pm.prompt.value)).toEqual(Array.from(ref("final_prompt_embeddings")));
    // The loaded head is what the forward uses: the logits differ from those with the base head.
    const withHead = (await pm.forward(batch)).logits.toFloat32();
    const baseHead = PromptTuningModel.fromValues(base, { task_type: "SEQ_CLS", num_virtual_tokens: 4 }, pm.prompt.value);
    expect(diffStats((await baseHead.forward(batch)).logits.toFloat32(), withHead).abs).toBeGreaterThan(1e-2);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seqcls-prompt-"));
    try {
      pm.savePretrained(dir);
      const st = SafetensorsFile.open(path.join(dir, "adapter_model.safetensors"));
      expect(st.names().sort()).toEqual(["base_model.score.weight", "prompt_embeddings"]);
      st.close();
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8")) as { modules_to_save: string[] };
      expect(cfg.modules_to_save).toContain("score");
      const back = await PromptTuningModel.fromPretrained(base, dir);
      expect(Array.from(back.score!.value)).toEqual(Array.from(pm.score!.value));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
