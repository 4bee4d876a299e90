/**
 * The `llama-ts` command line. stdout carries only results; logs, warnings and
 * progress go to stderr. Bad input exits non-zero with one readable line
 * (no stack trace unless --debug).
 */
import { LlamaError } from "../lib/errors.js";
import "../gpu/register.js"; // `--device webgpu`: registers the factory; Dawn loads only when a command asks for it
import { releaseWebGpu } from "../gpu/teardown.js";
import { UsageError } from "./cli-error.js";
import { formatHelp, type Command } from "./args.js";

export type { Command } from "./args.js";

// Each command lives in its own module, loaded only when asked for, so that
// `llama-ts tokenize` never pays for loading Dawn or the Jupyter kernel.
const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  convert: () => import("./commands/convert.js"),
  forward: () => import("./commands/forward.js"),
  "prompt-tune": () => import("./commands/prompt-tune.js"),
  "lora-train": () => import("./commands/lora-train.js"),
  dpo: () => import("./commands/dpo.js"),
  "reward-train": () => import("./commands/reward-train.js"),
  score: () => import("./commands/score.js"),
  classify: () => import("./commands/classify.js"),
  generate: () => import("./commands/generate.js"),
  kernel: () => import("./commands/kernel.js"),
  start: () => import("./commands/start.js"),
  tokenize: () => import("./commands/tokenize.js"),
  detokenize: () => import("./commands/detokenize.js"),
  "gpu-info": () => import("./commands/gpu-info.js"),
  quantize: () => import("./commands/quantize.js"),
};

/** Lets a feature add its command without editing this table in many places. */
export function commandNames(): string[] {
  return Object.keys(COMMANDS).sort();
}

async function usage(): Promise<string> {
  const lines = ["usage: llama-ts <command> [options]", "", "commands:"];
  for (const name of commandNames()) {
    try {
      const { command } = await COMMANDS[name]!();
      lines.push(`  ${name.padEnd(14)} ${command.summary}`);
    } catch {
      lines.push(`  ${name}`);
    }
  }
  lines.push("", "llama-ts <command> --help (or llama-ts help <command>) lists the command's flags");
  return lines.join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes("--debug");
  let args = argv.filter((a) => a !== "--debug");
  if (args[0] === "help" && args[1] !== undefined) args = [args[1], "--help"]; // `llama-ts help generate`
  const name = args[0];
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write((await usage()) + "\n");
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`llama-ts: unknown command "${name}" (expected one of: ${commandNames().join(", ")})\n`);
    return 2;
  }
  try {
    const { command } = await load();
    const rest = args.slice(1);
    // Every command answers --help / -h from its flag table (a flag's value is never a bare "-h":
    // parseArgs refuses values that start with a dash unless written --flag=-h).
    if (rest.includes("--help") || rest.includes("-h")) {
      process.stdout.write(formatHelp(name, command) + "\n");
      return 0;
    }
    return await command.run(rest);
  } catch (err) {
    if (debug) {
      process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    } else if (err instanceof UsageError || err instanceof LlamaError) {
      process.stderr.write(`llama-ts ${name}: ${err.message}\n`);
    } else {
      const e = err as NodeJS.ErrnoException;
      const msg = e?.message ?? String(err);
      process.stderr.write(`llama-ts ${name}: ${msg}${e?.code ? "" : " (run with --debug for the stack trace)"}\n`);
    }
    return err instanceof UsageError ? 2 : 1;
  } finally {
    // Dawn's objects are finalized before the program ends, never during node's exit (gpu/teardown.ts).
    const { teardowns, objectsLeftAlive } = await releaseWebGpu();
    if (debug && teardowns > 0) process.stderr.write(`llama-ts: WebGPU released (${teardowns} device(s)), ${objectsLeftAlive} Dawn objects left alive\n`);
  }
}
