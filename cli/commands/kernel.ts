/**
 * `llama-ts kernel install [--user | --prefix P]`: registers the Jupyter
 * kernel "LLaMA (TypeScript)" (kernelspec `llama-ts`) for this checkout.
 * Default --user (~/.local/share/jupyter/kernels); --prefix P writes to
 * P/share/jupyter/kernels (e.g. --prefix .venv for a venv's JupyterLab).
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "../main.js";
import { parseArgs } from "node:util";
import { UsageError } from "../cli-error.js";
import { installKernelSpec, kernelSpecDir, type KernelSpecTarget } from "../../kernel/kernelspec.js";

export const USAGE = "usage: llama-ts kernel install [--user | --prefix <dir>]";

/** The checkout root of this build (dist/cli/commands → ../../..). */
export function checkoutRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
}

export function parseTarget(argv: string[]): KernelSpecTarget {
  let values: { user?: boolean; prefix?: string };
  try {
    values = parseArgs({ args: argv, options: { user: { type: "boolean" }, prefix: { type: "string" } }, strict: true }).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.user && values.prefix !== undefined) throw new UsageError(`--user and --prefix exclude each other\n${USAGE}`);
  if (values.prefix !== undefined) {
    if (values.prefix === "") throw new UsageError("--prefix: expected a folder");
    return { kind: "prefix", prefix: values.prefix };
  }
  return { kind: "user" };
}

export const command: Command = {
  summary: "install the Jupyter kernelspec (llama-ts kernel install [--user|--prefix P])",
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
