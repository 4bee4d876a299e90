/**
 * `llama-ts classify [--model DIR] [--adapter DIR] --data FILE.jsonl`: scores
 * each row's `{"prompt", "label_text"}` against the set of label texts in the
 * file (summed log-prob of the label's tokens after the prompt's) and prints
 * one line per row ({"prediction", "label_text"}) then, last, `accuracy: 0.xxx`.
 * --adapter DIR: a PEFT LoRA or prompt-tuning adapter applied for the run.
 */
import { LlamaForCausalLM } from "../../lib/model/causal-lm.js";
import { AutoTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { FormatError } from "../../lib/errors.js";
import { applyAdapter } from "../../lib/peft/adapter-load.js";
import { readJsonl } from "../../lib/peft/prompt-data.js";
import { classifyByLabelScores } from "../../lib/peft/prompt-classify.js";
import { MODEL_FLAG, QUANTIZE_FLAG, defineCommand, existingPath, modelPath, quantizeFlag } from "../args.js";
import { cliProgress, terminalProgress } from "../progress.js";

export const command = defineCommand({
  summary: "classify {prompt, label_text} rows by label log-prob (optionally with a LoRA or prompt-tuning adapter); prints accuracy",
  flags: {
    model: MODEL_FLAG,
    quantize: QUANTIZE_FLAG,
    adapter: { type: "string", arg: "DIR", help: "a PEFT LoRA or prompt-tuning adapter folder, applied for the run" },
    data: { type: "string", arg: "FILE", required: true, help: "JSONL rows {\"prompt\", \"label_text\"}; the label set is every label_text in the file" },
  },
  async run(f) {
    const modelDir = modelPath("--model", f.model);
    const dataFile = existingPath("--data", f.data);
    const rows = readJsonl(dataFile).map(({ line, row }) => {
      if (typeof row.prompt !== "string" || typeof row.label_text !== "string") {
        throw new FormatError(dataFile, `line ${line}: expected string fields "prompt" and "label_text"`);
      }
      return { prompt: row.prompt, label_text: row.label_text };
    });
    const tokenizer = AutoTokenizer.fromPretrained(modelDir);
    const model = await LlamaForCausalLM.fromPretrained(modelDir, { quantize: quantizeFlag(f.quantize), onProgress: terminalProgress("loading") });
    try {
      const adapter = f.adapter !== undefined ? await applyAdapter(model, existingPath("--adapter", f.adapter), modelDir) : undefined;
      for (const w of adapter?.warnings ?? []) process.stderr.write(`llama-ts classify: warning: ${w}\n`);
      const target = adapter?.prompt ?? model;
      const result = await classifyByLabelScores(target, tokenizer, rows, undefined, { onProgress: cliProgress("classify (sequences)") });
      result.predictions.forEach((p, i) => {
        process.stdout.write(JSON.stringify({ prediction: result.labelTexts[p], label_text: rows[i]!.label_text }) + "\n");
      });
      process.stdout.write(`accuracy: ${result.accuracy.toFixed(3)}\n`);
      return 0;
    } finally {
      model.backend.dispose();
    }
  },
});
