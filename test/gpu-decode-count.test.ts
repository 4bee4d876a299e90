/**
 * What one greedy decode token of `generate` on WebGPU asks of Dawn, counted
 * from outside our code (bench/dawn-count.ts wraps Dawn's own
 * dispatchWorkgroups*, queue.submit and getMappedRange): the whole step is one
 * submit, only the chosen token id comes back (4 bytes per sequence), and the
 * dispatch count stays at what the fused kernels reach: 52 on the default
 * model (the bound), 8 per layer (1/rms;
 * q/k/v GEMV normalizing its input; q rope + k rope/append + v append;
 * attention; o_proj + residual; 1/rms; gate/up + SwiGLU; down_proj +
 * residual) and 4 per token (embedding, 1/rms, lm_head, the token choice).
 * It was 111 with the logits read back and every op its own dispatch, 94 with
 * q/k/v and gate/up as one product each, 39 with the 1/rms reduction repeated
 * in every GEMV workgroup (2.3× slower decode on lavapipe). The window
 * crosses the lengths where a growing cache would reallocate (33 and 65
 * positions): generate sizes the cache once for its whole length, so no
 * step pays the 6 extra copies a growth cost (52.25 per token here before).
 * Past 256 positions decode attention splits its keys over several
 * workgroups and o_proj's GEMV merges the splits as it reads them (a
 * separate combine was 58 per token there). `npm run bench -- gpu` prints the same row.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { installDawnCounter, perDecodeToken, type DawnCounter } from "../bench/dawn-count.js";

describe("greedy decode on webgpu, counted on Dawn", () => {
  let model: LlamaForCausalLM;
  let counter: DawnCounter;
  beforeAll(async () => {
    counter = await installDawnCounter();
    model = await LlamaForCausalLM.fromPretrained(path.join("models", "tiny-stories"), { device: "webgpu" });
  });
  afterAll(() => {
    counter?.uninstall();
    model?.backend.dispose();
  });

  it("≤ 1 submit, ≤ 16 bytes mapped back and ≤ 52 dispatches per token", async () => {
    const inputIds = [[1, 153, 429, 59, 1024, 338]];
    const run = (n: number) => model.generate({ inputIds, maxNewTokens: n, doSample: false, eosTokenId: null });
    await run(2); // pipelines compiled outside the count
    const per = await perDecodeToken(counter, run, 12, 60); // 18..66 positions
    expect(per.submits).toBeLessThanOrEqual(1);
    expect(per.mappedBytes).toBeLessThanOrEqual(16);
    expect(per.mappedBytes).toBeGreaterThan(0); // the id itself does come back through getMappedRange
    expect(per.dispatches).toBeLessThanOrEqual(6 * 8 + 4);
    expect(per.dispatches).toBeGreaterThan(6 * 5); // the counter sees the real dispatches
  });

  it("past 256 positions (split-K attention) still ≤ 52 dispatches per token: o_proj's GEMV merges the splits", async () => {
    const inputIds = [Array.from({ length: 300 }, (_, i) => 1 + ((i * 37) % 2000))];
    const run = (n: number) => model.generate({ inputIds, maxNewTokens: n, doSample: false, eosTokenId: null });
    const per = await perDecodeToken(counter, run, 4, 16); // 304..316 positions: two key splits
    expect(per.submits).toBeLessThanOrEqual(1);
    expect(per.dispatches).toBeLessThanOrEqual(6 * 8 + 4);
  });

  it("a Q4_0 model (blocks kept on the GPU) decodes through the same fused GEMVs: ≤ 52 dispatches per token", async () => {
    const quantized = await LlamaForCausalLM.fromPretrained(path.join("models", "tiny-stories"), { device: "webgpu", quantize: "q4_0" });
    try {
      const inputIds = [[1, 153, 429, 59, 1024, 338]];
      const run = (n: number) => quantized.generate({ inputIds, maxNewTokens: n, doSample: false, eosTokenId: null });
      await run(2);
      const per = await perDecodeToken(counter, run, 4, 16);
      expect(per.submits).toBeLessThanOrEqual(1);
      expect(per.dispatches).toBeLessThanOrEqual(6 * 8 + 4);
    } finally {
      for (const p of quantized.parameters()) quantized.backend.release(p.get()); // the backend is shared with `model`
    }
  });

  it("the same count sees a whole logits row when the host picks (scores asked for)", async () => {
    const inputIds = [[1, 153, 429]];
    const run = (n: number) => model.generate({ inputIds, maxNewTokens: n, returnDictInGenerate: true, outputScores: true });
    const per = await perDecodeToken(counter, run, 4, 8);
    expect(per.mappedBytes).toBeGreaterThanOrEqual(2048 * 4);
  });
});
