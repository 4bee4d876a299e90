/**
 * DPO as TRL's DPOTrainer (trl 1.13) trains a PEFT model: the policy is the
 * base model with a LoRA adapter, the reference is the same base model with
 * the adapter disabled (or log-probabilities precomputed with it disabled,
 * TRL's precompute_ref_log_probs). A batch of pairs is one forward of
 * [prompt+chosen…, prompt+rejected…] (TRL's collator: keep the first
 * max_length tokens, right padding); the loss and metrics are dpo-loss.ts.
 *
 * Cost: lm_head runs only at the positions that predict a completion token
 * (the only logits TRL's loss and metrics read), for the policy (with
 * gradient) and the reference (without).
 *
 * The guard: TRL's metrics can look perfect (rewards/accuracies 1.0) while the
 * policy's samples turn to gibberish: the margin grows because both
 * completions' log-probs fall, the chosen ones too. Each step reports the
 * chosen completions' mean log-prob per token under the policy next to the
 * reference's ("guard/chosen_logp_per_token", "guard/ref_chosen_logp_per_token")
 * and warns (or stops) when the policy's falls more than `guard.maxDropPerToken`
 * nats below the reference's. With the reference's logits at hand (not
 * precomputed) a step also reports "kl_to_ref": the mean per-token KL(π ‖ ref)
 * of the next-token distributions at the batch's completion positions.
 */
import { ConfigError, InputError, LlamaError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import type { OnProgress } from "../progress.js";
import type { Backend } from "../backend/backend.js";
import { Var } from "../autograd/var.js";
import { IGNORE_INDEX, type SoftmaxRowsKernel } from "../autograd/loss.js";
import { backprop, isDifferentiable } from "../autograd/differentiable.js";
import type { LlamaForCausalLM } from "../model/causal-lm.js";
import type { LoraModel } from "./lora-train.js";
import { collateDpo, type DpoExample } from "./preference-data.js";
import { checkDpoLossConfig, completionKl, dpoLoss, dpoMetrics, sequenceLogps, type DpoLossType } from "./dpo-loss.js";
import { trainLoop, withTrainerDefaults, type StepLog, type TrainLoopOptions, type TrainResult } from "./train-loop.js";

export type { DpoLossType } from "./dpo-loss.js";

export interface DpoGuardOptions {
  /** Trip when the policy's chosen log-prob per token is this many nats below the reference's (default 1.0). */
  maxDropPerToken?: number;
  /** Stop training when it trips (default false: warn once and go on). */
  stop?: boolean;
}

export interface DpoOptions {
  /** TRL's beta (default 0.1). */
  beta?: number;
  /** TRL's loss_type (default "sigmoid"): one loss, or several summed; ["sigmoid", "sft"] is TRL's RPO. */
  lossType?: DpoLossType | readonly DpoLossType[];
  /** TRL's loss_weights, one per loss type (default 1 each). */
  lossWeights?: readonly number[];
  /** TRL's label_smoothing (default 0; only the "robust" loss uses it, as in TRL). */
  labelSmoothing?: number;
  /** TRL's max_length (default 1024; null = no truncation): prompt + completion keep their first max_length tokens. */
  maxLength?: number | null;
  /** The id padding uses (TRL: the tokenizer's pad token, else EOS; default the model's pad_token_id, else EOS). Padding is masked. */
  padTokenId?: number;
  /** Compute the reference log-probs once before training (TRL's precompute_ref_log_probs); default false. */
  precomputeRefLogProbs?: boolean;
  /** Progress of that pass (pairs done of all, as "items"), before training's own onProgress starts. */
  onReferenceProgress?: OnProgress;
  /**
   * What the policy is compared with. "base" (default; TRL's reference when it
   * makes the adapter itself from a peft_config): the same model with the
   * adapter disabled. "initial-adapter": the adapter as it was before the
   * first update, for a policy that starts from a trained (e.g. SFT) adapter;
   * TRL 1.13 given such a PeftModel adds a frozen "ref" copy of it (the DPO
   * paper's π_ref = π_SFT). That reference never changes, so its log-probs
   * are computed once, before training (precomputeReferenceLogps).
   */
  reference?: "base" | "initial-adapter";
  /** The collapse guard (see the file comment); false turns it off. */
  guard?: DpoGuardOptions | false;
  /** Where guard warnings go (default: one line on stderr, once per run). */
  onWarning?: (message: string) => void;
}

/**
 * The loop's options plus DPO's. Where they are left open, the optimizer is set as
 * TRL's trainer sets it: AdamW with weight_decay 0 and gradient clipping at
 * max_grad_norm 1.0 (maxGradNorm 0 turns clipping off).
 */
export interface DpoTrainOptions extends TrainLoopOptions, DpoOptions {}

export interface DpoTrainResult extends TrainResult {
  /** Steps at which the guard tripped. */
  guardTrips: number[];
}

interface Resolved {
  beta: number;
  lossType: DpoLossType | readonly DpoLossType[];
  lossWeights?: readonly number[];
  labelSmoothing: number;
  maxLength: number | null;
  padTokenId: number;
  reference: "base" | "initial-adapter";
}

function resolve(policy: LoraModel, o: DpoOptions): Resolved {
  const c = policy.base.config;
  const eos = Array.isArray(c.eos_token_id) ? c.eos_token_id[0] : c.eos_token_id;
  const pad = o.padTokenId ?? c.pad_token_id ?? eos;
  if (pad === null || pad === undefined) throw new ConfigError("DPO: the model has neither pad_token_id nor eos_token_id; pass padTokenId");
  const r: Resolved = {
    beta: o.beta ?? 0.1, lossType: o.lossType ?? "sigmoid", lossWeights: o.lossWeights, labelSmoothing: o.labelSmoothing ?? 0,
    maxLength: o.maxLength === undefined ? 1024 : o.maxLength, padTokenId: pad, reference: o.reference ?? "base",
  };
  if (r.reference !== "base" && r.reference !== "initial-adapter") throw new ConfigError(`DPO reference "${String(r.reference)}": expected "base" or "initial-adapter"`);
  checkDpoLossConfig(r);
  if (r.maxLength !== null && !(Number.isInteger(r.maxLength) && r.maxLength >= 2)) throw new ConfigError(`DPO maxLength ${r.maxLength}: expected an integer ≥ 2 or null`);
  if (!("lm_head" in policy.base)) throw new ConfigError("DPO: the policy must be a causal LM with a LoRA adapter (LoraModel on a LlamaForCausalLM)");
  return r;
}

/** The backend's softmax-rows kernel where it has one (sequenceLogps falls back to JavaScript). */
function softmaxRowsOf(be: Backend): SoftmaxRowsKernel | undefined {
  return isDifferentiable(be) ? be.softmaxRows : undefined;
}

/** A collated batch and where its completion tokens are predicted. */
interface Prepared {
  inputIds: number[][];
  attentionMask: number[][];
  /** Slots per row. */
  K: number;
  /** [2B·K] position t whose logits predict a completion token (0 for an unused slot). */
  index: Int32Array;
  /** [2B·K] that token, or IGNORE_INDEX. */
  targets: Int32Array;
  /** [2B] completion tokens per row (after truncation). */
  lengths: number[];
  tokens: number;
}

function prepare(examples: readonly DpoExample[], r: Resolved): Prepared {
  for (const e of examples) {
    if (e.chosenIds.length === 0 || e.rejectedIds.length === 0) throw new InputError("DPO: an example with an empty chosen or rejected completion");
  }
  const { inputIds, attentionMask, completionMask } = collateDpo(examples, r.padTokenId, r.maxLength);
  const picks = completionMask.map((m) => {
    const p: number[] = [];
    for (let t = 0; t + 1 < m.length; t++) if (m[t + 1] === 1) p.push(t);
    return p;
  });
  const K = Math.max(1, ...picks.map((p) => p.length));
  const index = new Int32Array(picks.length * K);
  const targets = new Int32Array(picks.length * K).fill(IGNORE_INDEX);
  picks.forEach((p, row) => p.forEach((t, j) => {
    index[row * K + j] = t;
    targets[row * K + j] = inputIds[row]![t + 1]!;
  }));
  const lengths = completionMask.map((m) => m.reduce((a, b) => a + b, 0));
  const tokens = attentionMask.reduce((s, m) => s + m.reduce((a, b) => a + b, 0), 0);
  return { inputIds, attentionMask, K, index, targets, lengths, tokens };
}

/** The logits [2B, K, V] at the completion-predicting positions, with the adapter (tracked when `grad`) or without it (the reference). */
async function completionLogits(policy: LoraModel, b: Prepared, mode: "policy" | "policy-nograd" | "reference"): Promise<Tensor> {
  const base = policy.base as LlamaForCausalLM;
  const be = base.backend;
  const run = async (): Promise<Tensor> => {
    const dec = await base.model.decode({ inputIds: b.inputIds, attentionMask: b.attentionMask, useCache: false });
    const sel = be.selectPositions(dec.hidden, b.index, b.K); // [2B, K, hidden]
    be.release(dec.hidden);
    const logits = base.lm_head.forward(be, sel); // [2B, K, V]
    be.release(sel);
    const host = await be.read(logits);
    be.release(logits);
    return host;
  };
  if (mode === "reference") return policy.withAdapterDisabled(run);
  return policy.withAdapter(mode === "policy", run);
}

/**
 * Reference log-probs [2B] of a batch: precomputed when every example has them, else a
 * forward with the adapter disabled (then also its logits, for the KL metric), or for
 * the "initial-adapter" reference, while `precomputing` it, with the adapter as it is now.
 */
async function referenceLogps(policy: LoraModel, examples: readonly DpoExample[], b: Prepared, r: Resolved, precomputing = false): Promise<{ logps: Float64Array; logits?: Float32Array }> {
  const B = examples.length;
  if (examples.every((e) => e.refChosenLogp !== undefined && e.refRejectedLogp !== undefined)) {
    return { logps: Float64Array.from([...examples.map((e) => e.refChosenLogp!), ...examples.map((e) => e.refRejectedLogp!)]) };
  }
  const fromAdapter = r.reference === "initial-adapter";
  if (fromAdapter && !precomputing) {
    throw new InputError("DPO: reference \"initial-adapter\" needs every example's reference log-probs computed before the first update (precomputeReferenceLogps, as trainDpo does)");
  }
  const t = await completionLogits(policy, b, fromAdapter ? "policy-nograd" : "reference");
  const logits = t.toFloat32();
  const { logps } = sequenceLogps(Var.constant(logits, t.shape), b.targets, softmaxRowsOf(policy.base.backend));
  if (logps.size !== 2 * B) throw new LlamaError("DPO: reference logps have the wrong size");
  return { logps: Float64Array.from(logps.value), logits };
}

/** The metrics beside TRL's: the guard's two numbers, and the KL to the reference when its logits were computed. */
function extraMetrics(policyLogps: ArrayLike<number>, ref: { logps: Float64Array; logits?: Float32Array }, policyLogits: Float32Array, b: Prepared, V: number): Record<string, number> {
  const g = guardMetrics(policyLogps, ref.logps, b.lengths);
  const out: Record<string, number> = { "guard/chosen_logp_per_token": g.policy, "guard/ref_chosen_logp_per_token": g.ref };
  if (ref.logits) out.kl_to_ref = completionKl(policyLogits, ref.logits, b.targets, V);
  return out;
}

/** The guard's two numbers: mean chosen log-prob per completion token under the policy and under the reference. */
function guardMetrics(policy: ArrayLike<number>, ref: ArrayLike<number>, lengths: readonly number[]): { policy: number; ref: number } {
  const B = policy.length / 2;
  let p = 0, r = 0;
  for (let i = 0; i < B; i++) {
    const n = Math.max(1, lengths[i]!);
    p += policy[i]! / n;
    r += ref[i]! / n;
  }
  return { policy: p / B, ref: r / B };
}

/**
 * One DPO step's forward and backward on a batch of pairs (TRL's
 * compute_loss): gradients accumulate into the adapter's A and B. Returns
 * the loss and TRL's metrics (plus the reference logps and the guard's numbers).
 */
export async function dpoLossAndGrad(policy: LoraModel, examples: readonly DpoExample[], options: DpoOptions = {}): Promise<{ loss: number; metrics: Record<string, number>; tokens: number }> {
  const be = policy.base.backend;
  if (!isDifferentiable(be)) throw new LlamaError("DPO training needs the model on a differentiable backend (createDifferentiableBackend(\"cpu\" | \"webgpu\"))");
  if (examples.length === 0) throw new InputError("DPO: an empty batch");
  const r = resolve(policy, options);
  const b = prepare(examples, r);
  const ref = await referenceLogps(policy, examples, b, r);
  const logits = await completionLogits(policy, b, "policy");
  const lv = be.varOf(logits);
  const { logps, stats } = sequenceLogps(lv, b.targets, be.softmaxRows);
  const loss = dpoLoss(logps, ref.logps, { lengths: b.lengths, chosenTokens: stats.chosenTokens }, r);
  const values = lv.value; // read before the backward frees the graph
  await backprop(be, loss);
  const metrics = { ...dpoMetrics(logps.value, ref.logps, stats, r.beta), ...extraMetrics(logps.value, ref, values, b, logits.shape[2]!) };
  return { loss: loss.item(), metrics, tokens: b.tokens };
}

/** The same loss and metrics without a gradient, averaged over `examples` in batches (held-out evaluation). */
export async function dpoEvaluate(policy: LoraModel, examples: readonly DpoExample[], options: DpoOptions & { batchSize?: number } = {}): Promise<Record<string, number>> {
  const r = resolve(policy, options);
  const bs = options.batchSize ?? 8;
  const sums: Record<string, number> = {};
  let weight = 0;
  for (let i = 0; i < examples.length; i += bs) {
    const batch = examples.slice(i, i + bs);
    const b = prepare(batch, r);
    const ref = await referenceLogps(policy, batch, b, r);
    const logits = await completionLogits(policy, b, "policy-nograd");
    const values = logits.toFloat32();
    const { logps, stats } = sequenceLogps(Var.constant(values, logits.shape), b.targets, softmaxRowsOf(policy.base.backend));
    const loss = dpoLoss(logps, ref.logps, { lengths: b.lengths, chosenTokens: stats.chosenTokens }, r).item();
    const m = { loss, ...dpoMetrics(logps.value, ref.logps, stats, r.beta), ...extraMetrics(logps.value, ref, values, b, logits.shape[2]!) };
    for (const [k, v] of Object.entries(m)) sums[k] = (sums[k] ?? 0) + v * batch.length;
    weight += batch.length;
  }
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / weight]));
}

/**
 * TRL's precompute_ref_log_probs: every example's reference log-probs
 * (adapter disabled, or with `reference: "initial-adapter"` the adapter as it
 * is now), computed once in batches; returns the examples with
 * refChosenLogp/refRejectedLogp set (the inputs are not changed).
 */
export async function precomputeReferenceLogps(policy: LoraModel, examples: readonly DpoExample[], options: DpoOptions & { batchSize?: number } = {}): Promise<DpoExample[]> {
  const r = resolve(policy, options);
  const bs = options.batchSize ?? 8;
  const out: DpoExample[] = [];
  options.onReferenceProgress?.(0, examples.length, { unit: "items" });
  for (let i = 0; i < examples.length; i += bs) {
    const batch = examples.slice(i, i + bs).map((e) => ({ ...e, refChosenLogp: undefined, refRejectedLogp: undefined }));
    const { logps } = await referenceLogps(policy, batch, prepare(batch, r), r, true);
    batch.forEach((e, k) => out.push({ ...e, refChosenLogp: logps[k]!, refRejectedLogp: logps[batch.length + k]! }));
    options.onReferenceProgress?.(out.length, examples.length, { unit: "items" });
  }
  return out;
}

/**
 * Trains the policy's LoRA adapter with DPO on tokenized pairs
 * (tokenizeDpoRows), with the one training loop: TRL's metrics in every
 * step log and in onProgress's info.metrics, the guard after every step.
 */
export async function trainDpo(policy: LoraModel, examples: readonly DpoExample[], o: DpoTrainOptions): Promise<DpoTrainResult> {
  const r = resolve(policy, o);
  const precompute = o.precomputeRefLogProbs === true || r.reference === "initial-adapter";
  const data = precompute ? await precomputeReferenceLogps(policy, examples, o) : examples;
  const guard = o.guard === false ? undefined : { maxDropPerToken: o.guard?.maxDropPerToken ?? 1.0, stop: o.guard?.stop ?? false };
  const warn = o.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const guardTrips: number[] = [];
  let tokens = 0;
  const result = await trainLoop(data, {
    name: "dpo",
    parameters: policy.parameters(),
    lossAndGrad: async (batch) => {
      const { loss, metrics, tokens: t } = await dpoLossAndGrad(policy, batch, o);
      tokens += t;
      return { loss, metrics: { ...metrics, num_tokens: tokens } };
    },
    length: (e) => e.promptIds.length + Math.max(e.chosenIds.length, e.rejectedIds.length),
    afterStep: (log: StepLog) => {
      if (!guard) return false;
      const p = log.metrics["guard/chosen_logp_per_token"]!, ref = log.metrics["guard/ref_chosen_logp_per_token"]!;
      if (!(ref - p > guard.maxDropPerToken)) return false;
      guardTrips.push(log.step);
      if (guardTrips.length === 1 || guard.stop) {
        warn(`DPO step ${log.step}: the chosen completions' log-prob fell to ${p.toFixed(3)} nats/token under the policy, ` +
          `${(ref - p).toFixed(3)} below the reference's ${ref.toFixed(3)} (guard ${guard.maxDropPerToken}): the policy is drifting from fluent text` +
          (guard.stop ? "; stopping" : "; lower the learning rate or train fewer steps"));
      }
      return guard.stop;
    },
  }, withTrainerDefaults(o));
  return { ...result, guardTrips };
}
