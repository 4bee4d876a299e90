/**
 * Learning-rate schedules as multipliers of the base rate, matching
 * transformers' get_constant_schedule(_with_warmup),
 * get_linear_schedule_with_warmup and get_cosine_schedule_with_warmup
 * (LambdaLR: the multiplier for step s is applied to the update of step s,
 * counting from 0).
 */
import { ConfigError } from "../errors.js";

export type ScheduleName = "constant" | "linear" | "cosine";
export const SCHEDULES: readonly ScheduleName[] = ["constant", "linear", "cosine"];

export interface ScheduleOptions {
  name: ScheduleName;
  /** Steps of linear warmup from 0 (default 0). */
  warmupSteps?: number;
  /** Total optimizer steps (needed by linear and cosine). */
  totalSteps?: number;
}

/** The multiplier λ(step) of the base learning rate. */
export function lrMultiplier(options: ScheduleOptions): (step: number) => number {
  const warmup = options.warmupSteps ?? 0;
  const total = options.totalSteps ?? 0;
  if (!SCHEDULES.includes(options.name)) throw new ConfigError(`unknown lr schedule "${options.name}" (expected ${SCHEDULES.join(", ")})`);
  if (options.name !== "constant" && !(total > 0)) throw new ConfigError(`lr schedule "${options.name}" needs the total number of steps`);
  return (step: number) => {
    if (step < warmup) return step / Math.max(1, warmup);
    switch (options.name) {
      case "constant":
        return 1;
      case "linear":
        return Math.max(0, (total - step) / Math.max(1, total - warmup));
      case "cosine": {
        const progress = (step - warmup) / Math.max(1, total - warmup);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
      }
    }
  };
}
