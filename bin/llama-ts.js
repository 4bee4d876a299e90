#!/usr/bin/env node
// Entry point of the `llama-ts` CLI: runs the compiled CLI from dist/ (built by `npm run build`).
import { existsSync } from "node:fs";
import { spawn } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "dist", "cli", "main.js");
if (!existsSync(entry)) {
  process.stderr.write("llama-ts: not built yet; run `npm run build` (or `npm test` / `npm start`, which build first)\n");
  process.exit(2);
}

// The training commands run with glibc's malloc set to keep and reuse freed memory and with a larger
// V8 old space (lib/process-memory.ts), both read only at startup: without them they run again as a
// child with them, once.
const TRAINING = new Set(["dpo", "lora-train", "prompt-tune", "reward-train"]);
const training = process.platform === "linux" && TRAINING.has(process.argv[2]);
const { MALLOC_ENV, HEAP_FLAGS, memorySettingsApplied } = training ? await import(pathToFileURL(join(root, "dist", "lib", "process-memory.js")).href) : {};
if (training && !memorySettingsApplied()) {
  const heap = process.execArgv.some((a) => a.startsWith("--initial-old-space-size")) ? [] : HEAP_FLAGS;
  const child = spawn(process.execPath, [...process.execArgv, ...heap, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit", env: { ...MALLOC_ENV, ...process.env },
  });
  // Ctrl-C reaches both processes (one process group): the child decides what it means, this one
  // waits for it. A signal sent to this process alone is passed on.
  process.on("SIGINT", () => {});
  for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
} else {
  const { main } = await import(pathToFileURL(entry).href);
  process.exitCode = await main(process.argv.slice(2));
}
