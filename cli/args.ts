/**
 * Flags of the `llama-ts` commands. Each command declares ONE flag table;
 * the same table parses its argv (strict: an unknown flag is an error naming
 * it) and writes its `--help` (every flag with its value type, default and a
 * one-line description), so the usage cannot drift from what is parsed.
 *
 *   export const command = defineCommand({
 *     summary: "…",
 *     flags: { model: MODEL_FLAG, out: { type: "string", arg: "FILE", required: true, help: "where to write" } },
 *     async run(f) { … f.model … f.out … },
 *   });
 */
import { parseArgs } from "node:util";
import * as fs from "node:fs";
import { UsageError } from "./cli-error.js";
import { resolveModelPath } from "../lib/io/checkpoint.js";
import { packageModelNames } from "../lib/io/package-models.js";
import { QUANT_PRESETS, type QuantPreset, isQuantPreset } from "../lib/quant/mix.js";

/** One flag: how it parses and the line `--help` prints for it. */
export interface Flag {
  readonly type: "string" | "boolean";
  /** May be given several times (the value is then a list). */
  readonly multiple?: boolean;
  readonly short?: string;
  /** Used when the flag is absent; --help shows it. */
  readonly default?: string;
  /** What the value is, as --help shows it: "N", "X", "DIR", "FILE", "JSON", "TEXT", "cpu|webgpu" (string flags). */
  readonly arg?: string;
  /** One line for --help. */
  readonly help: string;
  /** A default the command works out itself (e.g. "2*r"), shown by --help. */
  readonly shownDefault?: string;
  /** Absent → "missing required flag --name" (exit 2). */
  readonly required?: boolean;
}

export type FlagTable = Readonly<Record<string, Flag>>;

/** The parsed values of a flag table: booleans for boolean flags, strings otherwise (lists when `multiple`). */
export type FlagValues<T extends FlagTable> = {
  -readonly [K in keyof T]: T[K] extends { required: true } | { default: string }
    ? FlagValue<T[K]>
    : FlagValue<T[K]> | undefined;
};
type FlagValue<F> = F extends { type: "boolean" }
  ? F extends { multiple: true } ? boolean[] : boolean
  : F extends { multiple: true } ? string[] : string;

/** A subcommand: its one-line summary, its flag table, and `run`, which parses its own argv and returns the exit code. */
export interface Command {
  readonly summary: string;
  /** What follows `llama-ts <name>` in the usage line (default: "[options]"). */
  readonly usage?: string;
  /** The flags; `--help` is generated from them. */
  readonly flags?: FlagTable;
  run(argv: string[]): Promise<number>;
}

/** A command whose argv is parsed with its flag table before `run` sees it. */
export function defineCommand<const T extends FlagTable>(spec: {
  summary: string;
  usage?: string;
  flags: T;
  run(flags: FlagValues<T>): Promise<number>;
}): Command {
  return {
    summary: spec.summary,
    usage: spec.usage,
    flags: spec.flags,
    run: (argv) => spec.run(parseFlags(argv, spec.flags)),
  };
}

/** Parses flags strictly with a flag table; an unknown flag, a missing value or a missing required flag is a one-line UsageError naming it. */
export function parseFlags<const T extends FlagTable>(argv: string[], table: T): FlagValues<T> {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string; default?: string }> = {};
  for (const [name, f] of Object.entries(table)) {
    const o: (typeof options)[string] = { type: f.type };
    if (f.multiple) o.multiple = true;
    if (f.short) o.short = f.short;
    if (f.default !== undefined) o.default = f.default;
    options[name] = o;
  }
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const unknown = /Unknown option '([^']+)'/.exec(e.message);
    if (unknown) throw new UsageError(`unknown flag ${unknown[1]} (--help lists the flags)`);
    throw new UsageError(e.message.split("\n")[0]!);
  }
  for (const [name, f] of Object.entries(table)) if (f.required && values[name] === undefined) required(`--${name}`, undefined);
  return values as FlagValues<T>;
}

/** The `--help` text of a command, from its flag table. */
export function formatHelp(name: string, command: Command): string {
  const lines = [`usage: llama-ts ${name} ${command.usage ?? "[options]"}`, "", command.summary];
  const rows: [string, string][] = [];
  for (const [flag, f] of Object.entries(command.flags ?? {})) {
    const short = f.short ? `-${f.short}, ` : "";
    const left = `${short}--${flag}${f.type === "string" ? ` ${f.arg ?? "VALUE"}` : ""}`;
    const notes: string[] = [];
    if (f.required) notes.push("required");
    if (f.multiple) notes.push("repeatable");
    const def = f.default ?? f.shownDefault;
    if (def !== undefined) notes.push(`default: ${def}`);
    rows.push([left, `${f.help}${notes.length ? ` (${notes.join("; ")})` : ""}`]);
  }
  rows.push(["-h, --help", "show this help"]);
  const width = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  lines.push("", "flags:");
  for (const [left, right] of rows) {
    lines.push(left.length + 2 > width ? `  ${left}\n  ${" ".repeat(width)}${right}` : `  ${left.padEnd(width)}${right}`);
  }
  return lines.join("\n");
}

/** The model every command uses without --model: a folder name in the package's models/. */
export const DEFAULT_MODEL = "tiny-stories";

/** --model as every model-loading command takes it (optional: the package's default model). */
export const MODEL_FLAG = {
  type: "string",
  arg: "DIR|NAME",
  default: DEFAULT_MODEL,
  help: "model folder, .gguf file, a model name in the package's models/, or an org/name in the local HF cache",
} as const satisfies Flag;

/** --quantize for every command that loads a model with --model (fromPretrained's `quantize`). */
export const QUANTIZE_FLAG = {
  type: "string",
  arg: QUANT_PRESETS.join("|"),
  help: "quantize the f32/f16/bf16 weights while loading: the same types and bytes as `llama-ts quantize --type T`",
} as const satisfies Flag;

/** The --quantize value checked (case-insensitive), or undefined when absent. */
export function quantizeFlag(value: string | undefined): QuantPreset | undefined {
  if (value === undefined) return undefined;
  const t = value.toLowerCase();
  if (!isQuantPreset(t)) throw new UsageError(`--quantize: expected one of ${QUANT_PRESETS.join(", ")}, got "${value}"`);
  return t;
}

/** --device for commands that run on either backend. */
export const DEVICE_FLAG = { type: "string", arg: "cpu|webgpu", default: "cpu", help: "where the model runs" } as const satisfies Flag;

/** The flags every training command shares (checked by trainingFlags). */
export const TRAINING_FLAGS = {
  optimizer: { type: "string", arg: "adam|adamw", default: "adamw", help: "torch's Adam or AdamW" },
  lr: { type: "string", arg: "X", required: true, help: "learning rate" },
  steps: { type: "string", arg: "N", help: "optimizer steps (give exactly one of --steps and --epochs)" },
  epochs: { type: "string", arg: "E", help: "passes over the data, may be fractional (instead of --steps)" },
  batch: { type: "string", arg: "B", required: true, help: "examples per step" },
  seed: { type: "string", arg: "N", default: "0", help: "seed for initialization and shuffling" },
  device: { type: "string", arg: "cpu|webgpu", default: "cpu", help: "where forward and backward run" },
} as const satisfies FlagTable;

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

/** One of a fixed set of words. */
export function choiceFlag<C extends string>(flag: string, value: string, choices: readonly C[]): C {
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`${flag}: expected ${choices.join(" or ")}, got "${value}"`);
  return value as C;
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
  const optimizer = choiceFlag("--optimizer", f.optimizer ?? "adamw", ["adam", "adamw"] as const);
  const device = choiceFlag("--device", f.device ?? "cpu", ["cpu", "webgpu"] as const);
  return { lr, batchSize, steps, epochs, optimizer, device, seed: intFlag("--seed", f.seed, 0)! };
}

/**
 * A model (or tokenizer) flag's path: an existing path, a model of the package
 * by name, or an org/name in the local HF cache (lib's resolveModelPath order).
 */
export function modelPath(flag: string, value: string): string {
  try {
    return resolveModelPath(value);
  } catch (err) {
    // An org/name id missing from the HF cache: lib's message says where it looked and how to fetch it.
    if (/^[\w.-]+\/[\w.-]+(@[\w.-]+)?$/.test(value) && !value.startsWith(".")) throw new UsageError(`${flag}: ${(err as Error).message}`);
    const names = packageModelNames();
    throw new UsageError(`${flag}: no such file or folder: ${value}${names.length ? `; not a model of the package (${names.join(", ")})` : ""}`);
  }
}

/** A path that must exist. */
export function existingPath(flag: string, p: string): string {
  if (!fs.existsSync(p)) throw new UsageError(`${flag}: no such file or folder: ${p}`);
  return p;
}
