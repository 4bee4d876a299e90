// `llama-ts lora-train` (the built CLI): from PEFT's starting matrices (test/fixtures/peft/tiny-llama-lora-train),
// full-batch Adam reproduces PEFT's 5 losses and final A/B, on the CPU and on WebGPU; a fresh adapter from
// prompt/completion rows trains and loads back; bad flags are named.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { LoraModel } from "../lib/peft/lora-train.js";
import { readLoraAdapter } from "../lib/peft/lora.js";
import { runCli } from "./cli-run.js";
import { closeTo, diffStats, intRows } from "./peft-helpers.js";

const FIX = "test/fixtures/peft/tiny-llama-lora-train";
const BASE = "test/fixtures/hf/tiny-llama";
const golden = SafetensorsFile.open(path.join(FIX, "golden.safetensors"));
const gjson = JSON.parse(fs.readFileSync(path.join(FIX, "golden.json"), "utf8")) as { modules: string[]; losses_per_step: number[] };

describe("llama-ts lora-train", () => {
  let tmp: string;
  let data: string, init: string;
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lora-cli-"));
    // The fixture's rows without their trailing padding (right padding never reaches a real token's logits).
    const ids = intRows(golden, "input_ids"), mask = intRows(golden, "attention_mask"), labels = intRows(golden, "labels");
    data = path.join(tmp, "rows.jsonl");
    fs.writeFileSync(data, ids.map((row, b) => {
      const n = mask[b]!.filter((m) => m === 1).length;
      return JSON.stringify({ input_ids: row.slice(0, n), labels: labels[b]!.slice(0, n) });
    }).join("\n") + "\n");
    // PEFT's starting matrices, saved as an adapter for --init-adapter.
    const base = await LlamaForCausalLM.fromPretrained(BASE, { device: "cpu" });
    const values = new Map(gjson.modules.map((m) => [m, { A: golden.read(`init.${m}.lora_A`).toFloat32(), B: golden.read(`init.${m}.lora_B`).toFloat32() }]));
    init = path.join(tmp, "init");
    LoraModel.fromValues(base, { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] }, values).savePretrained(init);
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const device of ["cpu", "webgpu"] as const) {
    it(`--device ${device}: PEFT's 5 Adam steps from its starting matrices`, () => {
      const out = path.join(tmp, `trained-${device}`);
      const r = runCli(["lora-train", "--model", BASE, "--data", data, "--init-adapter", init, "--optimizer", "adam", "--lr", "0.01",
        "--steps", "5", "--batch", "2", "--device", device, "--out", out], { timeoutMs: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      const losses = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => (JSON.parse(l) as { loss: number }).loss);
      closeTo(device, diffStats(losses, gjson.losses_per_step), 1e-5);
      const adapter = readLoraAdapter(out);
      for (const m of gjson.modules) {
        closeTo(device, diffStats(adapter.modules.get(m)!.A.toFloat32(), golden.read(`final.${m}.lora_A`).toFloat32()), 1e-4);
        closeTo(device, diffStats(adapter.modules.get(m)!.B.toFloat32(), golden.read(`final.${m}.lora_B`).toFloat32()), 1e-4);
      }
    });
  }

  it("a fresh adapter from prompt/completion rows; bad flags are named", () => {
    const rows = fs.readFileSync("datasets/topic/train.jsonl", "utf8").trim().split("\n").slice(0, 4).map((l) => JSON.parse(l) as { prompt: string; label_text: string });
    const pc = path.join(tmp, "pc.jsonl");
    fs.writeFileSync(pc, rows.map((x) => JSON.stringify({ prompt: x.prompt, completion: x.label_text })).join("\n"));
    const out = path.join(tmp, "fresh");
    const r = runCli(["lora-train", "--model", "models/tiny-stories", "--data", pc, "--r", "4", "--target-modules", "q_proj,k_proj",
      "--lr", "0.01", "--steps", "2", "--batch", "2", "--out", out]);
    expect(r.status, r.stderr).toBe(0);
    const adapter = readLoraAdapter(out);
    expect(adapter.config.r).toBe(4);
    expect(adapter.modules.size).toBe(12); // 6 layers × (q_proj, k_proj)
    const bad = runCli(["lora-train", "--model", BASE, "--data", pc, "--lr", "0.01", "--steps", "1", "--batch", "2", "--optimizer", "sgd", "--out", out]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--optimizer: expected adam or adamw, got "sgd"/);
  });
});
