/**
 * WebGPU device acquisition and lifetime: the adapter is the real Vulkan path
 * (Mesa lavapipe in CI, or a hardware GPU), never a silent CPU fallback; a
 * missing adapter names the Vulkan setup step; device loss and use after
 * dispose give clear errors; one decode token is one command-buffer submit;
 * node exits by itself after dispose.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { classifyAdapter, createWebGpuBackend, VULKAN_SETUP_HINT, type WebGpuBackend } from "../gpu/index.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { LlamaError } from "../lib/errors.js";
import { ROOT } from "./core-helpers.js";

describe("WebGPU device", () => {
  let be: WebGpuBackend;
  beforeAll(async () => {
    be = await createWebGpuBackend();
  });
  afterAll(() => be?.dispose());

  it("is the Vulkan GPU path (lavapipe or hardware), not SwiftShader or Dawn's null backend", async () => {
    const kind = classifyAdapter(be.adapter);
    expect(["lavapipe", "gpu"]).toContain(kind);
    // LLAMA_TS_EXPECT_ADAPTER pins the adapter a CI runner must get (e.g. "llvmpipe").
    const expected = process.env["LLAMA_TS_EXPECT_ADAPTER"];
    if (expected) expect(`${be.adapter.description} ${be.adapter.device}`.toLowerCase()).toContain(expected.toLowerCase());
    // Forcing Dawn's Vulkan backend finds the same adapter: the default was Vulkan too.
    const vk = await createWebGpuBackend({ dawnFlags: ["backend=vulkan"] });
    try {
      expect(vk.adapter.device).toBe(be.adapter.device);
    } finally {
      vk.dispose();
    }
    expect(be.description).toContain(be.adapter.description || be.adapter.device);
  });

  it("raises the storage-binding limit to the adapter's and reports features", () => {
    expect(be.limits["maxStorageBufferBindingSize"]).toBeGreaterThan(128 * 1024 * 1024 - 1);
    expect(be.features).toContain("shader-f16"); // lavapipe and most GPUs have it; the packed path is tested explicitly
  });

  it("a missing adapter is a LlamaError naming the Vulkan setup step", async () => {
    const err = await createWebGpuBackend({ dawnFlags: ["adapter=no-such-adapter"] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlamaError);
    expect((err as Error).message).toContain("scripts/setup-system.sh");
    expect(VULKAN_SETUP_HINT).toContain("mesa-vulkan-drivers");
  });

  it("an unknown LLAMA_TS_WEBGPU_F16 value is refused", async () => {
    process.env["LLAMA_TS_WEBGPU_F16"] = "half";
    try {
      await expect(createWebGpuBackend()).rejects.toThrow(/LLAMA_TS_WEBGPU_F16: expected "native" or "packed", got "half"/);
    } finally {
      delete process.env["LLAMA_TS_WEBGPU_F16"];
    }
  });

  it("device loss and use after dispose are clear errors", async () => {
    const lost = await createWebGpuBackend();
    const x = lost.upload(Tensor.from([1, 2, 3], [3]));
    lost.runtime.ctx.device.destroy(); // as a driver reset would
    await lost.runtime.ctx.device.lost;
    expect(() => lost.scale(x, 2)).toThrow(/WebGPU device lost/);
    lost.dispose();
    const gone = await createWebGpuBackend();
    const y = gone.upload(Tensor.from([1], [1]));
    gone.dispose();
    expect(() => gone.scale(y, 2)).toThrow(/released/);
  });

  it("a decode step of the default model is one command-buffer submit that reads back only the logits", async () => {
    const model = await LlamaForCausalLM.fromPretrained(path.join(ROOT, "models", "tiny-stories"), { backend: be });
    const first = await model.forward({ inputIds: [[1, 200, 300, 400]], logitsToKeep: 1 });
    const before = be.counters;
    const next = await model.forward({ inputIds: [[500]], pastKeyValues: first.pastKeyValues, logitsToKeep: 1 });
    const after = be.counters;
    expect(next.logits.shape).toEqual([1, 1, 2048]);
    expect(after.submits - before.submits).toBe(1);
    // 6 layers × (1/rms, q/k/v GEMV normalizing its input, q rope + k rope/append + v append, attention,
    // o_proj + add, 1/rms, gate/up GEMV + silu·mul, down_proj + add), then the embedding, 1/rms and lm_head
    expect(after.dispatches - before.dispatches).toBe(6 * 8 + 3);
    next.pastKeyValues!.release();
  });

  it.each(["dispose", "no-dispose", "gc-after-dispose"])("node exits by itself (%s), with Dawn's objects finalized and its driver threads stopped before exit", (mode) => {
    const res = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "test", "gpu-exit-check.ts"), mode], {
      cwd: ROOT, encoding: "utf8", timeout: 60_000,
    });
    expect(res.signal, "the process had to be killed: it did not exit").toBeNull();
    expect(res.status).toBe(0);
    const lines = res.stdout.trim().split("\n");
    expect(lines[0]).toBe("2,4,6,8");
    // lavapipe runs llvmpipe-N and disk$N threads while a device exists; none may outlive the teardown.
    if (process.platform === "linux") expect(lines[1]).toMatch(/^threads with the device: \S/);
    // instance, adapter, device, the pool's buffers, the parameter block, the readback buffer, and the
    // scale kernel's module, pipeline, layout and bind group: all finalized before node's exit
    expect(Number(/^Dawn objects with the device: (\d+)$/.exec(lines[2]!)?.[1])).toBeGreaterThanOrEqual(10);
    expect(lines[3]).toBe("threads at exit: none");
    expect(lines[4]).toBe("Dawn objects at exit: 0");
  });

  it("the count of Dawn objects at exit sees one that a script kept", () => {
    const res = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "test", "gpu-exit-check.ts"), "keep-device"], {
      cwd: ROOT, encoding: "utf8", timeout: 60_000,
    });
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout.trim().split("\n")[4]).toBe("Dawn objects at exit: 1");
  });
});
