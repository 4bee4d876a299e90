/**
 * The CLI on the WebGPU backend, end to end through the built dist/
 * (`node scripts/build.mjs` first; npm test does): `gpu-info`, and
 * `forward`/`generate --device webgpu` agreeing with HF's goldens and the CPU.
 */
import { describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { HF, ROOT, golden } from "./core-helpers.js";
import { relErr } from "./gpu-reference.js";
import { runCli } from "./cli-run.js";

function cli(...args: string[]) {
  const r = runCli(args, { cwd: ROOT });
  expect(r.signal, `llama-ts ${args[0]} did not exit by itself`).toBeNull();
  return r;
}

describe("llama-ts CLI on WebGPU", () => {
  it("gpu-info --json names the adapter, its kind, the f16 mode, features and limits", () => {
    const r = cli("gpu-info", "--json");
    expect(r.status, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as { adapter: { description: string }; kind: string; f16Mode: string; features: string[]; limits: Record<string, number> };
    expect(["lavapipe", "gpu"]).toContain(info.kind);
    expect(["native", "packed"]).toContain(info.f16Mode);
    expect(info.limits["maxStorageBufferBindingSize"]).toBeGreaterThan(0);
    const packed = JSON.parse(cli("gpu-info", "--json", "--f16", "packed").stdout) as { f16Mode: string };
    expect(packed.f16Mode).toBe("packed");
  });

  it("gpu-info prints a readable table, and rejects a bad --f16 with exit 2", () => {
    const r = cli("gpu-info");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^adapter\s+\S/m);
    expect(r.stdout).toContain("maxStorageBufferBindingSize");
    const bad = cli("gpu-info", "--f16", "half");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--f16: expected native or packed, got "half"');
  });

  it("forward --device webgpu writes HF's tensors (within 1e-3) and exits", () => {
    const g = golden("tiny-llama");
    const c = g.json.cases.single!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-gpu-cli-"));
    try {
      const out = path.join(dir, "gpu.safetensors");
      const r = cli("forward", "--model", path.join(HF, "tiny-llama"), "--input-ids", JSON.stringify(c.input_ids), "--device", "webgpu", "--out", out);
      expect(r.status, r.stderr).toBe(0);
      const f = SafetensorsFile.open(out);
      for (const name of ["logits", "hidden_states.2", "attentions.1", "past_key.1", "past_value.0"]) {
        expect(relErr(f.read(name).toFloat32(), g.tensors.read(`single.${name}`).toFloat32()), name).toBeLessThan(1e-3);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a WebGPU command finalizes every Dawn object it made before it ends (--debug says so)", () => {
    const r = cli("generate", "--model", path.join(ROOT, "models", "tiny-stories"), "--prompt", "Once", "--max-new-tokens", "2", "--device", "webgpu", "--debug");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("llama-ts: WebGPU released (1 device(s)), 0 Dawn objects left alive");
    expect(cli("tokenize", "--text", "Once", "--debug").stderr).not.toContain("WebGPU released");
  });

  const hasGenerate = fs.existsSync(path.join(ROOT, "cli", "commands", "generate.ts"));
  it.skipIf(!hasGenerate)("generate --device webgpu continues the default model's prompt exactly as --device cpu", () => {
    const args = ["generate", "--model", path.join(ROOT, "models", "tiny-stories"), "--prompt", "Once upon a time", "--max-new-tokens", "12"];
    const gpu = cli(...args, "--device", "webgpu");
    const cpu = cli(...args, "--device", "cpu");
    expect(gpu.status, gpu.stderr).toBe(0);
    expect(cpu.status, cpu.stderr).toBe(0);
    expect(gpu.stdout).toBe(cpu.stdout);
    expect(gpu.stdout.length).toBeGreaterThan("Once upon a time".length);
  });
});
