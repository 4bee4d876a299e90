/**
 * Kernel entry point, started by Jupyter through the kernelspec:
 *
 *   node dist/kernel/main.js --connection-file /path/kernel-123.json
 *
 * Runs in the notebook's folder (Jupyter's choice of cwd) and serves the
 * llama-ts checkout it lives in.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { loadTypeScriptWithCodeCache } from "./compiler/typescript-cache.js";
import { parseConnectionInfo } from "./protocol/wire.js";

function connectionFileArg(argv: string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-f" || a === "--connection-file") {
      const v = argv[i + 1];
      if (v) return v;
    }
    const m = /^--connection-file=(.+)$/.exec(a);
    if (m) return m[1]!;
  }
  throw new Error("usage: node dist/kernel/main.js --connection-file <file> (Jupyter passes it via the kernelspec)");
}

async function main(): Promise<void> {
  // Library frames in tracebacks point at lib/*.ts, not dist/*.js.
  process.setSourceMapsEnabled(true);
  // Before anything requires TypeScript: the kernel and compiler modules are imported below, after it.
  const tsCache = loadTypeScriptWithCodeCache();
  const { findRoot } = await import("./compiler/cell-compiler.js");
  const { Kernel } = await import("./kernel.js");
  const file = connectionFileArg(process.argv.slice(2));
  const info = parseConnectionInfo(fs.readFileSync(file, "utf8"), file);
  const root = findRoot(path.dirname(fileURLToPath(import.meta.url)));
  const version = (JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version?: string }).version ?? "0.0.0";
  const kernel = new Kernel({ connection: info, cwd: process.cwd(), root, version, afterWarmUp: () => tsCache.save() });
  await kernel.start();
}

main().catch((err: unknown) => {
  process.stderr.write(`[llama-ts kernel] failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
