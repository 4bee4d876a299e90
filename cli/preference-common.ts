/**
 * What `dpo`, `reward-train` and `score` share: their LoRA and run-length flags,
 * reading a pairs file with the
 * checks that make bad input a one-line error before any work is done, and
 * writing an output folder so that a failed run leaves nothing behind.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../lib/errors.js";
import { UsageError } from "./cli-error.js";
import { ALL_LINEAR } from "../lib/peft/lora-train.js";
import { intFlag, numberFlag, positive } from "./args.js";
import { identicalPairs, readPreferenceFile, type PreferenceRow, type PreferenceTokenizer } from "../lib/peft/preference-data.js";

/**
 * The rows of a `{"prompt", "chosen", "rejected"}` file (bad rows: file, line and
 * field in one line), each prompt checked against the model's context (a prompt
 * that fills it leaves no room for a completion: TRL silently drops such rows,
 * we say which). Identical chosen and rejected texts teach nothing: a warning with the count.
 */
export function readPairs(file: string, tok: PreferenceTokenizer, context: number, warn: (msg: string) => void): PreferenceRow[] {
  const rows = readPreferenceFile(file);
  if (rows.length === 0) throw new FormatError(file, "no rows (expected one {\"prompt\", \"chosen\", \"rejected\"} object per line)");
  for (const r of rows) {
    const n = tok.encode(r.prompt).length;
    if (n >= context) {
      throw new FormatError(file, `line ${r.line}: field "prompt" is ${n} tokens, the model's context is ${context} (max_position_embeddings): no room for a completion`);
    }
  }
  const same = identicalPairs(rows);
  if (same > 0) warn(`${file}: ${same} of ${rows.length} rows have identical "chosen" and "rejected" (they teach nothing)`);
  return rows;
}

/**
 * Writes a folder all at once: `write` fills a temporary sibling folder, which
 * then replaces `out` by rename. An error midway removes the temporary folder
 * and leaves `out` as it was (absent, or the previous run's).
 */
export async function writeFolderAtomic(out: string, write: (dir: string) => Promise<void> | void): Promise<void> {
  const parent = path.dirname(path.resolve(out));
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.tmp-`));
  fs.chmodSync(tmp, 0o755); // mkdtemp makes it private; the result is an ordinary folder
  try {
    await write(tmp);
    if (fs.existsSync(out)) {
      const old = `${tmp}.old`;
      fs.renameSync(out, old);
      fs.renameSync(tmp, out);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, out);
    }
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** --target-modules: PEFT's "all-linear" (LoraModel expands it) or a comma list. */
export function targetModules(flag: string, value: string): string[] | typeof ALL_LINEAR {
  if (value === ALL_LINEAR) return ALL_LINEAR;
  const list = value.split(",").map((t) => t.trim()).filter(Boolean);
  if (list.length === 0) throw new UsageError(`${flag}: expected all-linear or a comma-separated list of module names`);
  return list;
}

/** Exactly one way to bound the run: --max-steps, --time-budget, or --epochs (the default). */
export function runLength(f: { epochs?: string; "max-steps"?: string; "time-budget"?: string }, defaultEpochs: string): { steps?: number; epochs?: number; timeBudgetMs?: number } {
  const given = (["epochs", "max-steps", "time-budget"] as const).filter((k) => f[k] !== undefined);
  if (given.length > 1) throw new UsageError(`give one of --epochs, --max-steps and --time-budget (got ${given.map((k) => `--${k}`).join(" and ")})`);
  if (f["max-steps"] !== undefined) return { steps: positive("--max-steps", intFlag("--max-steps", f["max-steps"])) };
  if (f["time-budget"] !== undefined) return { timeBudgetMs: positive("--time-budget", numberFlag("--time-budget", f["time-budget"]))! * 1000 };
  return { epochs: positive("--epochs", numberFlag("--epochs", f.epochs ?? defaultEpochs)) };
}
