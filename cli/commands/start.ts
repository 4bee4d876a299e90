/**
 * `llama-ts start`: what `npm start` runs after setup and build.
 *
 * Registers the kernel, starts JupyterLab on 127.0.0.1 with a token and the
 * notebooks folder as its root, and prints, each on its own line as soon as
 * the server answers:
 *
 *   JupyterLab: http://127.0.0.1:PORT/lab?token=…
 *   Workbench: http://127.0.0.1:PORT/?token=…   (its own secret; see kernel/workbench/access.ts)
 *
 * (With only Debian's Notebook 6 available the first line reads `Notebook: …`.)
 * Stays up until Ctrl-C / SIGTERM, then stops everything it started.
 *
 * Services beside Jupyter plug in through SERVICES below: each gets the
 * running Jupyter server and returns its URL; `--workbench-only` starts the
 * Jupyter server for the kernels but prints only the workbench.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MODEL_FLAG, defineCommand, modelPath } from "../args.js";
import { UsageError } from "../cli-error.js";
import { checkoutRoot } from "./kernel.js";
import { installKernelSpec, type KernelSpecTarget } from "../../kernel/kernelspec.js";
import { startJupyter } from "../../kernel/server/jupyter-server.js";
import type { RunningService, ServiceContext } from "../../kernel/server/service.js";
import { startWorkbench } from "../../kernel/workbench/server.js";

/** Services started after Jupyter, each printed as `NAME: URL` (the workbench's URL carries its secret). */
const SERVICES: ((ctx: ServiceContext) => Promise<RunningService>)[] = [startWorkbench];

export const command = defineCommand({
  summary: "start JupyterLab (and the workbench) on 127.0.0.1 with the llama-ts kernel",
  flags: {
    port: { type: "string", arg: "N", shownDefault: "a free one", help: "Jupyter's port" },
    "notebook-dir": { type: "string", arg: "DIR", shownDefault: "the checkout's notebooks/", help: "folder JupyterLab opens" },
    model: { ...MODEL_FLAG, help: "model the notebooks and workbench load (exported to kernels as LLAMA_TS_MODEL): a folder, .gguf file or model name" },
    "workbench-only": { type: "boolean", help: "serve the workbench only (Jupyter runs for its kernels, its URL is not printed)" },
  },
  async run(v) {
    const port = v.port === undefined ? undefined : Number(v.port);
    if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new UsageError(`--port: expected a port number, got "${v.port}"`);
    const root = checkoutRoot();
    const notebookDir = path.resolve(v["notebook-dir"] ?? path.join(root, "notebooks"));
    if (!fs.existsSync(notebookDir)) throw new UsageError(`--notebook-dir: no such folder: ${notebookDir}`);
    const model = path.resolve(modelPath("--model", v.model));
    const log = (line: string) => void process.stderr.write(`[start] ${line}\n`);

    // The venv's Jupyter reads kernelspecs from its own prefix; Debian's Notebook from the user dir.
    const venv = path.join(root, ".venv");
    const target: KernelSpecTarget = fs.existsSync(path.join(venv, "bin", "jupyter-lab")) ? { kind: "prefix", prefix: venv } : { kind: "user" };
    log(`kernelspec llama-ts → ${installKernelSpec(root, target)}`);

    const jupyter = await startJupyter({ root, notebookDir, port, env: { LLAMA_TS_MODEL: model } });
    log(`${jupyter.flavor} (jupyter pid ${jupyter.process.pid}) log: ${jupyter.logFile}`);
    const running: RunningService[] = [];
    let stopping = false;
    const shutdown = async () => {
      stopping = true;
      for (const svc of running.reverse()) await svc.stop().catch(() => {});
      await jupyter.stop();
    };
    const exitAfterShutdown = (code: number) => {
      if (stopping) return;
      // Never hang on the way out: whatever has not stopped in 15 s is left to the OS.
      setTimeout(() => process.exit(code), 15_000).unref();
      void shutdown().finally(() => process.exit(code));
    };
    process.on("SIGINT", () => exitAfterShutdown(0));
    process.on("SIGTERM", () => exitAfterShutdown(0));
    jupyter.process.once("exit", (code) => {
      if (!stopping) log(`Jupyter exited unexpectedly (code ${code}); see ${jupyter.logFile}`);
      exitAfterShutdown(1);
    });

    try {
      if (!v["workbench-only"]) {
        process.stdout.write(`${jupyter.flavor === "jupyterlab" ? "JupyterLab" : "Notebook"}: ${jupyter.url}\n`);
      }
      for (const start of SERVICES) {
        const svc = await start({ root, jupyter, model, log });
        running.push(svc);
        process.stdout.write(`${svc.name}: ${svc.url}\n`);
      }
    } catch (err) {
      await shutdown().catch(() => {});
      throw err;
    }
    log("running; Ctrl-C stops everything");
    await new Promise<never>(() => {});
    return 0;
  },
});
