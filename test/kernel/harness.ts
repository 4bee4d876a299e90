/**
 * Shared set-up for the kernel tests: the kernel runs from the built dist/
 * (as Jupyter starts it), registered as kernelspec "llama-ts" in a private
 * Jupyter data folder, with a private history folder. Python-side suites run
 * with Debian's /usr/bin/python3 (jupyter_client, nbclient, jupyter_kernel_test).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const PYTHON = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

export interface KernelEnv {
  /** Environment for Python clients: JUPYTER_PATH → the private kernelspec, a private history dir. */
  env: NodeJS.ProcessEnv;
  dir: string;
  cleanup(): void;
}

/** Installs the kernelspec with the real CLI (`llama-ts kernel install --prefix`) into a temp prefix. */
export async function kernelEnv(): Promise<KernelEnv> {
  const main = path.join(ROOT, "dist", "kernel", "main.js");
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`node scripts/build.mjs\` first (npm test does)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-kernel-test-"));
  const res = await run(process.execPath, [path.join(ROOT, "bin", "llama-ts.js"), "kernel", "install", "--prefix", dir], { env: process.env });
  if (res.code !== 0) throw new Error(`kernel install failed (${res.code}): ${res.stderr}`);
  const env = {
    ...process.env,
    JUPYTER_PATH: path.join(dir, "share", "jupyter"),
    JUPYTER_DATA_DIR: path.join(dir, "data"),
    JUPYTER_RUNTIME_DIR: path.join(dir, "runtime"),
    LLAMA_TS_HISTORY_DIR: path.join(dir, "history"),
    PYTHONPATH: path.join(ROOT, "test", "kernel"),
    PYTHONDONTWRITEBYTECODE: "1",
  };
  return { env, dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd ?? ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
    child.on("error", reject);
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs one Python unittest target (module.Class or module.Class.test) and returns its result. */
export function pyUnittest(target: string, env: NodeJS.ProcessEnv, timeoutMs = 110_000): Promise<RunResult> {
  return run(PYTHON, ["-m", "unittest", "-v", target], { env, cwd: path.join(ROOT, "notebooks"), timeoutMs });
}
