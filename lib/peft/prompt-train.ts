/**
 * The prompt-tuning training loop: shuffled mini-batches, forward + backward
 * through the frozen model, optional gradient clipping and LR schedule, an
 * optimizer step on the prompt only; an eval callback every k steps with
 * early stopping (keeping the best prompt), and live progress (a callback per
 * step for notebooks, a bar on stderr for terminals). Defaults are plain torch
 * Adam/AdamW: no clipping, schedule or warmup unless asked.
 */
import { ConfigError } from "../errors.js";
import { ProgressBar, type ProgressSink } from "../convert/progress.js";
import { Adam, AdamW, clipGradNorm, type Optimizer } from "./optim.js";
import type { Var } from "../autograd/var.js";
import { lrMultiplier, type ScheduleName } from "./optim-schedule.js";
import { collate, type TokenExample } from "./prompt-data.js";
import { seededUniform } from "./prompt-init.js";
import type { PromptBatch, PromptTuningModel } from "./prompt-tuning.js";

export interface TrainOptions {
  optimizer?: "adam" | "adamw";
  lr: number;
  betas?: [number, number];
  eps?: number;
  /** Default: 0 for Adam, 0.01 for AdamW (torch's). */
  weightDecay?: number;
  batchSize: number;
  /** Number of optimizer steps; or give `epochs`. */
  steps?: number;
  epochs?: number;
  /** Shuffle seed (default 0); `shuffle: false` keeps file order. */
  seed?: number;
  shuffle?: boolean;
  /**
   * Batch examples of similar length (HF's group_by_length): each epoch's
   * shuffled order is sorted by length within windows of 50 batches, then the
   * batches are shuffled. Less padding, so cheaper steps; off by default.
   */
  groupByLength?: boolean;
  /** Clip the gradient's global 2-norm to this (torch clip_grad_norm_); off by default. */
  maxGradNorm?: number;
  schedule?: ScheduleName;
  warmupSteps?: number;
  /**
   * What the schedule's progress counts (default "steps"). "time" (needs
   * `timeBudgetMs`) runs the schedule over the time budget instead of the step
   * count: the multiplier at a step is that of the elapsed fraction of the
   * budget, so a linear or cosine decay reaches 0 when the time runs out
   * however fast the steps are (warmupSteps still counts steps).
   */
  scheduleBy?: "steps" | "time";
  /**
   * Discriminative term (optional): the first token id of each class's label.
   * Adds cross-entropy over just these candidates at the position predicting a
   * row's first label token (see PromptTuningModel.loss), weighted by `choiceWeight`.
   */
  choices?: readonly number[];
  choiceWeight?: number;
  /**
   * Class-balanced batches (needs `choices`): each epoch shuffles the examples
   * of each class (the class of an example is its first label token's index in
   * `choices`) and interleaves the classes round-robin, so a batch whose size
   * is a multiple of the class count holds each class equally (with balanced
   * data). Overrides `groupByLength`; off by default.
   */
  balancedBatches?: boolean;
  /** Pad id for batches (default: the model's pad_token_id, else 0; padding is masked anyway). */
  padTokenId?: number;
  paddingSide?: "right" | "left";
  /** A metric where higher is better (e.g. validation accuracy), called every `evalEvery` steps and at the end. */
  evaluate?: (step: number) => Promise<number> | number;
  evalEvery?: number;
  /** Stop after this many evaluations without improvement. */
  earlyStoppingPatience?: number;
  /** Put back the prompt of the best evaluation at the end (default true when `evaluate` is given). */
  restoreBest?: boolean;
  /**
   * Keep an exponential moving average of the prompt (ema ← d·ema + (1−d)·prompt
   * after each step, starting from the initial prompt) and put it in place of
   * the last prompt at the end, unless a best evaluation's prompt is restored.
   * Off by default.
   */
  emaDecay?: number;
  /** Stop (after the current step) once training has run this long. */
  timeBudgetMs?: number;
  /** Called after every step (a notebook updates its live curve here). */
  onStep?: (log: StepLog) => void | Promise<void>;
  onEval?: (log: EvalLog) => void | Promise<void>;
  /** A progress sink; true = a bar on stderr (default: true when stderr is a terminal). */
  progress?: boolean | ProgressSink;
}

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  /** Gradient norm before clipping (only when clipping). */
  gradNorm?: number;
  /** Wall time of this step (forward + backward + update). */
  ms: number;
  /** CPU time of this step over all of the process's threads (on a busy machine, wall time overstates the cost). */
  cpuMs: number;
}

export interface EvalLog {
  step: number;
  metric: number;
  best: number;
}

export interface TrainResult {
  steps: number;
  losses: number[];
  evals: EvalLog[];
  bestMetric?: number;
  bestStep?: number;
  stoppedEarly: boolean;
  seconds: number;
  meanStepMs: number;
  /** Mean CPU time per step, all threads (user + system). */
  meanStepCpuMs: number;
}

/** An epoch's order with similar lengths batched together (see TrainOptions.groupByLength). */
export function lengthGroupedOrder<T extends { inputIds: readonly number[] }>(items: readonly T[], batchSize: number, rand: () => number): T[] {
  const order = shuffled(items, rand);
  const window = batchSize * 50;
  const batches: T[][] = [];
  for (let w = 0; w < order.length; w += window) {
    const chunk = order.slice(w, w + window).sort((a, b) => b.inputIds.length - a.inputIds.length);
    for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
  }
  return shuffled(batches, rand).flat();
}

/** An epoch's order with the classes interleaved round-robin (see TrainOptions.balancedBatches). */
export function classBalancedOrder<T extends { labels: readonly number[] }>(items: readonly T[], choices: readonly number[], rand: () => number): T[] {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const first = item.labels.find((id) => id !== -100);
    const c = first === undefined ? -1 : choices.indexOf(first);
    let g = groups.get(c);
    if (!g) groups.set(c, (g = []));
    g.push(item);
  }
  const lists = [...groups.keys()].sort((a, b) => a - b).map((c) => shuffled(groups.get(c)!, rand));
  const out: T[] = [];
  for (let i = 0; out.length < items.length; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

/** Fisher–Yates shuffle with a seeded stream. */
export function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function makeOptimizer(params: Var[], o: Pick<TrainOptions, "optimizer" | "lr" | "betas" | "eps" | "weightDecay">): Optimizer {
  const opts = { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay };
  return (o.optimizer ?? "adamw") === "adam" ? new Adam(params, opts) : new AdamW(params, opts);
}

/** Trains `pm.prompt` (and, for SEQ_CLS, its classification head, as PEFT does) in place on `examples`. */
export async function trainPrompt(pm: PromptTuningModel, examples: readonly TokenExample[], o: TrainOptions): Promise<TrainResult> {
  if (examples.length === 0) throw new ConfigError("prompt tuning: no training examples");
  if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1)) throw new ConfigError(`batch size ${o.batchSize}: expected a positive integer`);
  const perEpoch = Math.ceil(examples.length / o.batchSize);
  const total = o.steps ?? (o.epochs !== undefined ? Math.ceil(o.epochs * perEpoch) : undefined);
  if (!(total !== undefined && Number.isInteger(total) && total >= 1)) throw new ConfigError("prompt tuning: give a positive number of steps or epochs");
  const params = await pm.trainableParameters();
  const opt = makeOptimizer(params, o);
  if (o.scheduleBy === "time" && !(o.timeBudgetMs !== undefined && o.timeBudgetMs > 0)) throw new ConfigError("scheduleBy \"time\" needs a positive timeBudgetMs");
  const schedule = lrMultiplier({ name: o.schedule ?? "constant", warmupSteps: o.warmupSteps, totalSteps: total });
  // Time-based progress: the decay part of the schedule over a grid of TIME_TICKS ticks of the budget.
  const TIME_TICKS = 1_000_000;
  const timeSchedule = o.scheduleBy === "time"
    ? lrMultiplier({ name: o.schedule ?? "constant", warmupSteps: 0, totalSteps: TIME_TICKS })
    : undefined;
  const pad = o.padTokenId ?? pm.base.config.pad_token_id ?? 0;
  const rand = seededUniform(o.seed ?? 0);
  const sink: ProgressSink | undefined =
    o.progress === true || (o.progress === undefined && process.stderr.isTTY)
      ? new ProgressBar("prompt-tune", total, process.stderr, "items")
      : o.progress || undefined;
  if (o.balancedBatches && !o.choices?.length) throw new ConfigError("balancedBatches needs choices (the first label token of each class)");
  const restoreBest = o.restoreBest ?? o.evaluate !== undefined;
  const evalEvery = o.evalEvery ?? perEpoch;

  const losses: number[] = [];
  const evals: EvalLog[] = [];
  let best = -Infinity, bestStep: number | undefined, bestValues: Float32Array[] | undefined, sinceBest = 0;
  let stoppedEarly = false;
  const t0 = performance.now();
  let stepMs = 0, stepCpuMs = 0;

  const runEval = async (step: number): Promise<boolean> => {
    if (!o.evaluate) return false;
    const metric = await o.evaluate(step);
    if (metric > best) {
      best = metric; bestStep = step; sinceBest = 0;
      if (restoreBest) bestValues = params.map((p) => p.value.slice());
    } else sinceBest++;
    const log = { step, metric, best };
    evals.push(log);
    await o.onEval?.(log);
    return o.earlyStoppingPatience !== undefined && sinceBest >= o.earlyStoppingPatience;
  };

  if (o.emaDecay !== undefined && !(o.emaDecay >= 0 && o.emaDecay < 1)) throw new ConfigError(`emaDecay ${o.emaDecay}: expected a number in [0, 1)`);
  const ema = o.emaDecay !== undefined ? params.map((p) => p.value.slice()) : undefined;

  let order: TokenExample[] = [];
  let step = 0;
  while (step < total) {
    const within = step % perEpoch;
    if (within === 0) {
      order = o.shuffle === false ? examples.slice()
        : o.balancedBatches ? classBalancedOrder(examples, o.choices!, rand)
        : o.groupByLength ? lengthGroupedOrder(examples, o.batchSize, rand) : shuffled(examples, rand);
    }
    const batch: PromptBatch = collate(order.slice(within * o.batchSize, (within + 1) * o.batchSize), pad, o.paddingSide ?? "right");
    const s0 = performance.now();
    const c0 = process.cpuUsage();
    opt.lr = o.lr * (timeSchedule
      ? (step < (o.warmupSteps ?? 0) ? step / Math.max(1, o.warmupSteps ?? 0) : 1)
        * timeSchedule(Math.min(TIME_TICKS, Math.floor(((performance.now() - t0) / o.timeBudgetMs!) * TIME_TICKS)))
      : schedule(step));
    opt.zeroGrad();
    const loss = await pm.lossAndGrad(batch, { choices: o.choices, choiceWeight: o.choiceWeight });
    const gradNorm = o.maxGradNorm !== undefined ? clipGradNorm(params, o.maxGradNorm) : undefined;
    opt.step();
    if (ema) {
      const d = o.emaDecay!;
      params.forEach((p, k) => {
        const e = ema[k]!, v = p.value;
        for (let i = 0; i < e.length; i++) e[i] = d * e[i]! + (1 - d) * v[i]!;
      });
    }
    const ms = performance.now() - s0;
    const cpu = process.cpuUsage(c0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    stepMs += ms;
    stepCpuMs += cpuMs;
    losses.push(loss);
    step++;
    sink?.update(step, `loss ${loss.toFixed(4)}`);
    await o.onStep?.({ step, epoch: step / perEpoch, loss, lr: opt.lr, gradNorm, ms, cpuMs });
    const outOfTime = o.timeBudgetMs !== undefined && performance.now() - t0 >= o.timeBudgetMs;
    if ((step % evalEvery === 0 || step === total || outOfTime) && (await runEval(step))) {
      stoppedEarly = true;
      break;
    }
    if (outOfTime) {
      stoppedEarly = true;
      break;
    }
  }
  if (bestValues && restoreBest) params.forEach((p, k) => p.value.set(bestValues![k]!));
  else if (ema) params.forEach((p, k) => p.value.set(ema[k]!));
  sink?.finish(`${step} steps, last loss ${losses[losses.length - 1]!.toFixed(4)}`);
  return {
    steps: step, losses, evals, bestMetric: o.evaluate ? best : undefined, bestStep, stoppedEarly,
    seconds: (performance.now() - t0) / 1000, meanStepMs: stepMs / step, meanStepCpuMs: stepCpuMs / step,
  };
}
