/**
 * Runs the built CLI (bin/llama-ts.js → dist/) in a child process, for the CLI tests.
 *
 * No retries: WebGPU commands used to die rarely (SIGSEGV/SIGABRT) at process exit, after their
 * output, when Dawn's instance was finalized during node's own teardown while lavapipe's driver
 * threads still ran. gpu/device.ts now tears Dawn down in order before exit, so any signal
 * (a crash, or a hang killed by the timeout) is returned for the test to fail on. `gpu` is kept
 * for callers that mark their WebGPU runs.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";

export function runCli(args: readonly string[], options: { cwd?: string; timeoutMs?: number; gpu?: boolean } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ["bin/llama-ts.js", ...args], { cwd: options.cwd, encoding: "utf8", timeout: options.timeoutMs ?? 120_000 });
}
