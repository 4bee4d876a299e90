// Builds dist/: tsc emits ESM + .d.ts for the package entry (index.ts), lib/, gpu/,
// cli/, kernel/ (one tree, so relative imports between them keep working).
// No CommonJS bundle: `require("llama-ts")` loads the same ESM files (require(esm),
// node >= 20.19), so a CommonJS user and gpu/ share one Tensor class.
// Type errors fail the build, but only after everything has been emitted.
import { spawnSync } from "node:child_process";
import { copyFileSync, rmSync } from "node:fs";
import { build } from "esbuild";

const t0 = Date.now();
const tsc = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
rmSync("dist/cjs", { recursive: true, force: true }); // the old CommonJS bundle (its own copy of every class)

// The workbench page: a browser bundle (with @jupyterlab/services) plus its
// static files. Type-checked on its own (DOM types, no node types).
const web = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "kernel/workbench/web/tsconfig.json"], { stdio: "inherit" });
await build({
  entryPoints: ["kernel/workbench/web/main.ts"],
  bundle: true,
  platform: "browser",
  format: "esm",
  target: "es2022",
  outfile: "dist/workbench/app.js",
  sourcemap: true,
  minify: true,
  logLevel: "warning",
});
for (const f of ["index.html", "app.css"]) copyFileSync(`kernel/workbench/web/${f}`, `dist/workbench/${f}`);
if (tsc.status !== 0 || web.status !== 0) {
  process.stderr.write("[build] type errors (dist/ was emitted anyway)\n");
  process.exit(1);
}
process.stderr.write(`[build] dist/ ready in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
