/**
 * `llama-ts kernel install [--user | --prefix P]`: registers the Jupyter
 * kernel "LLaMA (TypeScript)" (kernelspec `llama-ts`) for this checkout.
 * Default --user (~/.local/share/jupyter/kernels); --prefix P writes to
 * P/share/jupyter/kernels (e.g. --prefix .venv for a venv's JupyterLab).
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "../main.js";
import { parseFlags } from "../args.js";
import { UsageError } from "../cli-error.js";
import { installKernelSpec, kernelSpecDir, type KernelSpecTarget } from "../../kernel/kernelspec.js";

export const USAGE = "usage: llama-ts kernel install [--user | --prefix <dir>]";

/** The checkout root of this build (dist/cli/commands → ../../..). */
export function checkoutRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
}

const FLAGS = {
  user: { type: "boolean", help: "install for this user (~/.local/share/jupyter/kernels); the default" },
  prefix: { type: "string", arg: "DIR", help: "install into DIR/share/jupyter/kernels (e.g. .venv for a venv's JupyterLab)" },
} as const;

export function parseTarget(argv: string[]): KernelSpecTarget {
  const values = parseFlags(argv, FLAGS);
  if (values.user && values.prefix !== undefined) throw new UsageError(`--user and --prefix exclude each other\n${USAGE}`);
  if (values.prefix !== undefined) {
    if (values.prefix === "") throw new UsageError("--prefix: expected a folder");
    return { kind: "prefix", prefix: values.prefix };
  }
  return { kind: "user" };
}

export const command: Command = {
  summary: "install the Jupyter kernelspec (llama-ts kernel install [--user|--prefix P])",
  usage: "install [--user | --prefix DIR]",
  flags: FLAGS,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== "install") throw new UsageError(sub ? `unknown subcommand "${sub}"\n${USAGE}` : USAGE);
    const target = parseTarget(rest);
    const dir = installKernelSpec(checkoutRoot(), target);
    process.stderr.write(`installed kernelspec "llama-ts" (LLaMA (TypeScript)) in ${dir}\n`);
    process.stdout.write(`${dir}\n`);
    return 0;
  },
};

export { kernelSpecDir };
