import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/index.js";
import { activeLora, loadLora, readLoraAdapter } from "../lib/peft/lora.js";
import { isTargeted, loraScaling, parseLoraConfig } from "../lib/peft/lora-config.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { ConfigError, FormatError } from "../lib/errors.js";

const LORA = "test/fixtures/peft/tiny-llama-lora";
const BASE = "test/fixtures/hf/tiny-llama";

function golden(): { ids: number[][]; want: Float32Array } {
  const st = SafetensorsFile.open(path.join(LORA, "golden.safetensors"));
  const { values, shape } = st.readInts("input_ids");
  const ids = Array.from({ length: shape[0]! }, (_, b) => values.slice(b * shape[1]!, (b + 1) * shape[1]!));
  const want = st.read("logits_with_adapter").toFloat32();
  st.close();
  return { ids, want };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe("PEFT LoRA adapters", () => {
  it("reads the adapter: 6 modules, rank 4, scaling alpha/r = 2", () => {
    const a = readLoraAdapter(LORA);
    expect([...a.modules.keys()].sort()).toEqual([
      "model.layers.0.mlp.down_proj", "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
      "model.layers.1.mlp.down_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj",
    ]);
    const m = a.modules.get("model.layers.0.mlp.down_proj")!;
    expect(m.A.shape).toEqual([4, 176]);
    expect(m.B.shape).toEqual([64, 4]);
    expect(m.scaling).toBe(2);
  });

  it("loaded: logits within 1e-4 of PEFT's; unload restores the base model exactly; merge keeps PEFT's logits", async () => {
    const { ids, want } = golden();
    const model = await LlamaForCausalLM.fromPretrained(BASE);
    const base = (await model.forward({ inputIds: ids })).logits.toFloat32().slice();
    expect(maxAbsDiff(base, want)).toBeGreaterThan(1e-2); // the adapter really changes the output

    const lora = await loadLora(model, LORA);
    expect(lora.targets).toHaveLength(6);
    expect(activeLora(model)).toBe(lora);
    const withAdapter = (await model.forward({ inputIds: ids })).logits.toFloat32();
    expect(maxAbsDiff(withAdapter, want)).toBeLessThanOrEqual(1e-4);
    await expect(loadLora(model, LORA)).rejects.toThrow(/already loaded/);

    lora.unload();
    expect(activeLora(model)).toBeUndefined();
    const after = (await model.forward({ inputIds: ids })).logits.toFloat32();
    expect(maxAbsDiff(after, base)).toBe(0);
    expect(() => lora.unload()).toThrow(/already unloaded or merged/);

    const again = await loadLora(model, LORA);
    again.merge();
    const merged = (await model.forward({ inputIds: ids })).logits.toFloat32();
    expect(maxAbsDiff(merged, want)).toBeLessThanOrEqual(1e-4);
    // The merged model saves and reloads as a plain HF folder with the adapter baked in.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lora-merged-"));
    await model.savePretrained(dir);
    const reloaded = await LlamaForCausalLM.fromPretrained(dir);
    expect(maxAbsDiff((await reloaded.forward({ inputIds: ids })).logits.toFloat32(), merged)).toBe(0);
    fs.rmSync(dir, { recursive: true });
  });

  it("an f16 base: the loaded adapter keeps f32 precision, merge rounds into f16 like PEFT", async () => {
    const { ids, want } = golden();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lora-f16-"));
    const { convertMetaToHf } = await import("../lib/convert/meta-to-hf.js");
    await convertMetaToHf({ inputDir: "test/fixtures/meta/tiny-llama", outputDir: dir });
    const model = await LlamaForCausalLM.fromPretrained(dir);
    const lora = await loadLora(model, LORA);
    const loaded = (await model.forward({ inputIds: ids })).logits.toFloat32().slice();
    lora.merge();
    const q = model.model.layers[0]!.self_attn.q_proj.weight;
    expect(q.dtype).toBe("f16");
    const merged = (await model.forward({ inputIds: ids })).logits.toFloat32();
    // f16 base weights differ from the f32 fixture by fp16 rounding; the merge adds one more rounding.
    expect(maxAbsDiff(loaded, want)).toBeLessThan(2e-2);
    expect(maxAbsDiff(merged, loaded)).toBeLessThan(2e-2);
    expect(maxAbsDiff(merged, loaded)).toBeGreaterThan(0);
    fs.rmSync(dir, { recursive: true });
  });

  it("config rules: targets (list suffix / regex / layers), rsLoRA and rank/alpha patterns; unsupported options are errors", () => {
    const base = { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["q_proj", "v_proj"] };
    const c = parseLoraConfig(base);
    expect(isTargeted(c, "model.layers.3.self_attn.q_proj")).toBe(true);
    expect(isTargeted(c, "model.layers.3.self_attn.k_proj")).toBe(false);
    expect(isTargeted(parseLoraConfig({ ...base, target_modules: ".*\\.(q|k)_proj" }), "model.layers.0.self_attn.k_proj")).toBe(true);
    expect(isTargeted(parseLoraConfig({ ...base, layers_to_transform: [1] }), "model.layers.0.self_attn.q_proj")).toBe(false);
    expect(loraScaling(c, "x.q_proj")).toEqual({ r: 8, scaling: 2 });
    expect(loraScaling(parseLoraConfig({ ...base, use_rslora: true }), "x.q_proj").scaling).toBeCloseTo(16 / Math.sqrt(8), 12);
    expect(loraScaling(parseLoraConfig({ ...base, rank_pattern: { v_proj: 2 }, alpha_pattern: { v_proj: 8 } }), "model.layers.0.self_attn.v_proj")).toEqual({ r: 2, scaling: 4 });
    expect(() => parseLoraConfig({ ...base, use_dora: true })).toThrow(ConfigError);
    expect(() => parseLoraConfig({ ...base, peft_type: "PROMPT_TUNING" })).toThrow(/peft_type/);
    expect(() => parseLoraConfig({ ...base, r: 0 })).toThrow(/field r = 0/);
  });

  it("refuses adapters that do not fit the model, naming the module", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lora-bad-"));
    const cfg = JSON.parse(fs.readFileSync(path.join(LORA, "adapter_config.json"), "utf8"));
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, target_modules: ["q_proj"] }));
    fs.copyFileSync(path.join(LORA, "adapter_model.safetensors"), path.join(dir, "adapter_model.safetensors"));
    expect(() => readLoraAdapter(dir)).toThrow(FormatError);
    expect(() => readLoraAdapter(dir)).toThrow(/mlp.down_proj" has LoRA weights but is not in target_modules/);
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, r: 8 }));
    expect(() => readLoraAdapter(dir)).toThrow(/do not have rank 8/);
    fs.rmSync(dir, { recursive: true });
  });
});
