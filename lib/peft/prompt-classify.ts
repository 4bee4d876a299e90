/**
 * Generative classification: score each label text as a continuation of the
 * prompt by its summed token log-probability, and pick the best. The label's
 * tokens are those that follow the prompt's tokens when `prompt + label_text`
 * is tokenized as one string with BOS (so `' good'` is `▁good`).
 *
 * Work is shared: every (prompt, label) pair needs the model's log-softmax at
 * a few positions of `prompt + label` minus its last token; a pair whose input
 * is a prefix of another pair's (a one-token label reads only the prompt's
 * last position) is read from that longer sequence's forward pass, and
 * lm_head runs only at the positions read.
 */
import { LlamaError } from "../errors.js";
import type { LlamaForCausalLM } from "../model/causal-lm.js";
import type { DeviceTensor } from "../backend/backend.js";
import { splitContinuation, type TextTokenizer } from "./prompt-data.js";
import { PromptTuningModel } from "./prompt-tuning.js";
import type { OnProgress } from "../progress.js";

export interface ScoringOptions {
  /** Sequences per forward pass (default 16). */
  batchSize?: number;
  /** Called after each forward pass: (sequences scored, sequences to score, { unit: "items" }). */
  onProgress?: OnProgress;
}

interface Request {
  key: string;
  /** Positions of the input whose next-token distribution is read, and the target at each. */
  positions: number[];
  targets: number[];
}

/** Log-softmax of a logits row (float64 accumulation). */
function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) if (x > max) max = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

/** The causal LM under a target (a plain model or a prompt-tuned one). */
function causalBase(target: PromptTuningModel | LlamaForCausalLM): LlamaForCausalLM {
  const base = target instanceof PromptTuningModel ? target.base : target;
  if (!("lm_head" in base)) throw new LlamaError("label scoring needs a causal LM (task_type CAUSAL_LM)");
  return base;
}

/**
 * Summed log-probabilities [prompts][labels] of each label text after each prompt.
 */
export async function scoreLabelContinuations(
  target: PromptTuningModel | LlamaForCausalLM, tokenizer: TextTokenizer,
  prompts: readonly string[], labelTexts: readonly string[], options: ScoringOptions = {},
): Promise<number[][]> {
  const base = causalBase(target);
  const be = base.backend;
  const n = target instanceof PromptTuningModel ? target.numVirtualTokens : 0;
  // 1. One request per (prompt, label). Its input is `prompt + label` minus the last token;
  //    an input that is a prefix of another label's input is read from that longer one
  //    (causal attention: a prefix's distributions are the longer sequence's first positions).
  const inputs = new Map<string, { ids: number[]; positions: Set<number> }>();
  const isPrefix = (short: number[], long: number[]) => short.length <= long.length && short.every((id, i) => long[i] === id);
  const requests: Request[][] = prompts.map((p) => {
    const parts = labelTexts.map((l) => {
      const { ids, start } = splitContinuation(tokenizer, p, l);
      if (start >= ids.length) throw new LlamaError(`label ${JSON.stringify(l)} adds no tokens after prompt ${JSON.stringify(p.slice(0, 60))}`);
      if (start === 0) throw new LlamaError(`prompt ${JSON.stringify(p.slice(0, 60))} has no tokens of its own to condition on`);
      return { ids, start, input: ids.slice(0, ids.length - 1) };
    });
    const carriers: number[][] = [];
    for (const part of [...parts].sort((a, b) => b.input.length - a.input.length)) {
      if (!carriers.some((c) => isPrefix(part.input, c))) carriers.push(part.input);
    }
    return parts.map(({ ids, start, input }) => {
      const carrier = carriers.find((c) => isPrefix(input, c))!;
      const key = carrier.join(",");
      const positions = Array.from({ length: ids.length - start }, (_, i) => start - 1 + i);
      let entry = inputs.get(key);
      if (!entry) inputs.set(key, (entry = { ids: carrier, positions: new Set() }));
      positions.forEach((q) => entry!.positions.add(q));
      return { key, positions, targets: ids.slice(start) };
    });
  });
  // 2. Forward the unique inputs in length-sorted batches; keep log-softmax rows at the positions read.
  const unique = [...inputs.entries()].sort((a, b) => a[1].ids.length - b[1].ids.length);
  const dist = new Map<string, Float64Array>(); // `${key}@${position}` → log-probs
  const bs = options.batchSize ?? 16;
  for (let i = 0; i < unique.length; i += bs) {
    const chunk = unique.slice(i, i + bs);
    const T = Math.max(...chunk.map(([, e]) => e.ids.length));
    const pad = base.config.pad_token_id ?? 0;
    const inputIds = chunk.map(([, e]) => [...e.ids, ...new Array<number>(T - e.ids.length).fill(pad)]);
    const attentionMask = chunk.map(([, e]) => [...new Array<number>(e.ids.length).fill(1), ...new Array<number>(T - e.ids.length).fill(0)]);
    const wanted = chunk.map(([, e]) => [...e.positions].sort((a, b) => a - b));
    const K = Math.max(...wanted.map((w) => w.length));
    const index = new Int32Array(chunk.length * K);
    wanted.forEach((w, b) => { for (let j = 0; j < K; j++) index[b * K + j] = n + (w[j] ?? w[0]!); });
    const dec = target instanceof PromptTuningModel
      ? await (async () => {
        const { embeds, attentionMask: mask } = await target.embed({ inputIds, attentionMask }, { grad: false });
        return base.model.decode({ inputsEmbeds: embeds, attentionMask: mask, useCache: false });
      })()
      : await base.model.decode({ inputIds, attentionMask, useCache: false });
    const sel: DeviceTensor = be.selectPositions(dec.hidden, index, K);
    be.release(dec.hidden);
    const logitsT = base.lm_head.forward(be, sel);
    be.release(sel);
    const logits = (await be.read(logitsT)).toFloat32();
    be.release(logitsT);
    const V = base.config.vocab_size;
    wanted.forEach((w, b) => w.forEach((q, j) => {
      dist.set(`${chunk[b]![0]}@${q}`, logSoftmax(logits.subarray((b * K + j) * V, (b * K + j + 1) * V)));
    }));
    options.onProgress?.(Math.min(i + bs, unique.length), unique.length, { unit: "items" });
  }
  // 3. Sum each label's token log-probs.
  return requests.map((row) => row.map((r) => r.positions.reduce((s, q, j) => s + dist.get(`${r.key}@${q}`)![r.targets[j]!]!, 0)));
}

export interface ClassificationResult {
  accuracy: number;
  /** Index into labelTexts per row. */
  predictions: number[];
  scores: number[][];
  labelTexts: string[];
}

/**
 * Accuracy of picking the best-scoring label text for each `{prompt, label_text}`
 * row among `labelTexts` (default: the distinct label texts of the rows, in
 * order of first appearance).
 */
export async function classifyByLabelScores(
  target: PromptTuningModel | LlamaForCausalLM, tokenizer: TextTokenizer,
  rows: readonly { prompt: string; label_text: string }[], labelTexts?: readonly string[], options: ScoringOptions = {},
): Promise<ClassificationResult> {
  const labels = labelTexts ? [...labelTexts] : [...new Set(rows.map((r) => r.label_text))];
  const scores = await scoreLabelContinuations(target, tokenizer, rows.map((r) => r.prompt), labels, options);
  const predictions = scores.map((s) => s.indexOf(Math.max(...s)));
  let correct = 0;
  rows.forEach((r, i) => { if (labels[predictions[i]!] === r.label_text) correct++; });
  return { accuracy: correct / rows.length, predictions, scores, labelTexts: labels };
}
