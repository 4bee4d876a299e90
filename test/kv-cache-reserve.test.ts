// generate sizes the KV cache once for its whole length (forward's cacheCapacity → DynamicCache's reserve →
// Backend.kvAppend), as HF's StaticCache takes max_cache_len, but never more than 8 MiB per layer's keys
// up front: past that it grows as it fills. Sizing only: the logits are the same with or without it.
import { afterAll, describe, expect, it } from "vitest";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import type { CpuTensor } from "../lib/backend/cpu/cpu-backend.js";

describe("KV cache sized up front", () => {
  let model: LlamaForCausalLM | undefined;
  afterAll(() => model?.backend.dispose());

  it("holds the positions appended, in storage for cacheCapacity (capped at 8 MiB a tensor), same logits", async () => {
    model = await LlamaForCausalLM.fromPretrained("models/tiny-stories", { device: "cpu" });
    const c = model.config;
    const ids = [[1, 153, 429, 59, 1024, 338]];
    const capacity = async (cacheCapacity?: number) => {
      const out = await model!.forward({ inputIds: ids, cacheCapacity });
      const keys = out.pastKeyValues!.layer(c.num_hidden_layers - 1)!.keys as CpuTensor;
      expect(keys.shape).toEqual([1, c.num_key_value_heads, ids[0]!.length, c.hidden_size / c.num_attention_heads]);
      const logits = out.logits.toFloat32();
      out.pastKeyValues!.release();
      return { capacity: keys.capacity, logits };
    };
    const grown = await capacity();
    expect(grown.capacity).toBe(16); // the smallest growth step
    const sized = await capacity(300);
    expect(sized.capacity).toBe(300);
    expect(Array.from(sized.logits)).toEqual(Array.from(grown.logits));
    const perPosition = c.num_key_value_heads * (c.hidden_size / c.num_attention_heads) * 4;
    expect((await capacity(10_000_000)).capacity).toBe(Math.floor((8 * 1024 * 1024) / perPosition));
  });
});
