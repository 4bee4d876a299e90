/**
 * Resolves the knobs of one `generate` call the way HF's
 * `_prepare_generation_config` + `_prepare_generated_length` do:
 *
 *   call options  >  the model's generation_config.json  >  HF's global defaults
 *
 * (special token ids fall back further to config.json), then validates the
 * combination with HF's rules, naming the option at fault.
 */
import { ConfigError, InputError } from "../errors.js";
import type { ProcessorSettings } from "./processors.js";
import type { GenerateOptions, GenerationModel } from "./types.js";

/** HF GenerationConfig._get_default_generation_params (the fields we implement). */
export const HF_GENERATION_DEFAULTS = {
  maxLength: 20,
  minLength: 0,
  doSample: false,
  numBeams: 1,
  temperature: 1.0,
  topK: 50,
  topP: 1.0,
  repetitionPenalty: 1.0,
  lengthPenalty: 1.0,
  earlyStopping: false as boolean | "never",
  numReturnSequences: 1,
} as const;

export interface ResolvedGeneration extends ProcessorSettings {
  /** Total length (prompt + new) at which every row stops. */
  maxLength: number;
  lengthPenalty: number;
  earlyStopping: boolean | "never";
  numReturnSequences: number;
  /** Pad id used for finished rows (HF: pad, else eos[0]); null when neither exists. */
  padTokenId: number | null;
  stopStrings: string[];
  useCache: boolean;
}

type Raw = Readonly<Record<string, unknown>>;

function pick<T>(user: T | undefined, gen: Raw, key: string, check: (v: unknown) => v is T): T | undefined {
  if (user !== undefined) return user;
  const v = gen[key];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw new ConfigError(`generation_config.json: field "${key}" has an invalid value ${JSON.stringify(v)}`);
  return v;
}
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isStop = (v: unknown): v is boolean | "never" => typeof v === "boolean" || v === "never";
const isIds = (v: unknown): v is number | number[] =>
  (typeof v === "number" && Number.isInteger(v)) || (Array.isArray(v) && v.every((x) => Number.isInteger(x)));
const isStrings = (v: unknown): v is string | string[] =>
  typeof v === "string" || (Array.isArray(v) && v.every((x) => typeof x === "string"));

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** Token id lists: undefined/null → []; one id → [id]. */
function idList(v: number | number[] | null | undefined): number[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? [...v] : [v];
}

export function resolveGeneration(model: GenerationModel, opts: GenerateOptions, promptLength: number): ResolvedGeneration {
  const gen: Raw = model.generationConfig ?? {};
  const cfg = model.config;

  // Special tokens: call > generation_config.json > config.json. An explicit null disables.
  const eosRaw =
    opts.eosTokenId !== undefined ? opts.eosTokenId : (pick(undefined, gen, "eos_token_id", isIds) ?? cfg.eos_token_id ?? null);
  const eosTokenIds = idList(eosRaw);
  for (const id of eosTokenIds) {
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocab_size) {
      throw new ConfigError(`eos_token_id ${id} is not a token id of this model (vocab_size ${cfg.vocab_size})`);
    }
  }
  const padGiven =
    opts.padTokenId !== undefined ? opts.padTokenId : (pick(undefined, gen, "pad_token_id", isNum) ?? cfg.pad_token_id ?? null);
  // HF _prepare_special_tokens: no pad id but an eos id → pad with eos[0].
  const padTokenId = padGiven ?? (eosTokenIds.length ? eosTokenIds[0]! : null);

  const doSample = pick(opts.doSample, gen, "do_sample", isBool) ?? HF_GENERATION_DEFAULTS.doSample;
  const numBeams = positiveInt("numBeams", pick(opts.numBeams, gen, "num_beams", isNum) ?? HF_GENERATION_DEFAULTS.numBeams);
  const numReturnSequences = positiveInt(
    "numReturnSequences",
    pick(opts.numReturnSequences, gen, "num_return_sequences", isNum) ?? HF_GENERATION_DEFAULTS.numReturnSequences,
  );

  // Lengths (HF _prepare_generated_length): max_new_tokens wins; otherwise an explicit
  // max_length is a total; otherwise 20 new tokens, capped at max_position_embeddings.
  const maxNew = pick(opts.maxNewTokens, gen, "max_new_tokens", isNum);
  const maxLen = pick(opts.maxLength, gen, "max_length", isNum);
  let maxLength: number;
  if (maxNew !== undefined) {
    if (!Number.isInteger(maxNew) || maxNew <= 0) throw new ConfigError(`maxNewTokens must be greater than 0, got ${maxNew}`);
    maxLength = promptLength + maxNew;
  } else if (maxLen !== undefined) {
    maxLength = positiveInt("maxLength", maxLen);
  } else {
    maxLength = promptLength + HF_GENERATION_DEFAULTS.maxLength;
    if (cfg.max_position_embeddings !== undefined) maxLength = Math.min(maxLength, cfg.max_position_embeddings);
  }
  if (promptLength >= maxLength) {
    throw new InputError(
      `input length is ${promptLength}, but maxLength is ${maxLength}: nothing to generate (set maxNewTokens)`,
    );
  }
  const minNew = pick(opts.minNewTokens, gen, "min_new_tokens", isNum);
  let minLength = pick(opts.minLength, gen, "min_length", isNum) ?? HF_GENERATION_DEFAULTS.minLength;
  if (minNew !== undefined) {
    if (!Number.isInteger(minNew) || minNew < 0) throw new ConfigError(`minNewTokens must be a non-negative integer, got ${minNew}`);
    minLength = minNew + promptLength;
  }

  const temperature = pick(opts.temperature, gen, "temperature", isNum) ?? HF_GENERATION_DEFAULTS.temperature;
  const topK = pick(opts.topK, gen, "top_k", isNum) ?? HF_GENERATION_DEFAULTS.topK;
  const topP = pick(opts.topP, gen, "top_p", isNum) ?? HF_GENERATION_DEFAULTS.topP;
  const minP = pick(opts.minP, gen, "min_p", isNum);
  const repetitionPenalty = pick(opts.repetitionPenalty, gen, "repetition_penalty", isNum) ?? HF_GENERATION_DEFAULTS.repetitionPenalty;
  const lengthPenalty = pick(opts.lengthPenalty, gen, "length_penalty", isNum) ?? HF_GENERATION_DEFAULTS.lengthPenalty;
  const earlyStopping = pick(opts.earlyStopping, gen, "early_stopping", isStop) ?? HF_GENERATION_DEFAULTS.earlyStopping;
  const stop = pick(opts.stopStrings, gen, "stop_strings", isStrings);
  const stopStrings = stop === undefined ? [] : Array.isArray(stop) ? [...stop] : [stop];

  // HF GenerationConfig.validate: the combinations it rejects.
  if (doSample && !(temperature > 0)) {
    throw new ConfigError(`temperature must be strictly positive when sampling, got ${temperature} (for greedy set doSample false)`);
  }
  if (!Number.isInteger(topK) || topK < 0) throw new ConfigError(`topK must be a non-negative integer, got ${topK}`);
  if (!(topP >= 0 && topP <= 1)) throw new ConfigError(`topP must be in [0, 1], got ${topP}`);
  if (minP !== undefined && !(minP >= 0 && minP <= 1)) throw new ConfigError(`minP must be in [0, 1], got ${minP}`);
  if (!(repetitionPenalty > 0)) throw new ConfigError(`repetitionPenalty must be strictly positive, got ${repetitionPenalty}`);
  if (numBeams === 1 && !doSample && numReturnSequences > 1) {
    throw new ConfigError(
      `numReturnSequences ${numReturnSequences} needs sampling or beam search: greedy decoding gives one sequence per prompt`,
    );
  }
  if (numBeams > 1 && numReturnSequences > numBeams) {
    throw new ConfigError(`numReturnSequences (${numReturnSequences}) must be ≤ numBeams (${numBeams})`);
  }
  if (stopStrings.length && !opts.tokenizer) {
    throw new ConfigError("stopStrings need a tokenizer (pass `tokenizer` to generate)");
  }
  if (stopStrings.some((s) => s.length === 0)) throw new ConfigError("stopStrings: an empty stop string would stop at once");
  if (opts.streamer && numBeams > 1) throw new ConfigError("streaming is not supported with beam search (numBeams > 1), as in HF");

  return {
    maxLength,
    minLength,
    minNewTokens: minNew,
    eosTokenIds,
    padTokenId,
    doSample,
    numBeams,
    numReturnSequences,
    temperature,
    topK,
    topP,
    minP,
    repetitionPenalty,
    lengthPenalty,
    earlyStopping,
    stopStrings,
    useCache: opts.useCache ?? true,
  };
}
