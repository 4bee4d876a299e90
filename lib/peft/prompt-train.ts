/**
 * Prompt tuning's use of the one training loop (train-loop.ts): the objective
 * is PromptTuningModel.lossAndGrad on collated batches (the LM loss, plus the
 * optional discriminative term over `choices`), the parameters the prompt
 * (and for SEQ_CLS the classification head, as PEFT trains it).
 */
import { ConfigError } from "../errors.js";
import { collate, type TokenExample } from "./prompt-data.js";
import type { PromptTuningModel } from "./prompt-tuning.js";
import { balancedOrder, groupedByLength, trainLoop, type TrainLoopOptions, type TrainResult } from "./train-loop.js";

export { makeOptimizer, shuffled, type EvalLog, type StepLog, type TrainResult } from "./train-loop.js";

export interface TrainOptions extends TrainLoopOptions {
  /**
   * Discriminative term (optional): the first token id of each class's label.
   * Adds cross-entropy over just these candidates at the position predicting a
   * row's first label token (see PromptTuningModel.loss), weighted by `choiceWeight`.
   * With `balancedBatches`, an example's class is its first label token's index here.
   */
  choices?: readonly number[];
  choiceWeight?: number;
  /** Pad id for batches (default: the model's pad_token_id, else 0; padding is masked anyway). */
  padTokenId?: number;
  paddingSide?: "right" | "left";
}

/** An epoch's order with similar lengths batched together (see TrainOptions.groupByLength). */
export function lengthGroupedOrder<T extends { inputIds: readonly number[] }>(items: readonly T[], batchSize: number, rand: () => number): T[] {
  return groupedByLength(items, batchSize, (x) => x.inputIds.length, rand);
}

/** The class of an example: its first label token's index in `choices` (-1: none). */
function classOfLabels(labels: readonly number[], choices: readonly number[]): number {
  const first = labels.find((id) => id !== -100);
  return first === undefined ? -1 : choices.indexOf(first);
}

/** An epoch's order with the classes interleaved round-robin (see TrainOptions.balancedBatches). */
export function classBalancedOrder<T extends { labels: readonly number[] }>(items: readonly T[], choices: readonly number[], rand: () => number): T[] {
  return balancedOrder(items, (x) => classOfLabels(x.labels, choices), rand);
}

/** Trains `pm.prompt` (and, for SEQ_CLS, its classification head, as PEFT does) in place on `examples`. */
export async function trainPrompt(pm: PromptTuningModel, examples: readonly TokenExample[], o: TrainOptions): Promise<TrainResult> {
  if (examples.length === 0) throw new ConfigError("prompt tuning: no training examples");
  if (o.balancedBatches && !o.choices?.length) throw new ConfigError("balancedBatches needs choices (the first label token of each class)");
  const pad = o.padTokenId ?? pm.base.config.pad_token_id ?? 0;
  const choices = o.choices;
  return trainLoop(examples, {
    name: "prompt-tune",
    parameters: await pm.trainableParameters(),
    lossAndGrad: async (batch) => ({ loss: await pm.lossAndGrad(collate(batch, pad, o.paddingSide ?? "right"), { choices, choiceWeight: o.choiceWeight }) }),
    length: (e) => e.inputIds.length,
    classOf: choices?.length ? (e) => classOfLabels(e.labels, choices) : undefined,
  }, o);
}
