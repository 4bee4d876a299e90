/**
 * The one training loop of the library. Prompt tuning, LoRA, the reward model
 * and DPO differ only in what one step computes (an `Objective`: a forward and
 * backward on a batch, returning the loss and its metrics); everything around
 * it lives here once: seeded batching (shuffled, grouped by length or
 * class-balanced), the optimizer (torch's Adam/AdamW), the learning-rate
 * schedule (by steps or over a time budget), gradient clipping, an eval
 * callback with early stopping and best-state restore, an EMA of the
 * parameters, a time budget, step logs, and progress through
 * `onProgress(done, total, info)` (info.metrics = loss + the objective's metrics).
 * Defaults are plain torch Adam/AdamW: no clipping, schedule or warmup unless asked.
 */
import { ConfigError } from "../errors.js";
import type { OnProgress } from "../progress.js";
import type { Var } from "../autograd/var.js";
import { Adam, AdamW, clipGradNorm, type Optimizer } from "./optim.js";
import { lrMultiplier, type ScheduleName } from "./optim-schedule.js";
import { seededUniform } from "./prompt-init.js";

/** What every training entry point (trainPrompt, trainLora, trainReward, trainDpo) accepts. */
export interface TrainLoopOptions {
  optimizer?: "adam" | "adamw";
  lr: number;
  betas?: [number, number];
  eps?: number;
  /** Default: 0 for Adam, 0.01 for AdamW (torch's). */
  weightDecay?: number;
  batchSize: number;
  /** Number of optimizer steps; or give `epochs` (or only `timeBudgetMs`). */
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
   * Class-balanced batches (the objective must say each example's class):
   * each epoch shuffles the examples of each class and interleaves the
   * classes round-robin, so a batch whose size is a multiple of the class
   * count holds each class equally (with balanced data). Overrides
   * `groupByLength`; off by default.
   */
  balancedBatches?: boolean;
  /** A metric where higher is better (e.g. validation accuracy), called every `evalEvery` steps and at the end. */
  evaluate?: (step: number) => Promise<number> | number;
  evalEvery?: number;
  /** Stop after this many evaluations without improvement. */
  earlyStoppingPatience?: number;
  /** Put back the parameters of the best evaluation at the end (default true when `evaluate` is given). */
  restoreBest?: boolean;
  /**
   * Keep an exponential moving average of the parameters (ema ← d·ema + (1−d)·p
   * after each step, starting from the initial values) and put it in place of
   * the last values at the end, unless a best evaluation's are restored. Off by default.
   */
  emaDecay?: number;
  /** Stop (after the current step) once training has run this long. */
  timeBudgetMs?: number;
  /** Called after every step (a notebook updates its live curve here). */
  onStep?: (log: StepLog) => void | Promise<void>;
  onEval?: (log: EvalLog) => void | Promise<void>;
  /** The library's progress convention: (steps done, total steps — 0 when only a time budget bounds the run, info.metrics). */
  onProgress?: OnProgress;
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
  /** The objective's metrics of this step's batch (DPO: rewards/margins, …; empty for plain LM losses). */
  metrics: Readonly<Record<string, number>>;
}

export interface EvalLog {
  step: number;
  metric: number;
  best: number;
}

export interface TrainResult {
  steps: number;
  losses: number[];
  /** Every step's log (loss, lr, metrics, timing). */
  logs: StepLog[];
  evals: EvalLog[];
  bestMetric?: number;
  bestStep?: number;
  stoppedEarly: boolean;
  /** Why the run ended before its step count: early stopping, the time budget, or the objective (e.g. DPO's guard). */
  stopReason?: "early-stopping" | "time-budget" | "objective";
  seconds: number;
  meanStepMs: number;
  /** Mean CPU time per step, all threads (user + system). */
  meanStepCpuMs: number;
}

/** What one step of a particular training method does; the loop does the rest. */
export interface Objective<T> {
  /** The method's name, for error messages (e.g. "dpo"). */
  readonly name: string;
  /** What the optimizer updates (gradients accumulate into their `.grad`). */
  readonly parameters: readonly Var[];
  /** One forward + backward on a batch: the loss and the metrics to log. */
  lossAndGrad(batch: readonly T[]): Promise<{ loss: number; metrics?: Record<string, number> }>;
  /** An example's length (for groupByLength). */
  length?(item: T): number;
  /** An example's class (for balancedBatches); undefined = cannot balance. */
  classOf?(item: T): number;
  /** Seen after each step's update; return true to stop the run (stopReason "objective"). */
  afterStep?(log: StepLog): boolean | void | Promise<boolean | void>;
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

/** An epoch's order with similar lengths batched together (see TrainLoopOptions.groupByLength). */
export function groupedByLength<T>(items: readonly T[], batchSize: number, length: (item: T) => number, rand: () => number): T[] {
  const order = shuffled(items, rand);
  const window = batchSize * 50;
  const batches: T[][] = [];
  for (let w = 0; w < order.length; w += window) {
    const chunk = order.slice(w, w + window).sort((a, b) => length(b) - length(a));
    for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
  }
  return shuffled(batches, rand).flat();
}

/** An epoch's order with the classes interleaved round-robin (see TrainLoopOptions.balancedBatches). */
export function balancedOrder<T>(items: readonly T[], classOf: (item: T) => number, rand: () => number): T[] {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const c = classOf(item);
    let g = groups.get(c);
    if (!g) groups.set(c, (g = []));
    g.push(item);
  }
  const lists = [...groups.keys()].sort((a, b) => a - b).map((c) => shuffled(groups.get(c)!, rand));
  const out: T[] = [];
  for (let i = 0; out.length < items.length; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

export function makeOptimizer(params: readonly Var[], o: Pick<TrainLoopOptions, "optimizer" | "lr" | "betas" | "eps" | "weightDecay">): Optimizer {
  const opts = { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay };
  return (o.optimizer ?? "adamw") === "adam" ? new Adam(params, opts) : new AdamW(params, opts);
}

/** The number of optimizer steps a run will take (Infinity when only a time budget bounds it). */
export function totalSteps(count: number, o: Pick<TrainLoopOptions, "batchSize" | "steps" | "epochs" | "timeBudgetMs">, what = "training"): number {
  if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1)) throw new ConfigError(`batch size ${o.batchSize}: expected a positive integer`);
  const perEpoch = Math.ceil(count / o.batchSize);
  const total = o.steps ?? (o.epochs !== undefined ? Math.ceil(o.epochs * perEpoch) : undefined);
  if (total === undefined && o.timeBudgetMs !== undefined && o.timeBudgetMs > 0) return Infinity;
  if (!(total !== undefined && Number.isInteger(total) && total >= 1)) throw new ConfigError(`${what}: give a positive number of steps or epochs (or a time budget)`);
  return total;
}

/**
 * The optimizer settings TRL's trainers get from HF's TrainingArguments, where the
 * options leave them open: AdamW's weight_decay 0 (not torch's 0.01) and gradient
 * clipping at max_grad_norm 1.0 (0 turns it off, as in HF).
 */
export function withTrainerDefaults<O extends TrainLoopOptions>(o: O): O {
  return { ...o, weightDecay: o.weightDecay ?? 0, maxGradNorm: o.maxGradNorm === 0 ? undefined : o.maxGradNorm ?? 1.0 };
}

/** Trains `objective.parameters` in place on `items`. */
export async function trainLoop<T>(items: readonly T[], objective: Objective<T>, o: TrainLoopOptions): Promise<TrainResult> {
  if (items.length === 0) throw new ConfigError(`${objective.name}: no training examples`);
  const total = totalSteps(items.length, o, objective.name);
  const perEpoch = Math.ceil(items.length / o.batchSize);
  const params = objective.parameters;
  const opt = makeOptimizer(params, o);
  if (o.scheduleBy === "time" && !(o.timeBudgetMs !== undefined && o.timeBudgetMs > 0)) throw new ConfigError("scheduleBy \"time\" needs a positive timeBudgetMs");
  const scheduleName = o.schedule ?? "constant";
  if (total === Infinity && scheduleName !== "constant" && o.scheduleBy !== "time") {
    throw new ConfigError(`lr schedule "${scheduleName}" with only a time budget needs scheduleBy "time" (or give steps or epochs)`);
  }
  const schedule = total === Infinity ? () => 1 : lrMultiplier({ name: scheduleName, warmupSteps: o.warmupSteps, totalSteps: total });
  // Time-based progress: the decay part of the schedule over a grid of TIME_TICKS ticks of the budget.
  const TIME_TICKS = 1_000_000;
  const timeSchedule = o.scheduleBy === "time"
    ? lrMultiplier({ name: scheduleName, warmupSteps: 0, totalSteps: TIME_TICKS })
    : undefined;
  const rand = seededUniform(o.seed ?? 0);
  if (o.balancedBatches && !objective.classOf) throw new ConfigError(`${objective.name}: balancedBatches needs each example's class`);
  if (o.groupByLength && !objective.length) throw new ConfigError(`${objective.name}: groupByLength needs each example's length`);
  const restoreBest = o.restoreBest ?? o.evaluate !== undefined;
  const evalEvery = o.evalEvery ?? perEpoch;

  const losses: number[] = [];
  const logs: StepLog[] = [];
  const evals: EvalLog[] = [];
  let best = -Infinity, bestStep: number | undefined, bestValues: Float32Array[] | undefined, sinceBest = 0;
  let stopReason: TrainResult["stopReason"];
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

  let order: T[] = [];
  let step = 0;
  o.onProgress?.(0, total === Infinity ? 0 : total, { unit: "steps" }); // the run starts (a renderer's clock with it)
  while (step < total) {
    const within = step % perEpoch;
    if (within === 0) {
      order = o.shuffle === false ? items.slice()
        : o.balancedBatches ? balancedOrder(items, (x) => objective.classOf!(x), rand)
        : o.groupByLength ? groupedByLength(items, o.batchSize, (x) => objective.length!(x), rand) : shuffled(items, rand);
    }
    const batch = order.slice(within * o.batchSize, (within + 1) * o.batchSize);
    const s0 = performance.now();
    const c0 = process.cpuUsage();
    opt.lr = o.lr * (timeSchedule
      ? (step < (o.warmupSteps ?? 0) ? step / Math.max(1, o.warmupSteps ?? 0) : 1)
        * timeSchedule(Math.min(TIME_TICKS, Math.floor(((performance.now() - t0) / o.timeBudgetMs!) * TIME_TICKS)))
      : schedule(step));
    opt.zeroGrad();
    const { loss, metrics = {} } = await objective.lossAndGrad(batch);
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
    const log: StepLog = { step, epoch: step / perEpoch, loss, lr: opt.lr, gradNorm, ms, cpuMs, metrics };
    logs.push(log);
    o.onProgress?.(step, total === Infinity ? 0 : total, { unit: "steps", metrics: { loss, ...metrics } });
    await o.onStep?.(log);
    if (await objective.afterStep?.(log)) {
      stopReason = "objective";
      break;
    }
    const outOfTime = o.timeBudgetMs !== undefined && performance.now() - t0 >= o.timeBudgetMs;
    if ((step % evalEvery === 0 || step === total || outOfTime) && (await runEval(step))) {
      stopReason = "early-stopping";
      break;
    }
    if (outOfTime) {
      stopReason = "time-budget";
      break;
    }
  }
  if (bestValues && restoreBest) params.forEach((p, k) => p.value.set(bestValues![k]!));
  else if (ema) params.forEach((p, k) => p.value.set(ema[k]!));
  return {
    steps: step, losses, logs, evals, bestMetric: o.evaluate ? best : undefined, bestStep, stoppedEarly: stopReason !== undefined, stopReason,
    seconds: (performance.now() - t0) / 1000, meanStepMs: stepMs / step, meanStepCpuMs: stepCpuMs / step,
  };
}
