// The CPU tape reads a model's weights straight into the wasm kernels' memory (TapeBackend.hostBytes), so a
// model is not held twice. The engine frees lent room once the view it lent is collected, while the loader
// keeps only its own typed view of those bytes: unless the room is adopted when the weight is uploaded, a
// garbage collection frees it under the live weight, and the next activations overwrite the weights
// (seen: notebook 11's DPO step 1 no longer at ln 2). Here: load, collect, compute on the freed room, and
// the tape's logits must still equal a plain CPU model's.
import { afterAll, describe, expect, it } from "vitest";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { createDifferentiableBackend, type DifferentiableBackend } from "../lib/autograd/differentiable.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";

const MODEL = "models/tiny-stories";

async function collect(): Promise<void> {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10)); // FinalizationRegistry callbacks run in a later task
  }
}

describe("weights the CPU tape read into the kernels' memory", () => {
  const backends: { dispose(): void }[] = [];
  afterAll(() => backends.forEach((b) => b.dispose()));

  it("stay the model's after a garbage collection and more work on that memory", async () => {
    const tape: DifferentiableBackend = await createDifferentiableBackend("cpu");
    backends.push(tape);
    const model = await LlamaForCausalLM.fromPretrained(MODEL, { backend: tape });
    const plain = await LlamaForCausalLM.fromPretrained(MODEL, { device: "cpu" });
    backends.push(plain.backend);
    await collect();
    const ids = Array.from({ length: 4 }, (_, b) => Array.from({ length: 48 }, (_, t) => 1 + ((b * 131 + t * 37) % 2000)));
    for (let i = 0; i < 3; i++) await model.forward({ inputIds: ids }); // activations take whatever room is free
    const ours = (await model.forward({ inputIds: ids })).logits.toFloat32();
    const ref = (await plain.forward({ inputIds: ids })).logits.toFloat32();
    let worst = 0, scale = 0;
    for (let i = 0; i < ref.length; i++) {
      worst = Math.max(worst, Math.abs(ours[i]! - ref[i]!));
      scale = Math.max(scale, Math.abs(ref[i]!));
    }
    expect(scale).toBeGreaterThan(1);
    expect(worst).toBeLessThan(1e-4 * scale);
  });
});
