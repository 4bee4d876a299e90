/**
 * `llama-ts generate`: text generation from a model folder.
 *
 *   llama-ts generate --model DIR (--prompt TEXT | --input-ids JSON) [--max-new-tokens N]
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
import { existingPath, intFlag, jsonFlag, numberFlag, parseFlags, required } from "../args.js";
import { UsageError } from "../cli-error.js";
import type { Command } from "../main.js";
import { loadProgressBar } from "../load-progress.js";
import { applyAdapter } from "../../lib/peft/adapter-load.js";

const USAGE =
  "usage: llama-ts generate --model DIR (--prompt TEXT | --input-ids JSON) [--max-new-tokens N] [--repetition-penalty X] " +
  "[--do-sample --temperature T --top-k K --top-p P --min-p M --seed S] [--num-beams N] [--num-return-sequences N] [--adapter DIR] [--json]";

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

export const command: Command = {
  summary: "generate text (greedy, sampling or beam search) from a model folder",
  async run(argv) {
    if (argv.includes("--help") || argv.includes("-h")) {
      process.stdout.write(USAGE + "\n");
      return 0;
    }
    const f = parseFlags(argv, {
      model: { type: "string" },
      prompt: { type: "string", multiple: true },
      "input-ids": { type: "string" },
      "attention-mask": { type: "string" },
      "max-new-tokens": { type: "string" },
      "min-new-tokens": { type: "string" },
      "repetition-penalty": { type: "string" },
      "do-sample": { type: "boolean" },
      temperature: { type: "string" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      "min-p": { type: "string" },
      seed: { type: "string" },
      "num-beams": { type: "string" },
      "num-return-sequences": { type: "string" },
      "length-penalty": { type: "string" },
      "early-stopping": { type: "string" },
      "eos-token-id": { type: "string" },
      stop: { type: "string", multiple: true },
      adapter: { type: "string", arg: "DIR", help: "a PEFT LoRA or prompt-tuning adapter folder, applied for the run" },
      device: { type: "string", default: "cpu" },
      json: { type: "boolean" },
    });
    const dir = existingPath("--model", required("--model", f.model));
    if (f.adapter !== undefined) existingPath("--adapter", f.adapter);
    const device = f.device as string;
    if (device !== "cpu" && device !== "webgpu") throw new UsageError(`--device: expected cpu or webgpu, got "${device}"`);
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

    const model = await loadPretrained(dir, { device: device as Device, onProgress: loadProgressBar() });
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
};
