/**
 * Runs the built CLI (bin/llama-ts.js → dist/) in a child process, for the CLI tests.
 *
 * Known issue with WebGPU commands: under heavy parallel load, Dawn on lavapipe rarely crashes
 * (SIGSEGV or SIGABRT) while tearing down at process exit, after the output is complete (2 of ~10
 * full suite runs; 0 of 55 runs alone). `gpu: true` retries such a run up to twice; a crash that
 * persists, or any other signal (a hang → SIGTERM), is returned for the test to fail on.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";

export function runCli(args: readonly string[], options: { cwd?: string; timeoutMs?: number; gpu?: boolean } = {}): SpawnSyncReturns<string> {
  const run = () => spawnSync(process.execPath, ["bin/llama-ts.js", ...args], { cwd: options.cwd, encoding: "utf8", timeout: options.timeoutMs ?? 120_000 });
  let r = run();
  for (let retry = 0; options.gpu && retry < 2 && (r.signal === "SIGSEGV" || r.signal === "SIGABRT"); retry++) {
    console.warn(`[cli] llama-ts ${args.join(" ")}: ${r.signal} at exit, retrying (known Dawn teardown issue)`);
    r = run();
  }
  return r;
}
