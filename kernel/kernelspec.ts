/**
 * The kernelspec that tells Jupyter how to start this kernel:
 * `<kernels dir>/llama-ts/kernel.json`, pointing at this checkout's node and
 * kernel entry. Jupyter (Debian's or a pip-installed JupyterLab) looks for
 * kernelspecs in the user data dir (~/.local/share/jupyter/kernels) and in
 * `<prefix>/share/jupyter/kernels` of its own Python prefix (e.g. a venv).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writeTextAtomic } from "../lib/io/atomic.js";
import { HEAP_FLAGS, MALLOC_ENV } from "../lib/process-memory.js";

export const KERNEL_NAME = "llama-ts";
export const DISPLAY_NAME = "LLaMA (TypeScript)";

export type KernelSpecTarget = { kind: "user" } | { kind: "prefix"; prefix: string };

/** Jupyter's user data dir, as jupyter_core computes it on Linux/macOS. */
export function jupyterUserDataDir(): string {
  if (process.env.JUPYTER_DATA_DIR) return process.env.JUPYTER_DATA_DIR;
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Jupyter");
  return path.join(process.env.XDG_DATA_HOME || path.join(os.homedir(), ".local", "share"), "jupyter");
}

export function kernelSpecDir(target: KernelSpecTarget): string {
  const base = target.kind === "user" ? jupyterUserDataDir() : path.join(path.resolve(target.prefix), "share", "jupyter");
  return path.join(base, "kernels", KERNEL_NAME);
}

export interface KernelSpec {
  argv: string[];
  display_name: string;
  language: string;
  interrupt_mode: "message" | "signal";
  env: Record<string, string>;
  metadata: Record<string, unknown>;
}

export function kernelSpec(root: string, nodePath = process.execPath): KernelSpec {
  const entry = path.join(root, "dist", "kernel", "main.js");
  return {
    argv: [nodePath, ...HEAP_FLAGS, entry, "--connection-file", "{connection_file}"], // a notebook trains in the kernel: lib/process-memory.ts
    display_name: DISPLAY_NAME,
    language: "typescript",
    // Interrupts arrive as interrupt_request on the control channel; SIGINT works as well.
    interrupt_mode: "message",
    env: { ...MALLOC_ENV },
    metadata: { debugger: false, "llama-ts": { root } },
  };
}

/** Writes the kernelspec (atomically) and returns its folder. */
export function installKernelSpec(root: string, target: KernelSpecTarget): string {
  const entry = path.join(root, "dist", "kernel", "main.js");
  if (!fs.existsSync(entry)) throw new Error(`${entry} does not exist: build first (npm run build)`);
  const dir = kernelSpecDir(target);
  writeTextAtomic(path.join(dir, "kernel.json"), JSON.stringify(kernelSpec(root), null, 2) + "\n");
  return dir;
}
