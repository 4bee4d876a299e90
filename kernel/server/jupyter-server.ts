/**
 * Starts a Jupyter server for the notebooks: JupyterLab 4 from the project's
 * venv (.venv, made by scripts/setup-python.sh) or, when that is missing,
 * Debian's classic Notebook 6. Loopback only (127.0.0.1), a random token, the
 * notebooks folder as root. Resolves once the server answers HTTP.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { writeTextAtomic } from "../../lib/io/atomic.js";

export type JupyterFlavor = "jupyterlab" | "notebook";

export interface JupyterServer {
  flavor: JupyterFlavor;
  /** http://127.0.0.1:PORT (no trailing slash). */
  baseUrl: string;
  token: string;
  /** What to open in a browser: the app page with the token. */
  url: string;
  /** Where the server's own log goes. */
  logFile: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface StartJupyterOptions {
  root: string;
  notebookDir: string;
  port?: number;
  /** Extra environment for the server (and so for kernels it starts). */
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Force a flavor (default: JupyterLab when the venv has it). */
  flavor?: JupyterFlavor;
}

/** Which Jupyter to run: the venv's JupyterLab if installed, else Debian's Notebook 6. */
export function findJupyter(root: string, want?: JupyterFlavor): { flavor: JupyterFlavor; command: string; args: string[]; prefix?: string } {
  const venv = path.join(root, ".venv");
  const lab = path.join(venv, "bin", "jupyter-lab");
  if (want !== "notebook" && fs.existsSync(lab)) return { flavor: "jupyterlab", command: lab, args: [], prefix: venv };
  if (want === "jupyterlab") throw new Error(`${lab} is missing: run \`bash scripts/setup-python.sh\``);
  for (const py of ["/usr/bin/python3", "python3"]) {
    if (py.startsWith("/") && !fs.existsSync(py)) continue;
    return { flavor: "notebook", command: py, args: ["-m", "notebook"] };
  }
  throw new Error("no Jupyter found: run `bash scripts/setup-python.sh` (JupyterLab in .venv) or install python3-notebook");
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * JupyterLab must not reach for the internet (there is none here): no update
 * check, no news feed. Written as the app's settings overrides in the venv.
 */
function writeLabOverrides(prefix: string): void {
  const file = path.join(prefix, "share", "jupyter", "lab", "settings", "overrides.json");
  const want = {
    "@jupyterlab/apputils-extension:notification": { checkForUpdates: false, fetchNews: "false" },
  };
  const text = JSON.stringify(want, null, 2) + "\n";
  if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) writeTextAtomic(file, text);
}

export async function startJupyter(opts: StartJupyterOptions): Promise<JupyterServer> {
  const found = findJupyter(opts.root, opts.flavor);
  const port = opts.port ?? (await freePort());
  const token = randomBytes(24).toString("hex");
  const baseUrl = `http://127.0.0.1:${port}`;
  const common = ["--no-browser", "--ip=127.0.0.1", `--port=${port}`];
  // Containers and CI run as root; Jupyter refuses that unless told.
  if (process.getuid?.() === 0) common.push("--allow-root");
  let args: string[];
  if (found.flavor === "jupyterlab") {
    writeLabOverrides(found.prefix!);
    args = [
      ...common,
      `--ServerApp.port_retries=0`,
      `--IdentityProvider.token=${token}`,
      `--ServerApp.root_dir=${opts.notebookDir}`,
      "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
      // The extension manager would query PyPI; there is no network here.
      "--LabApp.extension_manager=readonly",
    ];
  } else {
    args = [...found.args, ...common, "--port-retries=0", `--NotebookApp.token=${token}`, `--notebook-dir=${opts.notebookDir}`];
  }
  const logFile = path.join(os.tmpdir(), `llama-ts-jupyter-${port}.log`);
  const log = fs.openSync(logFile, "w");
  const child = spawn(found.command, args, {
    cwd: opts.notebookDir,
    env: { ...process.env, ...opts.env },
    // stdin is not a TTY, so Ctrl-C shuts the server down without asking "(y/[n])?".
    stdio: ["ignore", log, log],
  });
  fs.closeSync(log);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  };

  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`${found.command} exited with code ${child.exitCode} before answering; its log (${logFile}):\n${tail(logFile)}`);
    }
    if (await answers(`${baseUrl}/api/status?token=${token}`)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Jupyter did not answer on ${baseUrl} within ${(opts.timeoutMs ?? 90_000) / 1000}s; its log (${logFile}):\n${tail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const page = found.flavor === "jupyterlab" ? "lab" : "tree";
  return { flavor: found.flavor, baseUrl, token, url: `${baseUrl}/${page}?token=${token}`, logFile, process: child, stop };
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.ok;
  } catch {
    return false;
  }
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
