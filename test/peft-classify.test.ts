// Label scoring (generative classification), PEFT's init rules and the data helpers on the default model.
import { describe, it, expect, beforeAll } from "vitest";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/index.js";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { PromptTuningModel } from "../lib/peft/prompt-tuning.js";
import { scoreLabelContinuations } from "../lib/peft/prompt-classify.js";
import { collate, completionExample, splitContinuation } from "../lib/peft/prompt-data.js";
import { fitToLength } from "../lib/peft/prompt-init.js";
import { PromptTuningConfig } from "../lib/peft/prompt-config.js";

const MODEL = "models/tiny-stories";
type Tok = ReturnType<typeof AutoTokenizer.fromPretrained>;

/** Brute force: summed log-softmax of the label tokens from one full forward of prompt+label. */
async function bruteForceScore(run: (ids: number[]) => Promise<Float32Array>, tok: Tok, prompt: string, label: string, V: number, offset: number): Promise<number> {
  const { ids, start } = splitContinuation(tok, prompt, label);
  const logits = await run(ids);
  let s = 0;
  for (let t = start; t < ids.length; t++) {
    const row = logits.subarray((offset + t - 1) * V, (offset + t) * V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
    s += row[ids[t]!]! - lse;
  }
  return s;
}

describe("label scoring and init on the default model", () => {
  let tok: Tok;
  let model: LlamaForCausalLM;
  const prompts = [
    "Review: The tea was so bad.\nTopic:",
    "Review: I watched it last night. The story was quite silly.\nTopic:",
  ];
  const labels = [" food", " movie", " thing"];

  beforeAll(async () => {
    tok = AutoTokenizer.fromPretrained(MODEL);
    model = await LlamaForCausalLM.fromPretrained(MODEL, { backend: await TapeBackend.create() });
  });

  it("label tokens follow the prompt's tokens in the joint tokenization (▁good, not ▁▁good)", () => {
    const { ids, start } = splitContinuation(tok, "The film was", " good");
    expect(ids[0]).toBe(tok.bosTokenId); // BOS, as tokenizer(text) adds by default
    expect(tok.convertIdsToTokens(ids.slice(start))).toEqual(["▁good"]);
    const ex = completionExample(tok, prompts[0]!, " food");
    const promptLen = tok.encode(prompts[0]!).length;
    expect(ex.labels.slice(0, promptLen).every((l) => l === -100)).toBe(true);
    expect(ex.labels.filter((l) => l !== -100)).toEqual(tok.encode(prompts[0]! + " food").slice(tok.encode(prompts[0]!).length));
  });

  it("shared-prefix scoring equals one full forward per (prompt, label)", async () => {
    const V = model.config.vocab_size;
    const scores = await scoreLabelContinuations(model, tok, prompts, labels, { batchSize: 2 });
    for (let p = 0; p < prompts.length; p++) {
      for (let l = 0; l < labels.length; l++) {
        const ref = await bruteForceScore(async (ids) => (await model.forward({ inputIds: [ids], useCache: false })).logits.toFloat32(), tok, prompts[p]!, labels[l]!, V, 0);
        expect(Math.abs(scores[p]![l]! - ref)).toBeLessThan(1e-4);
      }
    }
  });

  it("with a soft prompt: scoring equals PEFT's full forward (prompt prepended, positions after it)", async () => {
    const pm = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 5, prompt_tuning_init: "SAMPLE_VOCAB" }, { seed: 4 });
    const V = model.config.vocab_size;
    const scores = await scoreLabelContinuations(pm, tok, prompts, labels);
    for (let l = 0; l < labels.length; l++) {
      const ref = await bruteForceScore(async (ids) => (await pm.forward({ inputIds: [ids] })).logits.toFloat32(), tok, prompts[1]!, labels[l]!, V, 5);
      expect(Math.abs(scores[1]![l]! - ref)).toBeLessThan(1e-4);
    }
  });

  it("TEXT init: embeddings of the BOS-prefixed ids, truncated or repeated as PEFT", async () => {
    const text = "Decide the topic";
    const ids = tok.encode(text);
    expect(ids[0]).toBe(1);
    const n = ids.length * 2 + 1; // forces a repeat
    const pm = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: n, prompt_tuning_init: "TEXT", prompt_tuning_init_text: text, tokenizer_name_or_path: MODEL }, { tokenizer: tok });
    const want = fitToLength(ids, n);
    expect(want).toEqual([...ids, ...ids, ids[0]!]);
    const emb = (await model.getInputEmbeddings([want])).toFloat32();
    expect(Array.from(pm.prompt.value)).toEqual(Array.from(emb));
    expect(fitToLength([5, 6, 7], 2)).toEqual([5, 6]);
  });

  it("SAMPLE_VOCAB rows are vocabulary embeddings; RANDOM is N(0, 1)", async () => {
    const sv = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 6, prompt_tuning_init: "SAMPLE_VOCAB" }, { seed: 9 });
    const H = model.config.hidden_size;
    const all = (await model.getInputEmbeddings([Array.from({ length: model.config.vocab_size }, (_, i) => i)])).toFloat32();
    for (let r = 0; r < 6; r++) {
      const row = sv.prompt.value.subarray(r * H, (r + 1) * H);
      let found = false;
      for (let v = 0; v < model.config.vocab_size && !found; v++) found = row.every((x, h) => x === all[v * H + h]);
      expect(found).toBe(true);
    }
    const rnd = await PromptTuningModel.create(model, { task_type: "CAUSAL_LM", num_virtual_tokens: 20, prompt_tuning_init: "RANDOM" }, { seed: 2 });
    const x = Array.from(rnd.prompt.value);
    const mean = x.reduce((a, b) => a + b) / x.length;
    const sd = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(sd - 1)).toBeLessThan(0.05);
  });

  it("config validation names field and value", () => {
    expect(() => new PromptTuningConfig({ task_type: "CAUSAL_LM", num_virtual_tokens: 0 })).toThrow(/num_virtual_tokens = 0/);
    expect(() => new PromptTuningConfig({ task_type: "CAUSAL_LM", num_virtual_tokens: 4, prompt_tuning_init: "TEXT" })).toThrow(/prompt_tuning_init_text/);
    expect(() => new PromptTuningConfig({ task_type: "CAUSAL_LM", num_virtual_tokens: 4, prompt_tuning_init: "TEXT", prompt_tuning_init_text: "x" }))
      .toThrow(/tokenizer_name_or_path = null/); // as PEFT's __post_init__
    expect(() => PromptTuningConfig.fromJSON({ peft_type: "LORA" }, "x/adapter_config.json")).toThrow(/x\/adapter_config.json: field peft_type = "LORA"/);
  });

  it("collate pads right (or left) with mask 0 and label -100", () => {
    const b = collate([{ inputIds: [1, 5, 6], labels: [-100, -100, 6] }, { inputIds: [1, 7], labels: [-100, 7] }], 0);
    expect(b.inputIds).toEqual([[1, 5, 6], [1, 7, 0]]);
    expect(b.attentionMask).toEqual([[1, 1, 1], [1, 1, 0]]);
    expect(b.labels).toEqual([[-100, -100, 6], [-100, 7, -100]]);
    const l = collate([{ inputIds: [1, 7], labels: [-100, 7] }, { inputIds: [1, 5, 6], labels: [1, 5, 6] }], 0, "left");
    expect(l.inputIds[0]).toEqual([0, 1, 7]);
    expect(l.attentionMask![0]).toEqual([0, 1, 1]);
  });
});
