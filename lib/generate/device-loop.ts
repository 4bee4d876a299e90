/**
 * The greedy / sampling loop (HF `_sample`) with the next token chosen on the
 * model's device: the logits never leave the backend, a TokenSelector
 * (lib/backend/token-select.ts) applies the processors, picks each row's id,
 * flags EOS and pads finished rows, and only the ids come back (4 bytes per
 * row per step). Host work per step: the random numbers (the same SeededRng
 * stream as the host loop: one uniform per row per step, in row order), the
 * max-length and stop-string criteria, and the bookkeeping of sequences.
 *
 * Used when the model's backend offers `tokenSelector` (WebGPU) and it takes
 * the settings; otherwise — and when per-step scores or logits are asked
 * for, which must come back anyway — generate runs the host loop.
 */
import { Tensor } from "../tensor/tensor.js";
import { InputError } from "../errors.js";
import type { TokenSelector } from "../backend/token-select.js";
import { buildLogitsProcessors } from "./processors.js";
import { SeededRng } from "./rng.js";
import { anyDone, EosTokenCriterion } from "./stopping.js";
import { decodeInputs, extendMaskAndPositions, prefillArgs, repeatInterleave, repeatTensorRows } from "./inputs.js";
import type { Prepared, StepEvent } from "./generate.js";
import type { GenerateOptions, GenerateOutput, GenerationDeviceOutput, GenerationModel } from "./types.js";

type DeviceModel = GenerationModel & Required<Pick<GenerationModel, "backend" | "forwardOnDevice">>;

/** The device loop for this call, or undefined when generate must select on the host. */
export function deviceSampleLoop(model: GenerationModel, p: Prepared, opts: GenerateOptions): AsyncGenerator<StepEvent, GenerateOutput> | undefined {
  const be = model.backend;
  if (!model.forwardOnDevice || !be?.tokenSelector) return undefined;
  if (opts.returnDictInGenerate && (opts.outputScores || opts.outputLogits)) return undefined;
  const { cfg } = p;
  buildLogitsProcessors(cfg, p.prompts[0]!.length); // the same validation (and errors) as the host loop
  const seqs = repeatInterleave(p.prompts, p.expand);
  const selector = be.tokenSelector({
    rows: seqs.length,
    vocabSize: p.V,
    sampling: cfg.doSample ? { temperature: cfg.temperature, topK: cfg.topK, topP: cfg.topP, minP: cfg.minP } : null,
    repetitionPenalty: cfg.repetitionPenalty,
    eosTokenIds: cfg.eosTokenIds,
    padTokenId: cfg.padTokenId,
    prompts: seqs,
  });
  if (!selector) return undefined;
  return deviceLoop(model as DeviceModel, p, opts, seqs, selector);
}

async function* deviceLoop(
  model: DeviceModel, p: Prepared, opts: GenerateOptions, seqs: number[][], selector: TokenSelector,
): AsyncGenerator<StepEvent, GenerateOutput> {
  const { cfg } = p;
  const be = model.backend;
  const rows = seqs.length;
  const mask = repeatInterleave(p.mask, p.expand);
  const positions = repeatInterleave(p.positions, p.expand);
  const promptLength = p.prompts[0]!.length;
  const rng = cfg.doSample ? new SeededRng(opts.seed) : undefined;
  const uniforms = rng ? new Float32Array(rows) : undefined;
  const hasEos = cfg.eosTokenIds.length > 0;
  // EOS is decided on the device; max length and stop strings here.
  const hostCriteria = p.criteria.filter((c) => !(c instanceof EosTokenCriterion));
  const attentions: Tensor[][] = [];
  const unfinished = new Array<boolean>(rows).fill(true);
  let out: GenerationDeviceOutput | undefined;
  try {
    out = await prefillOnDevice(model, p, opts);
    for (;;) {
      if (opts.returnDictInGenerate && opts.outputAttentions && out.attentions) attentions.push(out.attentions);
      if (rng) for (let r = 0; r < rows; r++) uniforms![r] = rng.nextFloat();
      const len = seqs[0]!.length;
      const suppressEos = hasEos && ((cfg.minLength > 0 && len < cfg.minLength) ||
        (cfg.minNewTokens !== undefined && cfg.minNewTokens > 0 && len - promptLength < cfg.minNewTokens));
      const choice = await selector.select(out.logits, { suppressEos, uniforms });
      be.release(out.logits);
      const tokens = Array.from(choice.tokens);
      tokens.forEach((t, r) => seqs[r]!.push(t));
      const byHost = anyDone(hostCriteria, seqs);
      const finishedNow = tokens.map((_, r) => unfinished[r]! && (choice.eos[r]! || byHost[r]!));
      // Rows a host criterion stopped receive the pad id from now on (HF, when EOS can stop rows).
      const padFromNow = finishedNow.flatMap((f, r) => (f && !choice.eos[r] ? [r] : []));
      if (hasEos && padFromNow.length) selector.markFinished(padFromNow);
      for (let r = 0; r < rows; r++) if (finishedNow[r]) unfinished[r] = false;
      yield { tokens, finished: finishedNow };
      if (!unfinished.some((u) => u)) break;

      extendMaskAndPositions(mask, positions);
      out = await decodeOnDevice(model, p, seqs, mask, positions, out.pastKeyValues, opts.outputAttentions === true);
    }
  } finally {
    selector.dispose();
  }
  const res: GenerateOutput = { sequences: seqs };
  if (opts.returnDictInGenerate && opts.outputAttentions) res.attentions = attentions;
  return res;
}

/** The prompt once (B rows), then every row repeated `expand` times on the device, as the host loop's prefill. */
async function prefillOnDevice(model: DeviceModel, p: Prepared, opts: GenerateOptions): Promise<GenerationDeviceOutput> {
  const out = await model.forwardOnDevice(prefillArgs(p, opts.outputAttentions === true));
  if (p.expand === 1) return out;
  const order = repeatInterleave(p.prompts.map((_, b) => b), p.expand);
  const logits = model.backend.selectBatch(out.logits, Int32Array.from(order));
  model.backend.release(out.logits);
  if (out.pastKeyValues) await out.pastKeyValues.reorder(order);
  return { ...out, logits, attentions: out.attentions?.map((a) => repeatTensorRows(a, p.expand)) };
}

/** One decoding forward on the device: the last token of each row with the cache, or the whole sequence without. */
function decodeOnDevice(
  model: DeviceModel, p: Prepared, seqs: number[][], mask: number[][], positions: number[][],
  cache: GenerationDeviceOutput["pastKeyValues"], outputAttentions: boolean,
): Promise<GenerationDeviceOutput> {
  return model.forwardOnDevice(decodeInputs(p.cfg.useCache, seqs, mask, positions, cache, outputAttentions));
}
