/**
 * `llama-ts generate`: text generation from a model folder.
 *
 *   llama-ts generate [--model DIR] (--prompt TEXT | --input-ids JSON) [--max-new-tokens N]
 *     [--repetition-penalty X] [--do-sample --temperature T --top-k K --top-p P --min-p M --seed S]
 *     [--num-beams N --num-return-sequences N --length-penalty X --early-stopping true|false|never]
 *     [--min-new-tokens N] [--eos-token-id JSON] [--stop STR]... [--adapter DIR] [--device cpu|webgpu] [--json]
 *
 * --adapter applies a PEFT LoRA or prompt-tuning adapter folder for the run (lib/peft/adapter-load.ts).
 *
 * --json prints one object per generated sequence and line:
 *   {"input_ids": [...prompt], "output_ids": [...prompt + new], "text": "decoded output_ids" | null}
 * (`text` is null when the folder has no tokenizer). Without --json the text
 * streams to stdout as it is generated (token ids as a JSON list when there is
 * no tokenizer). Defaults follow HF generate (20 new tokens, greedy).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, InputError } from "../../lib/errors.js";
import { loadPretrained } from "../../lib/model/auto.js";
import { LlamaForCausalLM } from "../../lib/model/causal-lm.js";
import { AutoTokenizer, type LlamaAnyTokenizer } from "../../lib/tokenizer/index.js";
import { generate, type GenerateOptions, type StreamChunk } from "../../lib/generate/index.js";
import type { Device } from "../../lib/backend/backend.js";
import { DEVICE_FLAG, MODEL_FLAG, QUANTIZE_FLAG, choiceFlag, defineCommand, existingPath, intFlag, jsonFlag, modelPath, quantizeFlag, numberFlag } from "../args.js";
import { UsageError } from "../cli-error.js";
import { terminalProgress } from "../progress.js";
import { applyAdapter } from "../../lib/peft/adapter-load.js";

/** `[1,5,6]` is one prompt; `[[..],[..]]` a batch (rows of one length; pass --attention-mask for left padding). */
function idRows(flag: string, value: unknown): number[][] {
  const rows = Array.isArray(value) && value.length > 0 && !Array.isArray(value[0]) ? [value] : value;
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every((r) => Array.isArray(r) && r.every((x) => Number.isInteger(x)))) {
    throw new UsageError(`${flag}: expected a JSON list of integer token ids (e.g. [1,5,6]) or a list of such lists`);
  }
  if (rows.some((r) => (r as number[]).length === 0)) throw new InputError(`${flag} is empty: expected at least one token id`);
  return rows as number[][];
}

function eosFlag(value: unknown): number | number[] {
  if (Number.isInteger(value)) return value as number;
  if (Array.isArray(value) && value.length > 0 && value.every((x) => Number.isInteger(x))) return value as number[];
  throw new UsageError(`--eos-token-id: expected an integer or a JSON list of integers, got ${JSON.stringify(value)}`);
}

function earlyStoppingFlag(v: string | undefined): boolean | "never" | undefined {
  if (v === undefined) return undefined;
  if (v === "true" || v === "false") return v === "true";
  if (v === "never") return "never";
  throw new UsageError(`--early-stopping: expected true, false or never, got "${v}"`);
}

function hasTokenizer(dir: string): boolean {
  return fs.existsSync(path.join(dir, "tokenizer.model")) || fs.existsSync(path.join(dir, "tokenizer.json"));
}

const HF = "generation_config.json, else HF's";

export const command = defineCommand({
  summary: "generate text (greedy, sampling or beam search) from a model folder",
  usage: "(--prompt TEXT | --input-ids JSON) [options]",
  flags: {
    model: MODEL_FLAG,
    quantize: QUANTIZE_FLAG,
    prompt: { type: "string", arg: "TEXT", multiple: true, help: "the prompt; several make a left-padded batch (or give --input-ids)" },
    "input-ids": { type: "string", arg: "JSON", help: "token ids: [1,5,6] or a batch [[..],[..]] (instead of --prompt)" },
    "attention-mask": { type: "string", arg: "JSON", help: "0/1 mask for --input-ids (left padding)" },
    "max-new-tokens": { type: "string", arg: "N", shownDefault: "generation_config.json, else HF's max_length 20 (prompt included)", help: "tokens to generate at most" },
    "min-new-tokens": { type: "string", arg: "N", shownDefault: "0", help: "no EOS before this many new tokens" },
    "repetition-penalty": { type: "string", arg: "X", shownDefault: "1", help: "CTRL's penalty on tokens already present" },
    "do-sample": { type: "boolean", help: "sample instead of greedy / beam search" },
    temperature: { type: "string", arg: "T", shownDefault: `${HF} 1`, help: "softmax temperature (with --do-sample)" },
    "top-k": { type: "string", arg: "K", shownDefault: `${HF} 50`, help: "keep the K most likely tokens (with --do-sample)" },
    "top-p": { type: "string", arg: "P", shownDefault: `${HF} 1`, help: "nucleus sampling mass (with --do-sample)" },
    "min-p": { type: "string", arg: "M", shownDefault: "off", help: "drop tokens below M × the top probability (with --do-sample)" },
    seed: { type: "string", arg: "S", shownDefault: "random", help: "sampling seed (with --do-sample)" },
    "num-beams": { type: "string", arg: "N", shownDefault: "1", help: "beam search width" },
    "num-return-sequences": { type: "string", arg: "N", shownDefault: "1", help: "sequences per prompt (sampling or beams)" },
    "length-penalty": { type: "string", arg: "X", shownDefault: "1", help: "beam score exponent on length" },
    "early-stopping": { type: "string", arg: "true|false|never", shownDefault: "false", help: "when beam search stops" },
    "eos-token-id": { type: "string", arg: "JSON", shownDefault: "the model's", help: "an id or a list of ids that end a sequence" },
    stop: { type: "string", arg: "STR", multiple: true, help: "stop when the text ends with STR" },
    adapter: { type: "string", arg: "DIR", help: "a PEFT LoRA or prompt-tuning adapter folder, applied for the run" },
    device: DEVICE_FLAG,
    json: { type: "boolean", help: "one JSON line per sequence: {input_ids, output_ids, text}" },
  },
  async run(f) {
    const dir = modelPath("--model", f.model);
    if (f.adapter !== undefined) existingPath("--adapter", f.adapter);
    const device = choiceFlag("--device", f.device, ["cpu", "webgpu"] as const);
    const prompts = f.prompt ?? [];
    if ((prompts.length > 0) === (f["input-ids"] !== undefined)) {
      throw new UsageError("give exactly one of --prompt TEXT or --input-ids JSON (see llama-ts generate --help)");
    }

    const tokenizer: LlamaAnyTokenizer | undefined = hasTokenizer(dir) ? AutoTokenizer.fromPretrained(dir) : undefined;
    let inputIds: number[][];
    let attentionMask: number[][] | undefined;
    if (prompts.length) {
      if (!tokenizer) throw new ConfigError(`${dir}: no tokenizer.model or tokenizer.json in the model folder; use --input-ids`);
      // Several prompts: a left-padded batch, as HF's tokenizer(padding_side="left") builds it.
      const batch = tokenizer.call(prompts, { padding: prompts.length > 1 ? "longest" : false, paddingSide: "left", returnAttentionMask: true });
      inputIds = batch.inputIds;
      attentionMask = batch.attentionMask;
    } else {
      inputIds = idRows("--input-ids", jsonFlag("--input-ids", f["input-ids"]!));
      if (f["attention-mask"] !== undefined) attentionMask = idRows("--attention-mask", jsonFlag("--attention-mask", f["attention-mask"]));
    }

    const doSample = f["do-sample"] === true;
    for (const flag of ["temperature", "top-k", "top-p", "min-p", "seed"] as const) {
      if (f[flag] !== undefined && !doSample) process.stderr.write(`llama-ts generate: warning: --${flag} has no effect without --do-sample (greedy decoding)\n`);
    }
    const opts: GenerateOptions = {
      inputIds,
      attentionMask,
      maxNewTokens: intFlag("--max-new-tokens", f["max-new-tokens"]),
      minNewTokens: intFlag("--min-new-tokens", f["min-new-tokens"]),
      repetitionPenalty: numberFlag("--repetition-penalty", f["repetition-penalty"]),
      doSample: f["do-sample"],
      temperature: numberFlag("--temperature", f.temperature),
      topK: intFlag("--top-k", f["top-k"]),
      topP: numberFlag("--top-p", f["top-p"]),
      minP: numberFlag("--min-p", f["min-p"]),
      seed: intFlag("--seed", f.seed),
      numBeams: intFlag("--num-beams", f["num-beams"]),
      numReturnSequences: intFlag("--num-return-sequences", f["num-return-sequences"]),
      lengthPenalty: numberFlag("--length-penalty", f["length-penalty"]),
      earlyStopping: earlyStoppingFlag(f["early-stopping"]),
      eosTokenId: f["eos-token-id"] === undefined ? undefined : eosFlag(jsonFlag("--eos-token-id", f["eos-token-id"])),
      stopStrings: f.stop,
      tokenizer,
    };
    for (const k of Object.keys(opts) as (keyof GenerateOptions)[]) if (opts[k] === undefined) delete opts[k];

    const model = await loadPretrained(dir, { device: device as Device, quantize: quantizeFlag(f.quantize), onProgress: terminalProgress("loading") });
    try {
      if (!(model instanceof LlamaForCausalLM)) {
        throw new ConfigError(`${dir}: config.json architectures is LlamaForSequenceClassification; generate needs a LlamaForCausalLM checkpoint`);
      }
      const adapter = f.adapter !== undefined ? await applyAdapter(model, f.adapter, dir) : undefined;
      for (const w of adapter?.warnings ?? []) process.stderr.write(`llama-ts generate: warning: ${w}\n`);
      // Text mode streams one sequence as it is generated; batches print when done.
      const streaming = !f.json && tokenizer !== undefined && inputIds.length === 1 && (opts.numBeams ?? 1) === 1 && (opts.numReturnSequences ?? 1) === 1;
      if (streaming) {
        process.stdout.write(tokenizer.decode(inputIds[0]!, { skipSpecialTokens: true }));
        opts.streamer = (c: StreamChunk) => process.stdout.write(c.text);
      }
      const sequences = await generate(adapter?.generationModel() ?? model, { ...opts, returnDictInGenerate: false });
      const perPrompt = sequences.length / inputIds.length;
      if (streaming) {
        process.stdout.write("\n");
      } else {
        sequences.forEach((seq, i) => {
          const prompt = inputIds[Math.floor(i / perPrompt)]!;
          const text = tokenizer ? tokenizer.decode(seq, { skipSpecialTokens: true }) : null;
          if (f.json) process.stdout.write(JSON.stringify({ input_ids: prompt, output_ids: seq, text }) + "\n");
          else process.stdout.write((text ?? JSON.stringify(seq)) + "\n");
        });
      }
    } finally {
      model.backend.dispose?.();
    }
    return 0;
  },
});
