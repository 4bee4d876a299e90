/**
 * Runs the built CLI (bin/llama-ts.js → dist/) in a child process, for the CLI tests.
 *
 * Known, not yet explained: under heavy load (a full suite with load ~13 on 2 cores) a WebGPU
 * command rarely dies by SIGABRT/SIGSEGV although gpu/device.ts tears Dawn down in order (seen
 * once after that change: `gpu-info`, 1 full-suite run; 0 of ~900 gpu-info runs under 3–4 busy
 * loops, and lavapipe's driver threads were gone at node's `exit` event in every one of them).
 * So `gpu: true` retries such a run once, and only when the crash provably came after the
 * program had finished: a preload writes `[cli-run] exit N` from node's `exit` event (after the
 * command returned and its output was flushed; stderr on a pipe is synchronous), and the
 * retry needs that line. The retry is logged loudly with the crashed run's stderr, so it is
 * never silent. Any other signal (a crash mid-run, a hang killed by the timeout) is returned
 * for the test to fail on. The marker line is removed from the stderr the tests see.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";

const EXIT_MARKER = "[cli-run] exit ";
const PRELOAD = `data:text/javascript,process.on("exit",(c)=>process.stderr.write(${JSON.stringify(EXIT_MARKER)}+c+"\\n"))`;

export function runCli(args: readonly string[], options: { cwd?: string; timeoutMs?: number; gpu?: boolean } = {}): SpawnSyncReturns<string> {
  const run = () => {
    const node = options.gpu ? ["--import", PRELOAD] : [];
    return spawnSync(process.execPath, [...node, "bin/llama-ts.js", ...args], { cwd: options.cwd, encoding: "utf8", timeout: options.timeoutMs ?? 120_000 });
  };
  let r = run();
  if (options.gpu && (r.signal === "SIGABRT" || r.signal === "SIGSEGV") && exitedBeforeCrash(r)) {
    console.warn(
      `[cli] Dawn exit crash, retried: llama-ts ${args.join(" ")} died by ${r.signal} after node's exit event ` +
        `(its output was complete). stderr of the crashed run:\n${r.stderr}`,
    );
    r = run();
  }
  return options.gpu ? stripMarker(r) : r;
}

function exitedBeforeCrash(r: SpawnSyncReturns<string>): boolean {
  return new RegExp(`^${escape(EXIT_MARKER)}\\d+$`, "m").test(r.stderr ?? "");
}

function stripMarker(r: SpawnSyncReturns<string>): SpawnSyncReturns<string> {
  const stderr = (r.stderr ?? "").replace(new RegExp(`^${escape(EXIT_MARKER)}\\d+\\n?`, "m"), "");
  return { ...r, stderr, output: [r.output?.[0] ?? null, r.stdout, stderr] };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
