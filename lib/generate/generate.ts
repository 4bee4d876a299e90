/**
 * `generate`: greedy decoding, sampling and beam search over a causal LM, with
 * HF transformers' semantics (GenerationMixin._sample / _beam_search, 5.17).
 *
 * The story of one call:
 *   resolve options → validate prompts → mask + positions (left padding) →
 *   prefill (the whole prompt once, logits of the last position only) →
 *   per step: process scores → pick tokens → stopping criteria → decode one
 *   token per row with the KV cache (cost O(T) per token, not O(T²)).
 */
import { Tensor } from "../tensor/tensor.js";
import { InputError } from "../errors.js";
import { resolveGeneration, type ResolvedGeneration } from "./config.js";
import { applyProcessors, buildLogitsProcessors } from "./processors.js";
import { argmax, logSoftmaxInto, sampleCategorical, softmax } from "./sampling.js";
import { SeededRng } from "./rng.js";
import { anyDone, EosTokenCriterion, MaxLengthCriterion, StopStringCriterion, type StoppingCriterion } from "./stopping.js";
import { BeamSearch } from "./beam-search.js";
import { TokenStreamer, streamerSink } from "./streamer.js";
import { deviceSampleLoop } from "./device-loop.js";
import {
  checkPrompts,
  extendMaskAndPositions,
  lastPositionLogits,
  positionsFromMask,
  repeatInterleave,
  repeatTensorRows,
  resolveAttentionMask,
  decodeInputs,
  prefillArgs,
} from "./inputs.js";
import type {
  GenerateOptions,
  GenerateOutput,
  GenerateResult,
  GenerationCache,
  GenerationForwardOutput,
  GenerationModel,
  StreamChunk,
} from "./types.js";

/** Tokens chosen in one decoding step; `finished[r]` is true when row r ended with this token. */
export interface StepEvent {
  tokens: number[];
  finished: boolean[];
}

/** Everything a decoding loop needs, prepared once. */
export interface Prepared {
  cfg: ResolvedGeneration;
  V: number;
  /** [B, T] prompts as given (not expanded); empty rows when only inputsEmbeds was given. */
  prompts: number[][];
  /** The prompt embeddings fed to the prefill instead of the ids. */
  embeds: Tensor | undefined;
  mask: number[][];
  positions: number[][];
  expand: number;
  criteria: StoppingCriterion[];
}

function prepare(model: GenerationModel, opts: GenerateOptions): Prepared {
  const V = model.config.vocab_size;
  const embeds = opts.inputsEmbeds;
  if (!embeds || opts.inputIds !== undefined) checkPrompts(opts.inputIds, V);
  let prompts: number[][];
  let shape: number[][]; // [B][T] rows that give the attention mask its shape
  if (embeds) {
    const [B, T] = embeds.shape as [number, number];
    if (embeds.shape.length !== 3 || !(B >= 1) || !(T >= 1)) {
      throw new InputError(`generate: inputsEmbeds has shape [${embeds.shape.join(", ")}], expected [B, T, hidden] with B, T ≥ 1`);
    }
    if (opts.inputIds && (opts.inputIds.length !== B || opts.inputIds[0]!.length !== T)) {
      throw new InputError(`generate: inputIds is [${opts.inputIds.length}, ${opts.inputIds[0]!.length}] but inputsEmbeds is [${B}, ${T}, …]`);
    }
    prompts = opts.inputIds ? opts.inputIds.map((r) => [...r]) : Array.from({ length: B }, () => []);
    shape = opts.inputIds ?? Array.from({ length: B }, () => new Array<number>(T).fill(-1));
  } else {
    prompts = opts.inputIds!.map((r) => [...r]);
    shape = prompts;
  }
  const cfg = resolveGeneration(model, opts, prompts[0]!.length);
  if (embeds && !cfg.useCache) throw new InputError("generate: inputsEmbeds needs the KV cache (useCache: false re-runs the whole sequence from token ids)");
  // Only ids can reveal padding; with embeddings alone the mask is all ones unless given.
  const mask = resolveAttentionMask(shape, opts.attentionMask, opts.inputIds ? cfg.padTokenId : null, cfg.eosTokenIds);
  const criteria: StoppingCriterion[] = [new MaxLengthCriterion(cfg.maxLength)];
  if (cfg.stopStrings.length) criteria.push(new StopStringCriterion(opts.tokenizer!, cfg.stopStrings));
  if (cfg.eosTokenIds.length) criteria.push(new EosTokenCriterion(cfg.eosTokenIds));
  return { cfg, V, prompts, embeds, mask, positions: positionsFromMask(mask), expand: Math.max(cfg.numBeams, cfg.numReturnSequences), criteria };
}

/**
 * Runs the prompt through the model once for B prompts, then repeats every
 * row `expand` times (logits, attentions and the cache), which equals HF's
 * expand-then-prefill at 1/expand of the cost.
 */
async function prefill(model: GenerationModel, p: Prepared, opts: GenerateOptions) {
  const out = await model.forward(prefillArgs(p, opts.outputAttentions === true));
  let logits = lastPositionLogits(out.logits);
  let attentions = out.attentions;
  const cache = out.pastKeyValues;
  if (p.expand > 1) {
    logits = repeatTensorRows(new Tensor(logits, [p.prompts.length, p.V]), p.expand).data as Float32Array;
    attentions = attentions?.map((a) => repeatTensorRows(a, p.expand));
    if (cache) await cache.reorder(repeatInterleave(p.prompts.map((_, b) => b), p.expand));
  }
  return { logits, attentions, cache };
}

/** One decoding forward: the last token of each row with the cache, or the whole sequence without. */
async function decodeStep(
  model: GenerationModel,
  p: Prepared,
  seqs: number[][],
  mask: number[][],
  positions: number[][],
  cache: GenerationCache | undefined,
  outputAttentions: boolean,
): Promise<GenerationForwardOutput> {
  return model.forward(decodeInputs(p.cfg.useCache, seqs, mask, positions, cache, outputAttentions));
}

/**
 * Greedy / multinomial sampling loop (HF `_sample`) as an async generator:
 * yields each step's tokens, returns the final output. Breaking out of the
 * iteration stops generation (no further forward passes).
 */
async function* sampleLoop(model: GenerationModel, p: Prepared, opts: GenerateOptions): AsyncGenerator<StepEvent, GenerateOutput> {
  const { cfg, V } = p;
  const rows = p.prompts.length * p.expand;
  const seqs = repeatInterleave(p.prompts, p.expand);
  const mask = repeatInterleave(p.mask, p.expand);
  const positions = repeatInterleave(p.positions, p.expand);
  const processors = buildLogitsProcessors(cfg, p.prompts[0]!.length);
  const rng = cfg.doSample ? new SeededRng(opts.seed) : undefined;
  const hasEos = cfg.eosTokenIds.length > 0;
  const record = opts.returnDictInGenerate === true;
  const scores: Tensor[] = [];
  const rawLogits: Tensor[] = [];
  const attentions: Tensor[][] = [];
  const unfinished = new Array<boolean>(rows).fill(true);
  const probs = new Float64Array(V);

  let { logits, attentions: stepAttn, cache } = await prefill(model, p, opts);
  for (;;) {
    const processed = Float32Array.from(logits);
    applyProcessors(processors, seqs, processed, V);
    if (record) {
      if (opts.outputScores) scores.push(new Tensor(Float32Array.from(processed), [rows, V]));
      if (opts.outputLogits) rawLogits.push(new Tensor(logits, [rows, V]));
      if (opts.outputAttentions && stepAttn) attentions.push(stepAttn);
    }
    const tokens: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = processed.subarray(r * V, (r + 1) * V);
      let t = rng ? sampleCategorical(softmax(row, probs), rng) : argmax(row);
      // Finished rows keep receiving the pad token (HF, only when EOS stops rows).
      if (hasEos && !unfinished[r]) t = cfg.padTokenId!;
      tokens.push(t);
      seqs[r]!.push(t);
    }
    const done = anyDone(p.criteria, seqs);
    const finishedNow = done.map((d, r) => d && unfinished[r]!);
    for (let r = 0; r < rows; r++) if (done[r]) unfinished[r] = false;
    yield { tokens, finished: finishedNow };
    if (!unfinished.some((u) => u)) break;

    extendMaskAndPositions(mask, positions);
    const out = await decodeStep(model, p, seqs, mask, positions, cache, opts.outputAttentions === true);
    logits = lastPositionLogits(out.logits);
    stepAttn = out.attentions;
    cache = out.pastKeyValues ?? cache;
  }
  return dictOutput(seqs, record, opts, scores, rawLogits, attentions);
}

function dictOutput(
  sequences: number[][],
  record: boolean,
  opts: GenerateOptions,
  scores: Tensor[],
  logits: Tensor[],
  attentions: Tensor[][],
): GenerateOutput {
  const out: GenerateOutput = { sequences };
  if (!record) return out;
  if (opts.outputScores) out.scores = scores;
  if (opts.outputLogits) out.logits = logits;
  if (opts.outputAttentions) out.attentions = attentions;
  return out;
}

/** Beam search (HF `_beam_search`), plain or with sampling. */
async function beamSearch(model: GenerationModel, p: Prepared, opts: GenerateOptions): Promise<GenerateOutput> {
  const { cfg, V } = p;
  const nb = cfg.numBeams;
  const rows = p.prompts.length * nb;
  const beams = new BeamSearch(p.prompts, {
    numBeams: nb,
    numEosTokens: cfg.eosTokenIds.length,
    lengthPenalty: cfg.lengthPenalty,
    earlyStopping: cfg.earlyStopping,
    maxLength: cfg.maxLength,
    doSample: cfg.doSample,
  });
  const mask = repeatInterleave(p.mask, nb);
  const positions = repeatInterleave(p.positions, nb);
  const processors = buildLogitsProcessors(cfg, p.prompts[0]!.length);
  const rng = cfg.doSample ? new SeededRng(opts.seed) : undefined;
  const record = opts.returnDictInGenerate === true;
  const scores: Tensor[] = [];
  const rawLogits: Tensor[] = [];
  const attentions: Tensor[][] = [];
  const stop = (cands: number[][]) => anyDone(p.criteria, cands);

  let { logits, attentions: stepAttn, cache } = await prefill(model, p, opts);
  for (;;) {
    // HF applies the processors to log-softmax scores in beam search.
    const logProbs = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) logSoftmaxInto(logits.subarray(r * V, (r + 1) * V), logProbs.subarray(r * V, (r + 1) * V));
    applyProcessors(processors, beams.runningSequences(), logProbs, V);
    if (record) {
      if (opts.outputScores) scores.push(new Tensor(Float32Array.from(logProbs), [rows, V]));
      if (opts.outputLogits) rawLogits.push(new Tensor(logits, [rows, V]));
      if (opts.outputAttentions && stepAttn) attentions.push(stepAttn);
    }
    const order = beams.step(logProbs, V, stop, rng);
    if (!beams.hasUnfinished()) break;
    // Keep the cache rows of the beams that survived, in their new order.
    if (cache) await cache.reorder(order);
    extendMaskAndPositions(mask, positions);
    const seqs = beams.runningSequences();
    const out = await decodeStep(model, p, seqs, mask, positions, cache, opts.outputAttentions === true);
    logits = lastPositionLogits(out.logits);
    stepAttn = out.attentions;
    cache = out.pastKeyValues ?? cache;
  }
  // HF fills unused positions with `pad_token_id or eos_token_id[0]` (Python `or`: a pad id of 0 counts as unset).
  const fill = cfg.eosTokenIds.length ? (cfg.padTokenId ? cfg.padTokenId : cfg.eosTokenIds[0]!) : -1;
  const res = beams.result(cfg.numReturnSequences, fill);
  const out = dictOutput(res.sequences, record, opts, scores, rawLogits, attentions);
  if (record) {
    out.beamIndices = res.beamIndices;
    if (opts.outputScores) out.sequencesScores = res.scores;
  }
  return out;
}

/**
 * Generates continuations of `opts.inputIds` ([B, T], left-padded with an
 * attentionMask for batches). Returns the full sequences [rows, L] (prompt +
 * new tokens; rows = B × numReturnSequences), or with returnDictInGenerate a
 * dict with per-step scores / logits / attentions.
 */
export async function generate<O extends GenerateOptions>(model: GenerationModel, opts: O): Promise<GenerateResult<O>> {
  return (await generateAny(model, opts)) as GenerateResult<O>;
}

async function generateAny(model: GenerationModel, opts: GenerateOptions): Promise<number[][] | GenerateOutput> {
  const p = prepare(model, opts);
  let out: GenerateOutput;
  if (p.cfg.numBeams > 1) {
    out = await beamSearch(model, p, opts);
  } else {
    const sink = opts.streamer ? streamerSink(opts.streamer) : undefined;
    const streamer = sink && newTokenStreamer(p, opts, sink.put);
    const loop = deviceSampleLoop(model, p, opts) ?? sampleLoop(model, p, opts);
    for (;;) {
      const r = await loop.next();
      if (r.done) {
        out = r.value;
        break;
      }
      streamer?.step(r.value.tokens, r.value.finished);
      if (streamer) await yieldToEventLoop();
    }
    streamer?.end();
    sink?.end();
  }
  return opts.returnDictInGenerate ? out : out.sequences;
}

function newTokenStreamer(p: Prepared, opts: GenerateOptions, put: (c: StreamChunk) => void): TokenStreamer {
  return new TokenStreamer(
    put,
    repeatInterleave(p.prompts, p.expand),
    repeatInterleave(p.mask, p.expand),
    opts.tokenizer,
    opts.skipSpecialTokens ?? true,
  );
}

/**
 * On the CPU every decode step settles in microtasks, which starves the event
 * loop: a streaming consumer's output (a kernel's stdout messages, a socket)
 * would only go out after the last token. One macrotask turn per streamed step
 * lets it flush (microseconds per token).
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Streams a generation as it happens: an async iterable of chunks (the new
 * token ids of a row and the text they completed — never part of a UTF-8
 * character). `break` out of the loop to stop generating.
 *
 *   for await (const c of streamGenerate(model, { inputIds, tokenizer, maxNewTokens: 50 })) process.stdout.write(c.text);
 */
export async function* streamGenerate(model: GenerationModel, opts: Omit<GenerateOptions, "streamer">): AsyncGenerator<StreamChunk, void> {
  const p = prepare(model, opts);
  if (p.cfg.numBeams > 1) throw new InputError("streamGenerate: beam search (numBeams > 1) cannot stream, as in HF");
  const pending: StreamChunk[] = [];
  const streamer = newTokenStreamer(p, opts, (c) => pending.push(c));
  const loop = deviceSampleLoop(model, p, opts) ?? sampleLoop(model, p, opts);
  try {
    for (;;) {
      const r = await loop.next();
      if (r.done) break;
      streamer.step(r.value.tokens, r.value.finished);
      while (pending.length) yield pending.shift()!;
      await yieldToEventLoop();
    }
    streamer.end();
    while (pending.length) yield pending.shift()!;
  } finally {
    await loop.return(undefined as never);
  }
}
