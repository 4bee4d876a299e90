/**
 * Runs the built CLI (bin/llama-ts.js → dist/) in a child process, for the CLI tests.
 * No run is retried: a WebGPU command finalizes Dawn's objects before it returns
 * (gpu/teardown.ts), so a signal at its exit is a failure like any other.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";

export function runCli(args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ["bin/llama-ts.js", ...args], { cwd: options.cwd, encoding: "utf8", timeout: options.timeoutMs ?? 120_000 });
}
