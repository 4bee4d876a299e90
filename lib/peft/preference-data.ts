/**
 * Preference data as TRL reads and tokenizes it (trl 1.13).
 *
 * A row is TRL's explicit-prompt preference format,
 * `{"prompt": "...", "chosen": "...", "rejected": "..."}` (an optional numeric
 * `margin` is the reward trainer's margin). Both trainers first append the EOS
 * token's text (`</s>`) to every chosen and rejected completion that does not
 * already end with it; then:
 *
 *   DPOTrainer     prompt_ids = tok(prompt)                      (BOS + prompt)
 *                  chosen_ids = tok(prompt + chosen)[len(prompt_ids):]   (a plain slice,
 *                  not a common prefix: TRL only warns when the prompt's tokens are not a prefix)
 *                  examples whose prompt alone fills max_length (default 1024) are dropped;
 *                  the collator keeps the first max_length tokens of prompt + completion.
 *   RewardTrainer  chosen_ids = tok(prompt + chosen)  (BOS … EOS), rejected_ids likewise;
 *                  pairs where either is longer than max_length (default 1024) are dropped.
 *
 * The EOS text is tokenized as the EOS token (HF splits special tokens out of
 * the text), so tok(text + "</s>") = tok(text) followed by the EOS id.
 */
import { FormatError, InputError } from "../errors.js";
import { readJsonl } from "./prompt-data.js";

/** What tokenizing preference data needs (AutoTokenizer has all of it). */
export interface PreferenceTokenizer {
  /** Text → ids; adds BOS by default, as TRL's `processing_class(text=…)` does. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  readonly eosTokenId: number | null;
  /** The EOS token's text (`</s>`), which TRL appends to completions. */
  readonly eosToken: string | null;
}

/** One preference pair as text. */
export interface PreferenceRow {
  prompt: string;
  chosen: string;
  rejected: string;
  /** The reward trainer's optional margin (loss −log σ(r_c − r_r − margin)). */
  margin?: number;
  /** 1-based line in the file it came from (for messages). */
  line?: number;
}

/** A DPO example as TRL's DPOTrainer tokenizes it (before the collator's truncation). */
export interface DpoExample {
  promptIds: number[];
  /** The chosen completion's tokens, EOS last. */
  chosenIds: number[];
  rejectedIds: number[];
  /** Precomputed reference log-probabilities (TRL's precompute_ref_log_probs). */
  refChosenLogp?: number;
  refRejectedLogp?: number;
}

/** A reward-model pair as TRL's RewardTrainer tokenizes it: full sequences (BOS … EOS). */
export interface RewardExample {
  chosenIds: number[];
  rejectedIds: number[];
  margin?: number;
}

/**
 * Reads a `{"prompt", "chosen", "rejected"}` JSONL file. A bad row (missing or
 * non-string field, an empty chosen or rejected, a non-numeric margin) is a
 * FormatError naming the file, the line and the field.
 */
export function readPreferenceFile(file: string): PreferenceRow[] {
  return readJsonl(file).map(({ line, row }) => {
    const text = (key: "prompt" | "chosen" | "rejected"): string => {
      const v = row[key];
      if (typeof v !== "string") {
        throw new FormatError(file, `line ${line}: field "${key}" ${v === undefined ? "is missing" : `= ${JSON.stringify(v).slice(0, 40)}`}: expected a string (rows are {"prompt", "chosen", "rejected"})`);
      }
      if (key !== "prompt" && v.trim() === "") throw new FormatError(file, `line ${line}: field "${key}" is empty: expected a non-empty completion`);
      return v;
    };
    const out: PreferenceRow = { prompt: text("prompt"), chosen: text("chosen"), rejected: text("rejected"), line };
    if (row.margin !== undefined) {
      if (typeof row.margin !== "number" || !Number.isFinite(row.margin)) throw new FormatError(file, `line ${line}: field "margin" = ${JSON.stringify(row.margin)}: expected a number`);
      out.margin = row.margin;
    }
    return out;
  });
}

/** Rows whose chosen and rejected are the same text (they teach nothing; callers warn with the count). */
export function identicalPairs(rows: readonly PreferenceRow[]): number {
  return rows.filter((r) => r.chosen === r.rejected).length;
}

function eosOf(tok: PreferenceTokenizer): { id: number; text: string } {
  if (tok.eosTokenId === null || tok.eosToken === null) throw new InputError("preference data: the tokenizer has no EOS token (TRL appends it to every completion)");
  return { id: tok.eosTokenId, text: tok.eosToken };
}

/** tok(text + EOS text unless it already ends with it): the text's ids, then the EOS id. */
function encodeWithEos(tok: PreferenceTokenizer, text: string, eos: { id: number; text: string }): number[] {
  const body = text.endsWith(eos.text) ? text.slice(0, -eos.text.length) : text;
  return [...tok.encode(body), eos.id];
}

/** One row as TRL's DPOTrainer tokenizes it (see the file comment). */
export function tokenizeDpo(tok: PreferenceTokenizer, row: PreferenceRow): DpoExample {
  const eos = eosOf(tok);
  const promptIds = tok.encode(row.prompt);
  const chosen = encodeWithEos(tok, row.prompt + row.chosen, eos);
  const rejected = encodeWithEos(tok, row.prompt + row.rejected, eos);
  return { promptIds, chosenIds: chosen.slice(promptIds.length), rejectedIds: rejected.slice(promptIds.length) };
}

/** Rows as TRL's DPOTrainer keeps them: tokenized, without those whose prompt alone fills `maxLength` (TRL's default 1024; null = no limit). */
export function tokenizeDpoRows(tok: PreferenceTokenizer, rows: readonly PreferenceRow[], options: { maxLength?: number | null } = {}): { examples: DpoExample[]; dropped: number } {
  const maxLength = options.maxLength === undefined ? 1024 : options.maxLength;
  const all = rows.map((r) => tokenizeDpo(tok, r));
  const examples = maxLength === null ? all : all.filter((e) => e.promptIds.length < maxLength);
  return { examples, dropped: all.length - examples.length };
}

/** One row as TRL's RewardTrainer tokenizes it (see the file comment). */
export function tokenizeReward(tok: PreferenceTokenizer, row: PreferenceRow): RewardExample {
  const eos = eosOf(tok);
  const out: RewardExample = {
    chosenIds: encodeWithEos(tok, row.prompt + row.chosen, eos),
    rejectedIds: encodeWithEos(tok, row.prompt + row.rejected, eos),
  };
  if (row.margin !== undefined) out.margin = row.margin;
  return out;
}

/** Rows as TRL's RewardTrainer keeps them: tokenized, without pairs longer than `maxLength` (TRL's default 1024; null = no limit). */
export function tokenizeRewardRows(tok: PreferenceTokenizer, rows: readonly PreferenceRow[], options: { maxLength?: number | null } = {}): { examples: RewardExample[]; dropped: number } {
  const maxLength = options.maxLength === undefined ? 1024 : options.maxLength;
  const all = rows.map((r) => tokenizeReward(tok, r));
  const examples = maxLength === null ? all : all.filter((e) => e.chosenIds.length <= maxLength && e.rejectedIds.length <= maxLength);
  return { examples, dropped: all.length - examples.length };
}

/**
 * TRL's DPO collator: rows [prompt + chosen …, prompt + rejected …] (chosen
 * first), each cut to its first `maxLength` tokens (keep_start), right-padded;
 * completionMask marks the completion's tokens.
 */
export function collateDpo(examples: readonly DpoExample[], padTokenId: number, maxLength: number | null = 1024): {
  inputIds: number[][]; attentionMask: number[][]; completionMask: number[][];
} {
  const rows: number[][] = [], masks: number[][] = [];
  for (const which of ["chosenIds", "rejectedIds"] as const) {
    for (const e of examples) {
      const ids = [...e.promptIds, ...e[which]];
      const mask = [...e.promptIds.map(() => 0), ...e[which].map(() => 1)];
      rows.push(maxLength === null ? ids : ids.slice(0, maxLength));
      masks.push(maxLength === null ? mask : mask.slice(0, maxLength));
    }
  }
  const T = Math.max(...rows.map((r) => r.length));
  const padTo = <V>(r: V[], v: V) => [...r, ...new Array<V>(T - r.length).fill(v)];
  return {
    inputIds: rows.map((r) => padTo(r, padTokenId)),
    attentionMask: rows.map((r) => padTo(r.map(() => 1), 0)),
    completionMask: masks.map((m) => padTo(m, 0)),
  };
}

/** TRL's reward collator: [chosen …, rejected …], right-padded with the pad id. */
export function collateReward(examples: readonly RewardExample[], padTokenId: number): { inputIds: number[][]; attentionMask: number[][]; margin?: number[] } {
  const rows = [...examples.map((e) => e.chosenIds), ...examples.map((e) => e.rejectedIds)];
  const T = Math.max(...rows.map((r) => r.length));
  const out: { inputIds: number[][]; attentionMask: number[][]; margin?: number[] } = {
    inputIds: rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(padTokenId)]),
    attentionMask: rows.map((r) => [...r.map(() => 1), ...new Array<number>(T - r.length).fill(0)]),
  };
  // TRL looks at the first example only: a margin column is all or nothing.
  if (examples[0]!.margin !== undefined) out.margin = examples.map((e, i) => {
    if (e.margin === undefined) throw new InputError(`reward batch: example ${i} has no margin while the first has one`);
    return e.margin;
  });
  return out;
}
