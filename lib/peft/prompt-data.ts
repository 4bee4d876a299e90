/**
 * Training data for prompt tuning: JSONL rows → token examples → padded batches.
 *
 * A row is either `{"input_ids": [...], "labels": [...]}` (used as is) or
 * `{"prompt": "...", "completion": "..."}`: `prompt + completion` is tokenized
 * as one string with BOS, and the loss covers only the completion's tokens —
 * the tokens that follow the prompt's own tokens (so `' good'` after a prompt
 * is `▁good`, not `▁▁good`). Other keys are ignored.
 */
import * as fs from "node:fs";
import { FormatError, InputError } from "../errors.js";
import { IGNORE_INDEX } from "../autograd/loss.js";
import type { PromptBatch } from "./prompt-tuning.js";

/** What the data helpers need from a tokenizer (encode adds BOS by default for LLaMA). */
export interface TextTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
}

/** One causal-LM training example: ids and per-token labels (-100 = no loss). */
export interface TokenExample {
  inputIds: number[];
  labels: number[];
}

/** Bounds for untrusted JSONL files. */
const MAX_LINE_CHARS = 1_000_000;

/** Parses a JSONL file into objects, naming file and line on any error. Blank lines are skipped. */
export function readJsonl(file: string): { line: number; row: Record<string, unknown> }[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new FormatError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const out: { line: number; row: Record<string, unknown> }[] = [];
  text.split("\n").forEach((raw, i) => {
    const s = raw.trim();
    if (!s) return;
    if (s.length > MAX_LINE_CHARS) throw new FormatError(file, `line ${i + 1}: longer than ${MAX_LINE_CHARS} characters`);
    let row: unknown;
    try {
      row = JSON.parse(s);
    } catch (err) {
      throw new FormatError(file, `line ${i + 1}: not valid JSON (${(err as Error).message})`);
    }
    if (!row || typeof row !== "object" || Array.isArray(row)) throw new FormatError(file, `line ${i + 1}: expected a JSON object`);
    out.push({ line: i + 1, row: row as Record<string, unknown> });
  });
  if (out.length === 0) throw new FormatError(file, "no rows");
  return out;
}

/** Length of the common prefix of two id lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * Tokenizes `prompt + continuation` as one string (with BOS) and splits it
 * where the prompt's own tokens end (their common prefix, should the joint
 * tokenization merge across the boundary).
 */
export function splitContinuation(tokenizer: TextTokenizer, prompt: string, continuation: string): { ids: number[]; start: number } {
  const ids = tokenizer.encode(prompt + continuation);
  const start = commonPrefixLength(ids, tokenizer.encode(prompt));
  return { ids, start };
}

/** A prompt/completion pair as an example with the loss on the completion only. */
export function completionExample(tokenizer: TextTokenizer, prompt: string, completion: string): TokenExample {
  const { ids, start } = splitContinuation(tokenizer, prompt, completion);
  if (start >= ids.length) throw new InputError(`completion ${JSON.stringify(completion)} adds no tokens after prompt ${JSON.stringify(prompt.slice(0, 60))}`);
  return { inputIds: ids, labels: ids.map((id, i) => (i < start ? IGNORE_INDEX : id)) };
}

function intList(file: string, line: number, key: string, v: unknown, vocabSize: number, allowIgnore: boolean): number[] {
  if (!Array.isArray(v) || v.length === 0) throw new FormatError(file, `line ${line}: "${key}" must be a non-empty list of token ids`);
  return v.map((id, i) => {
    const ok = Number.isInteger(id) && ((id as number) >= 0 && (id as number) < vocabSize || (allowIgnore && id === IGNORE_INDEX));
    if (!ok) throw new FormatError(file, `line ${line}: ${key}[${i}] = ${JSON.stringify(id)}: expected a token id in [0, ${vocabSize})${allowIgnore ? " or -100" : ""}`);
    return id as number;
  });
}

/** Reads a JSONL training file (either row kind; mixed is fine). */
export function readTrainingFile(file: string, vocabSize: number, tokenizer?: TextTokenizer): TokenExample[] {
  return readJsonl(file).map(({ line, row }) => {
    if (row.input_ids !== undefined) {
      const inputIds = intList(file, line, "input_ids", row.input_ids, vocabSize, false);
      const labels = row.labels === undefined ? inputIds.slice() : intList(file, line, "labels", row.labels, vocabSize, true);
      if (labels.length !== inputIds.length) {
        throw new FormatError(file, `line ${line}: "labels" has ${labels.length} entries, "input_ids" ${inputIds.length}`);
      }
      return { inputIds, labels };
    }
    if (typeof row.prompt === "string" && typeof row.completion === "string") {
      if (!tokenizer) throw new FormatError(file, `line ${line}: prompt/completion rows need the model's tokenizer`);
      return completionExample(tokenizer, row.prompt, row.completion);
    }
    throw new FormatError(file, `line ${line}: expected {"input_ids", "labels"} or {"prompt", "completion"} (string values), got keys ${Object.keys(row).join(", ")}`);
  });
}

/**
 * Pads examples into one batch: right padding (the causal-LM default, as the
 * PEFT reference run) or left padding (needed for sequence classification with
 * inputs_embeds, which pools the last position). Padding has mask 0, label -100.
 */
export function collate(examples: readonly TokenExample[], padTokenId: number, side: "right" | "left" = "right"): PromptBatch {
  const T = Math.max(...examples.map((e) => e.inputIds.length));
  const inputIds: number[][] = [], attentionMask: number[][] = [], labels: number[][] = [];
  for (const e of examples) {
    const pad = T - e.inputIds.length;
    const fill = <V>(v: V) => new Array<V>(pad).fill(v);
    const ones = new Array<number>(e.inputIds.length).fill(1);
    if (side === "right") {
      inputIds.push([...e.inputIds, ...fill(padTokenId)]);
      attentionMask.push([...ones, ...fill(0)]);
      labels.push([...e.labels, ...fill(IGNORE_INDEX)]);
    } else {
      inputIds.push([...fill(padTokenId), ...e.inputIds]);
      attentionMask.push([...fill(0), ...ones]);
      labels.push([...fill(IGNORE_INDEX), ...e.labels]);
    }
  }
  return { inputIds, attentionMask, labels };
}
