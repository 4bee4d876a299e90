// `--adapter DIR` on generate, forward and classify (the built CLI): a PEFT LoRA adapter
// (test/fixtures/peft/tiny-llama-lora) gives PEFT's logits within 1e-4 and the library's greedy tokens;
// a PEFT prompt-tuning adapter gives PEFT's own generate output (test/fixtures/peft/prompt-generate);
// an adapter made for another base model is a one-line error naming its base, exit non-zero.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { loadLora } from "../lib/peft/lora.js";
import { applyAdapter, readAdapterKind } from "../lib/peft/adapter-load.js";
import { LoraModel } from "../lib/peft/lora-train.js";
import { readJsonl } from "../lib/peft/prompt-data.js";
import { classifyByLabelScores } from "../lib/peft/prompt-classify.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { SeededRng } from "../lib/generate/rng.js";
import { runCli } from "./cli-run.js";

const BASE = "test/fixtures/hf/tiny-llama";
const LORA = "test/fixtures/peft/tiny-llama-lora";
const PROMPT = "test/fixtures/peft/tiny-llama-prompt-tuning";
const ref = JSON.parse(fs.readFileSync("test/fixtures/peft/prompt-generate/reference.json", "utf8")) as {
  max_new_tokens: number; cases: { name: string; input_ids: number[][]; attention_mask: number[][]; sequences: number[][] }[];
};

function jsonLines(stdout: string): { output_ids: number[] }[] {
  return stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { output_ids: number[] });
}

describe("--adapter DIR", () => {
  let tmp: string;
  let ids: number[][];
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "adapter-cli-"));
    const st = SafetensorsFile.open(path.join(LORA, "golden.safetensors"));
    const { values, shape } = st.readInts("input_ids");
    ids = Array.from({ length: shape[0]! }, (_, b) => values.slice(b * shape[1]!, (b + 1) * shape[1]!));
    st.close();
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("tells LoRA from prompt tuning by peft_type", () => {
    expect(readAdapterKind(LORA).kind).toBe("LORA");
    expect(readAdapterKind(PROMPT).kind).toBe("PROMPT_TUNING");
    expect(() => readAdapterKind(BASE)).toThrow(/no adapter_config\.json/);
  });

  it("forward --adapter LoRA: PEFT's logits within 1e-4", () => {
    const out = path.join(tmp, "fwd.safetensors");
    const r = runCli(["forward", "--model", BASE, "--adapter", LORA, "--input-ids", JSON.stringify(ids), "--out", out]);
    expect(r.status, r.stderr).toBe(0);
    const got = SafetensorsFile.open(out).read("logits").toFloat32();
    const want = SafetensorsFile.open(path.join(LORA, "golden.safetensors")).read("logits_with_adapter").toFloat32();
    expect(got.length).toBe(want.length);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    expect(worst).toBeLessThanOrEqual(1e-4);
  });

  it("generate --adapter LoRA: the library's greedy tokens with the adapter loaded, not the base model's", async () => {
    const r = runCli(["generate", "--model", BASE, "--adapter", LORA, "--input-ids", JSON.stringify(ids[0]), "--max-new-tokens", "12", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const model = await LlamaForCausalLM.fromPretrained(BASE);
    const plain = await model.generate({ inputIds: [ids[0]!], maxNewTokens: 12 });
    const lora = await loadLora(model, LORA);
    const want = await model.generate({ inputIds: [ids[0]!], maxNewTokens: 12 });
    lora.unload();
    expect(jsonLines(r.stdout).map((x) => x.output_ids)).toEqual(want);
    expect(want).not.toEqual(plain);
  });

  it("generate --adapter prompt-tuning: PEFT's own generate output", () => {
    const c = ref.cases.find((x) => x.attention_mask.every((row) => row.every((m) => m === 1)))!;
    const r = runCli(["generate", "--model", BASE, "--adapter", PROMPT, "--input-ids", JSON.stringify(c.input_ids),
      "--max-new-tokens", String(ref.max_new_tokens), "--json"]);
    expect(r.status, r.stderr).toBe(0);
    expect(jsonLines(r.stdout).map((x) => x.output_ids)).toEqual(c.sequences);
  });

  it("classify --adapter LoRA: the library's predictions and accuracy with the adapter loaded", async () => {
    // A LoRA adapter for the default model with small random A and B (PEFT's init has B = 0: no effect).
    const model = await LlamaForCausalLM.fromPretrained("models/tiny-stories");
    const rng = new SeededRng(3);
    const values = new Map<string, { A: Float32Array; B: Float32Array }>();
    for (let i = 0; i < model.config.num_hidden_layers; i++) {
      for (const [m, outF] of [["q_proj", 256], ["v_proj", 128]] as const) {
        const rand = (n: number) => Float32Array.from({ length: n }, () => (rng.nextFloat() * 2 - 1) * 0.2);
        values.set(`model.layers.${i}.self_attn.${m}`, { A: rand(4 * 256), B: rand(outF * 4) });
      }
    }
    const dir = path.join(tmp, "stories-lora");
    LoraModel.fromValues(model, { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"] }, values).savePretrained(dir, { baseModelNameOrPath: "models/tiny-stories" });
    const data = path.join(tmp, "rows.jsonl");
    fs.writeFileSync(data, fs.readFileSync("datasets/topic/test.jsonl", "utf8").trim().split("\n").slice(0, 6).join("\n") + "\n");
    const r = runCli(["classify", "--model", "models/tiny-stories", "--data", data, "--adapter", dir]);
    expect(r.status, r.stderr).toBe(0);
    const rows = readJsonl(data).map(({ row }) => row as { prompt: string; label_text: string });
    const tok = AutoTokenizer.fromPretrained("models/tiny-stories");
    const plain = await classifyByLabelScores(model, tok, rows);
    const lora = await loadLora(model, dir);
    const want = await classifyByLabelScores(model, tok, rows);
    lora.unload();
    model.backend.dispose();
    expect(want.scores).not.toEqual(plain.scores);
    const lines = r.stdout.trim().split("\n");
    expect(lines.slice(0, -1).map((l) => (JSON.parse(l) as { prediction: string }).prediction)).toEqual(want.predictions.map((p) => want.labelTexts[p]));
    expect(lines.at(-1)).toBe(`accuracy: ${want.accuracy.toFixed(3)}`);
  });

  it("an adapter made for another base model: one line naming the adapter's base, exit 1, nothing printed", async () => {
    for (const cmd of [["generate", "--prompt", "Once upon a time"], ["forward", "--input-ids", "[1,5,6]", "--out", path.join(tmp, "x.safetensors")]]) {
      const r = runCli([cmd[0]!, "--model", "models/tiny-stories", "--adapter", LORA, ...cmd.slice(1)]);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split("\n").filter((l) => l.startsWith("llama-ts"))).toHaveLength(1);
      expect(r.stderr).toMatch(/do not fit the base weight .*made for base_model_name_or_path "\.\.\/\.\.\/hf\/tiny-llama", not models\/tiny-stories/);
      expect(r.stdout).toBe("");
    }
    expect(fs.existsSync(path.join(tmp, "x.safetensors"))).toBe(false);
    // The library says the same; a prompt adapter of another width as well.
    const stories = await LlamaForCausalLM.fromPretrained("models/tiny-stories");
    await expect(applyAdapter(stories, PROMPT, "models/tiny-stories")).rejects.toThrow(/token_dim|hidden/);
    stories.backend.dispose();
  });
});
