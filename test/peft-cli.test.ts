// `llama-ts prompt-tune` and `llama-ts classify` (the built CLI: run `node scripts/build.mjs` first).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { PromptTuningConfig } from "../lib/peft/prompt-config.js";
import { loadPromptAdapter, savePromptAdapter } from "../lib/peft/prompt-io.js";
import { runCli } from "./cli-run.js";

const FIX = "test/fixtures/peft/tiny-llama-prompt-tuning";

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = runCli(args, { timeoutMs: 300_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("llama-ts prompt-tune / classify", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "peft-cli-"));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // On the CPU to PEFT's precision; on WebGPU (forward and backward as WGSL kernels) within 1e-3 relative.
  for (const [device, lossTol, promptTol] of [["cpu", 1e-5, 1e-4], ["webgpu", 6e-3, 2.7e-3]] as const) it(`--device ${device} reproduces PEFT's 10 Adam steps from the fixture's initial prompt (full batch)`, () => {
    const golden = SafetensorsFile.open(path.join(FIX, "golden.safetensors"));
    const gjson = JSON.parse(fs.readFileSync(path.join(FIX, "golden.json"), "utf8")) as { losses_per_step: number[] };
    const ids = golden.readInts("input_ids"), labels = golden.readInts("labels");
    const T = ids.shape[1]!;
    const data = path.join(tmp, "fixture.jsonl");
    fs.writeFileSync(data, [0, 1].map((b) => JSON.stringify({
      input_ids: ids.values.slice(b * T, (b + 1) * T), labels: labels.values.slice(b * T, (b + 1) * T), note: "other keys are ignored",
    })).join("\n") + "\n");
    const init = path.join(tmp, "init-adapter");
    savePromptAdapter(init, new PromptTuningConfig({ task_type: "CAUSAL_LM", num_virtual_tokens: 8, token_dim: 64, num_transformer_submodules: 1 }),
      golden.read("init_prompt_embeddings").toFloat32(), [8, 64]);
    const out = path.join(tmp, `trained-${device}`);
    const r = cli(["prompt-tune", "--model", "test/fixtures/hf/tiny-llama", "--data", data, "--init", "random", "--init-adapter", init,
      "--optimizer", "adam", "--lr", "0.01", "--steps", "10", "--batch", "2", "--out", out, "--device", device]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const losses = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => (JSON.parse(l) as { loss: number }).loss);
    expect(losses).toHaveLength(10);
    losses.forEach((l, i) => expect(Math.abs(l - gjson.losses_per_step[i]!)).toBeLessThan(lossTol));
    const trained = loadPromptAdapter(out).prompt;
    const final = golden.read("final_prompt_embeddings").toFloat32();
    let maxDiff = 0;
    for (let i = 0; i < final.length; i++) maxDiff = Math.max(maxDiff, Math.abs(trained[i]! - final[i]!));
    expect(maxDiff).toBeLessThan(promptTol);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
    expect(cfg.peft_type).toBe("PROMPT_TUNING");
    expect(cfg.inference_mode).toBe(true);
  });

  it("trains from prompt/completion rows with TEXT init and classifies with the adapter", () => {
    const rows = fs.readFileSync("datasets/topic/train.jsonl", "utf8").trim().split("\n").slice(0, 6).map((l) => JSON.parse(l) as { prompt: string; label_text: string });
    const data = path.join(tmp, "pc.jsonl");
    fs.writeFileSync(data, rows.map((r) => JSON.stringify({ prompt: r.prompt, completion: r.label_text })).join("\n"));
    const out = path.join(tmp, "topic-adapter");
    const r = cli(["prompt-tune", "--model", "models/tiny-stories", "--data", data, "--num-virtual-tokens", "4", "--init", "text",
      "--init-text", "Topic of the review:", "--optimizer", "adamw", "--lr", "0.1", "--epochs", "1", "--batch", "3", "--seed", "1", "--out", out]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").filter((l) => l.startsWith("{"))).toHaveLength(2); // 6 rows / batch 3
    const cfg = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ prompt_tuning_init: "TEXT", prompt_tuning_init_text: "Topic of the review:", num_virtual_tokens: 4, token_dim: 256 });

    const test = path.join(tmp, "cls.jsonl");
    fs.writeFileSync(test, rows.map((row) => JSON.stringify(row)).join("\n"));
    const c = cli(["classify", "--model", "models/tiny-stories", "--adapter", out, "--data", test]);
    expect(c.code).toBe(0);
    const lines = c.stdout.trim().split("\n");
    const last = lines[lines.length - 1]!;
    expect(last).toMatch(/^accuracy: [01]\.\d{3}$/);
    const preds = lines.slice(0, -1).map((l) => JSON.parse(l) as { prediction: string; label_text: string });
    expect(preds).toHaveLength(6);
    const acc = preds.filter((p) => p.prediction === p.label_text).length / 6;
    expect(last).toBe(`accuracy: ${acc.toFixed(3)}`);
  });

  it("names the bad flag, file and line", () => {
    const missing = cli(["prompt-tune", "--model", "test/fixtures/hf/tiny-llama", "--data", "datasets/topic/train.jsonl", "--num-virtual-tokens", "4", "--batch", "2", "--steps", "1", "--out", path.join(tmp, "x")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--lr/);
    const bad = path.join(tmp, "bad.jsonl");
    fs.writeFileSync(bad, '{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}\n{"input_ids": [1, 99999]}\n');
    const r = cli(["prompt-tune", "--model", "test/fixtures/hf/tiny-llama", "--data", bad, "--num-virtual-tokens", "4", "--lr", "0.1", "--batch", "2", "--steps", "1", "--out", path.join(tmp, "y")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("bad.jsonl: line 2: input_ids[1] = 99999");
    expect(fs.existsSync(path.join(tmp, "y"))).toBe(false); // nothing half-written
  });
});
