/**
 * A reward model as TRL's RewardTrainer (trl 1.13) trains it: a
 * LlamaForSequenceClassification with one label reads a scalar reward at
 * each sequence's last non-pad token, and a batch of pairs is scored as
 * [chosen…, rejected…] with
 *
 *   loss = −mean log σ(r_c − r_r [− margin])  [+ c · mean (r_c + r_r)²]
 *
 * (the margin when the data has one, c = center_rewards_coefficient when set).
 * Metrics as TRL logs them: accuracy (r_c > r_r), margin (mean r_c − r_r),
 * min/mean/max_reward over both halves, num_tokens (cumulative).
 *
 * TRL pads with the tokenizer's pad token, else EOS, and sets
 * config.pad_token_id to it; every sequence ends with EOS, so with EOS as
 * the pad the reward is read at the token before the final EOS. We pool the
 * same way (lastNonPadPositions with that id).
 *
 * Trained either with LoRA (PEFT SEQ_CLS: the pairs plus the whole `score`
 * head, saved as PEFT saves it) or head-only (just `score`, saved as a full
 * HF LlamaForSequenceClassification folder, as TRL saves a model trained
 * without PEFT).
 */
import { ConfigError, InputError, LlamaError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { Var, result } from "../autograd/var.js";
import { backprop, isDifferentiable } from "../autograd/differentiable.js";
import { LlamaForSequenceClassification, lastNonPadPositions } from "../model/seq-cls.js";
import { buildFromCheckpoint, type FromPretrainedOptions } from "../model/pretrained.js";
import type { WeightLoader } from "../model/modules.js";
import { SeededRng } from "../generate/rng.js";
import { LoraModel, scoreHeadValues, type LoraTrainConfigInit } from "./lora-train.js";
import { readLoraAdapter } from "./lora.js";
import { collateReward, type RewardExample } from "./preference-data.js";
import { trainLoop, withTrainerDefaults, type TrainLoopOptions, type TrainResult } from "./train-loop.js";

const f = Math.fround;

export interface RewardLossOptions {
  /** TRL's center_rewards_coefficient (off by default; 0.01 is the paper's). */
  centerRewardsCoefficient?: number | null;
}

/** TRL's reward metrics of one batch. */
export interface RewardMetrics {
  accuracy: number;
  margin: number;
  min_reward: number;
  mean_reward: number;
  max_reward: number;
}

/**
 * The reward loss of a batch from its rewards [2B] (chosen first): a Var
 * with the analytic backward. In float32 like torch's, accumulated in float64.
 */
export function rewardLoss(rewards: Var, margin: readonly number[] | undefined, options: RewardLossOptions = {}): Var {
  const n = rewards.size / 2;
  if (!Number.isInteger(n) || n < 1) throw new LlamaError(`rewardLoss: ${rewards.size} rewards, expected [chosen…, rejected…] (an even count)`);
  if (margin && margin.length !== n) throw new LlamaError(`rewardLoss: ${margin.length} margins for ${n} pairs`);
  const coef = options.centerRewardsCoefficient ?? 0;
  const r = rewards.value;
  let loss = 0, center = 0;
  const sig = new Float64Array(n); // σ(−d): the logsigmoid's derivative
  for (let i = 0; i < n; i++) {
    const d = r[i]! - r[n + i]! - (margin ? margin[i]! : 0);
    loss += softplus(-d);
    sig[i] = 1 / (1 + Math.exp(d));
    center += (r[i]! + r[n + i]!) ** 2;
  }
  const value = loss / n + (coef ? coef * (center / n) : 0);
  return result(new Float32Array([value]), [], [rewards], () => ({
    name: "rewardLoss",
    inputs: [rewards],
    backward: (g) => {
      const dr = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const c = coef ? (coef * 2 * (r[i]! + r[n + i]!)) / n : 0;
        dr[i] = f(g[0]! * (-sig[i]! / n + c));
        dr[n + i] = f(g[0]! * (sig[i]! / n + c));
      }
      return [dr];
    },
  }));
}

/** log(1 + eˣ) without overflow. */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** TRL's metrics from a batch's rewards [2B] (chosen first). */
export function rewardMetrics(rewards: ArrayLike<number>): RewardMetrics {
  const n = rewards.length / 2;
  let acc = 0, margin = 0, sum = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < 2 * n; i++) {
    const v = rewards[i]!;
    sum += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  for (let i = 0; i < n; i++) {
    if (rewards[i]! > rewards[n + i]!) acc++;
    margin += rewards[i]! - rewards[n + i]!;
  }
  return { accuracy: acc / n, margin: margin / n, min_reward: min, mean_reward: sum / (2 * n), max_reward: max };
}

/**
 * A LlamaForSequenceClassification with one label for a reward model, from an
 * HF folder: a reward checkpoint (num_labels 1, with `score.weight`) as it is,
 * or a causal LM checkpoint as TRL's AutoModelForSequenceClassification(…,
 * num_labels=1) loads it: the decoder's weights, lm_head ignored, and a new
 * `score` head drawn from N(0, initializer_range²) (seeded; HF's init, not torch's stream).
 */
export async function loadRewardBase(dir: string, options: FromPretrainedOptions & { seed?: number } = {}): Promise<LlamaForSequenceClassification> {
  return buildFromCheckpoint(dir, options, (config, backend, load) => {
    const loader: WeightLoader = (name, shape) => {
      if (name !== "score.weight") return load(name, shape);
      try {
        return load(name, shape);
      } catch (err) {
        if (!/missing tensor/.test((err as Error).message)) throw err;
        const rng = new SeededRng(options.seed ?? 0);
        const std = typeof config.raw.initializer_range === "number" ? config.raw.initializer_range : 0.02;
        const w = Float32Array.from({ length: shape[0]! * shape[1]! }, () => gaussian(rng) * std);
        return backend.upload(new Tensor(w, shape, "f32"));
      }
    };
    if (config.num_labels !== 1) {
      if (config.architectures.includes("LlamaForSequenceClassification")) {
        throw new ConfigError(`${dir}: num_labels = ${config.num_labels}; a reward model needs num_labels 1 (one scalar reward per sequence)`);
      }
      config.num_labels = 1;
      config.id2label = { 0: "LABEL_0" };
      config.architectures = ["LlamaForSequenceClassification"];
    }
    return new LlamaForSequenceClassification(config, backend, loader);
  });
}

function gaussian(rng: SeededRng): number {
  // Box–Muller on two uniforms in (0, 1].
  const u = 1 - rng.nextFloat(), v = rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export interface RewardModelOptions {
  /** LoRA settings (PEFT SEQ_CLS), or a LoraModel made on `base` (e.g. fromValues); omit or null for head-only training. */
  lora?: LoraTrainConfigInit | LoraModel | null;
  /** Head-only: the head's starting values [hidden] (default: the model's score head). */
  head?: Float32Array;
  /** Seed of LoRA's A init (default 0). */
  seed?: number;
  /**
   * The pad id TRL pads and pools with: the tokenizer's pad token, else EOS — pass
   * `tokenizer.padTokenId` (default: the config's pad_token_id, else eos_token_id, which
   * differs from TRL's when the config names a pad the tokenizer lacks).
   */
  padTokenId?: number;
}

export class RewardModel {
  private constructor(
    readonly base: LlamaForSequenceClassification,
    /** The LoRA adapter (with the score head as modules_to_save), or undefined when only the head trains. */
    readonly lora: LoraModel | undefined,
    /** Head-only: the trainable copy of `score` [1, hidden]. */
    private readonly headOnly: Var | undefined,
    readonly padTokenId: number,
  ) {}

  /** A reward model to train: LoRA + head (PEFT SEQ_CLS) or the head alone. */
  static async create(base: LlamaForSequenceClassification, options: RewardModelOptions = {}): Promise<RewardModel> {
    if (base.config.num_labels !== 1) throw new ConfigError(`reward model: the model has num_labels ${base.config.num_labels}; expected 1 (loadRewardBase makes one)`);
    const pad = options.padTokenId ?? defaultPad(base);
    if (options.lora instanceof LoraModel) {
      if (options.lora.base !== base || !options.lora.head) throw new ConfigError("reward model: the LoraModel must be a SEQ_CLS adapter made on this model");
      return new RewardModel(base, options.lora, undefined, pad);
    }
    const head = options.head ?? await scoreHeadValues(base);
    if (head.length !== base.config.hidden_size) throw new ConfigError(`reward model: head has ${head.length} values, expected hidden_size ${base.config.hidden_size}`);
    if (options.lora) return new RewardModel(base, LoraModel.create(base, options.lora, { seed: options.seed, head }), undefined, pad);
    return new RewardModel(base, undefined, Var.param(Float32Array.from(head), base.score.weight.shape), pad);
  }

  /** A trained reward model: a SEQ_CLS LoRA adapter folder on `base` (or no adapter: the model's own head). */
  static async fromPretrained(base: LlamaForSequenceClassification, adapterDir?: string, options: { padTokenId?: number } = {}): Promise<RewardModel> {
    const pad = options.padTokenId ?? defaultPad(base);
    if (!adapterDir) return new RewardModel(base, undefined, Var.param(await scoreHeadValues(base), base.score.weight.shape), pad);
    return new RewardModel(base, LoraModel.fromAdapter(base, readLoraAdapter(adapterDir)), undefined, pad);
  }

  /** What training updates: LoRA's A and B and the head, or the head alone. */
  parameters(): Var[] {
    return this.lora ? this.lora.parameters() : [this.headOnly!];
  }

  /** The score head in use [1, hidden]. */
  get head(): Var {
    return this.lora ? this.lora.head! : this.headOnly!;
  }

  /** Runs `fn` with the trainable weights in the model (tracked when `grad`). */
  private async active<R>(grad: boolean, fn: () => Promise<R>): Promise<R> {
    if (this.lora) return this.lora.withAdapter(grad, fn);
    const be = this.base.backend;
    const score = this.base.score;
    const original = score.weight;
    const v = grad ? this.headOnly! : Var.constant(this.headOnly!.value, this.headOnly!.shape);
    score.weight = be.upload(isDifferentiable(be) && grad ? be.asTensor(v) : new Tensor(v.value, v.shape, "f32"));
    try {
      return await fn();
    } finally {
      be.release(score.weight);
      score.weight = original;
    }
  }

  /** Rewards [B] of right-padded rows (pooled at each row's last non-pad token); a Var tracked for backward when `grad`. */
  async rewards(inputIds: number[][], attentionMask?: number[][], options: { grad?: boolean } = {}): Promise<Var> {
    const be = this.base.backend;
    const grad = options.grad === true;
    const positions = lastNonPadPositions(inputIds, this.padTokenId);
    const host = await this.active(grad, async () => {
      const out = await this.base.model.decode({ inputIds, attentionMask, useCache: false });
      const pooled = be.selectPositions(out.hidden, Int32Array.from(positions), 1); // [B, 1, hidden]
      be.release(out.hidden);
      const scores = this.base.score.forward(be, pooled); // [B, 1, 1]
      be.release(pooled);
      const t = await be.read(scores);
      be.release(scores);
      return t;
    });
    if (grad && isDifferentiable(be)) return be.varOf(host);
    return Var.constant(host.toFloat32().slice(), [inputIds.length]);
  }

  /** One reward per token sequence (BOS … EOS, as tokenizeReward makes them), in batches; no gradient. */
  async score(sequences: readonly number[][], options: { batchSize?: number } = {}): Promise<number[]> {
    const bs = options.batchSize ?? 8;
    const out: number[] = [];
    for (let i = 0; i < sequences.length; i += bs) {
      const rows = sequences.slice(i, i + bs);
      const T = Math.max(...rows.map((r) => r.length));
      const ids = rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(this.padTokenId)]);
      const mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(T - r.length).fill(0)]);
      out.push(...(await this.rewards(ids, mask)).value);
    }
    return out;
  }

  /** One forward + backward over a batch of pairs (TRL's compute_loss): the loss and TRL's metrics. */
  async lossAndGrad(pairs: readonly RewardExample[], options: RewardLossOptions = {}): Promise<{ loss: number; metrics: RewardMetrics; tokens: number }> {
    const be = this.base.backend;
    if (!isDifferentiable(be)) throw new LlamaError("reward training needs the model on a differentiable backend (createDifferentiableBackend(\"cpu\" | \"webgpu\"))");
    if (pairs.length === 0) throw new InputError("reward training: an empty batch");
    const batch = collateReward(pairs, this.padTokenId);
    const r = await this.rewards(batch.inputIds, batch.attentionMask, { grad: true });
    const loss = rewardLoss(r, batch.margin, options); // r is [2B, 1, 1]: the loss reads it flat
    await backprop(be, loss);
    const tokens = batch.attentionMask.reduce((s, row) => s + row.reduce((a, b) => a + b, 0), 0);
    return { loss: loss.item(), metrics: rewardMetrics(r.value), tokens };
  }

  /**
   * Saves the trained model: with LoRA, PEFT's SEQ_CLS adapter folder (the pairs and
   * `base_model.model.score.weight`); head-only, a full HF folder (config num_labels 1,
   * pad_token_id the pooling pad) as TRL saves a model trained without PEFT.
   */
  async savePretrained(dir: string, options: { baseModelNameOrPath?: string } = {}): Promise<void> {
    if (this.lora) return this.lora.savePretrained(dir, options);
    const be = this.base.backend;
    const score = this.base.score;
    const original = score.weight;
    score.weight = be.upload(new Tensor(this.headOnly!.value.slice(), this.headOnly!.shape, "f32"));
    const pad = this.base.config.pad_token_id;
    this.base.config.pad_token_id = this.padTokenId;
    try {
      await this.base.savePretrained(dir);
    } finally {
      this.base.config.pad_token_id = pad;
      be.release(score.weight);
      score.weight = original;
    }
  }
}

function defaultPad(base: LlamaForSequenceClassification): number {
  const eos = base.config.eos_token_id;
  const pad = base.config.pad_token_id ?? (Array.isArray(eos) ? eos[0] : eos);
  if (pad === null || pad === undefined) throw new ConfigError("reward model: the model has neither pad_token_id nor eos_token_id; pass padTokenId");
  return pad as number;
}

/** The loop's options plus the reward loss's; the optimizer defaults to TRL's trainer's (AdamW, weight_decay 0, max_grad_norm 1.0). */
export interface RewardTrainOptions extends TrainLoopOptions, RewardLossOptions {}

/** Trains a reward model on tokenized pairs with the one training loop; step metrics are TRL's (plus num_tokens). */
export async function trainReward(rm: RewardModel, examples: readonly RewardExample[], o: RewardTrainOptions): Promise<TrainResult> {
  let tokens = 0;
  return trainLoop(examples, {
    name: "reward-train",
    parameters: rm.parameters(),
    lossAndGrad: async (batch) => {
      const { loss, metrics, tokens: t } = await rm.lossAndGrad(batch, o);
      tokens += t;
      return { loss, metrics: { ...metrics, num_tokens: tokens } };
    },
    length: (e) => Math.max(e.chosenIds.length, e.rejectedIds.length),
  }, withTrainerDefaults(o));
}
