import { parseArgs, type ParseArgsConfig } from "node:util";
import * as fs from "node:fs";
import { UsageError } from "./cli-error.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The parsed values of a flag table: booleans for boolean flags, strings otherwise (arrays when `multiple`). */
export type FlagValues<O extends Options> = {
  [K in keyof O]?: O[K] extends { type: "boolean" }
    ? O[K] extends { multiple: true } ? boolean[] : boolean
    : O[K] extends { multiple: true } ? string[] : string;
};

/** Parses flags strictly; an unknown flag or missing value is a UsageError naming it. */
export function parseFlags<O extends Options>(argv: string[], options: O): FlagValues<O> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as FlagValues<O>;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Parses a JSON flag value, naming the flag on failure. */
export function jsonFlag(flag: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag}: not valid JSON (${(err as Error).message}): ${text.slice(0, 80)}`);
  }
}

/** A required flag. */
export function required<T>(flag: string, value: T | undefined): T {
  if (value === undefined) throw new UsageError(`missing required flag ${flag}`);
  return value;
}

/** A number flag. */
export function numberFlag(flag: string, value: string | undefined, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`${flag}: expected a number, got "${value}"`);
  return n;
}

/** An integer flag. */
export function intFlag(flag: string, value: string | undefined, fallback?: number): number | undefined {
  const n = numberFlag(flag, value, fallback);
  if (n !== undefined && !Number.isInteger(n)) throw new UsageError(`${flag}: expected an integer, got "${value}"`);
  return n;
}

/** A number flag that, when given, must be > 0. */
export function positive(flag: string, n: number | undefined): number | undefined {
  if (n !== undefined && !(n > 0)) throw new UsageError(`${flag}: expected a positive number, got ${n}`);
  return n;
}

/**
 * The flags every training command shares, checked: --lr, --batch, exactly one of --steps / --epochs,
 * --optimizer adam|adamw, --device cpu|webgpu, --seed.
 */
export function trainingFlags(f: {
  lr?: string; batch?: string; steps?: string; epochs?: string; optimizer?: string; device?: string; seed?: string;
}): { lr: number; batchSize: number; steps?: number; epochs?: number; optimizer: "adam" | "adamw"; device: "cpu" | "webgpu"; seed: number } {
  const lr = positive("--lr", numberFlag("--lr", required("--lr", f.lr)))!;
  const batchSize = positive("--batch", intFlag("--batch", required("--batch", f.batch)))!;
  const steps = positive("--steps", intFlag("--steps", f.steps));
  const epochs = positive("--epochs", numberFlag("--epochs", f.epochs));
  if ((steps === undefined) === (epochs === undefined)) throw new UsageError("give exactly one of --steps N or --epochs E");
  const optimizer = f.optimizer ?? "adamw";
  if (optimizer !== "adam" && optimizer !== "adamw") throw new UsageError(`--optimizer: expected adam or adamw, got "${optimizer}"`);
  const device = f.device ?? "cpu";
  if (device !== "cpu" && device !== "webgpu") throw new UsageError(`--device: expected cpu or webgpu, got "${device}"`);
  return { lr, batchSize, steps, epochs, optimizer, device, seed: intFlag("--seed", f.seed, 0)! };
}

/** A path that must exist. */
export function existingPath(flag: string, p: string): string {
  if (!fs.existsSync(p)) throw new UsageError(`${flag}: no such file or folder: ${p}`);
  return p;
}
