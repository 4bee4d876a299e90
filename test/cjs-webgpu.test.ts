/**
 * `require("llama-ts")` on WebGPU: a CommonJS program gets the same classes
 * the WebGPU backend (dist/gpu, ESM) uses, so `instanceof Tensor` holds across
 * the boundary and hooks work. (Before, a CommonJS bundle carried its own
 * Tensor class: a hook returning its input failed "expected a Tensor".)
 *
 * The program runs in a plain node child process (no vitest module graph),
 * resolving "llama-ts" through package.json's exports from the repo root, as
 * an installed package would be. Needs `node scripts/build.mjs` first.
 */
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

// CommonJS (node -e): every hook point gets a hook that returns its input; a second run ablates one head.
const PROGRAM = String.raw`
const L = require("llama-ts");
(async () => {
  const model = await L.LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama", { device: "webgpu" });
  const ids = [[1, 15043, 29892, 590, 1024, 338, 29871, 13, 450, 4799]].map((r) => r.map((t) => t % model.config.vocab_size));
  const plain = await model.forward({ inputIds: ids, useCache: false });
  const seen = [];
  const identity = (t, name) => { if (!(t instanceof L.Tensor)) throw new Error(name + ": not a llama-ts Tensor"); seen.push(name); return t; };
  const hooked = await model.forward({ inputIds: ids, useCache: false, hooks: () => identity });
  const ablated = await L.runWithHooks(model, ids, [L.ablateHead(0, 1)]);
  const a = plain.logits.toFloat32(), b = hooked.logits.toFloat32(), c = ablated.logits.toFloat32();
  let identityDiff = 0, ablationDiff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    identityDiff = Math.max(identityDiff, Math.abs(a[i] - b[i]));
    ablationDiff = Math.max(ablationDiff, Math.abs(a[i] - c[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  const out = {
    device: model.backend.device,
    logitsAreTensors: plain.logits instanceof L.Tensor,
    hookPoints: L.hookPointNames(model.config.num_hidden_layers).length,
    hooked: seen.length,
    identityDiff, ablationDiff, scale,
  };
  model.backend.dispose();
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
`;

describe("require(\"llama-ts\") on webgpu", () => {
  it("one Tensor class across lib and gpu: a hook that returns its input changes nothing; an ablation does", () => {
    const res = spawnSync(process.execPath, ["-e", PROGRAM], { cwd: ROOT, encoding: "utf8", timeout: 240_000 });
    expect(res.status, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout.trim().split("\n").pop()!) as {
      device: string; logitsAreTensors: boolean; hookPoints: number; hooked: number; identityDiff: number; ablationDiff: number; scale: number;
    };
    expect(out.device).toBe("webgpu");
    expect(out.logitsAreTensors).toBe(true);
    expect(out.hooked).toBe(out.hookPoints); // every hook point ran (and accepted the returned Tensor)
    expect(out.identityDiff).toBeLessThanOrEqual(1e-4 * out.scale); // WebGPU tolerance: hooks may change the kernels' path
    expect(out.ablationDiff).toBeGreaterThan(1e-3 * out.scale); // a replacing hook took effect
  });
});
