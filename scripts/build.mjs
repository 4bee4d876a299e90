// Builds dist/: tsc emits ESM + .d.ts for lib/, gpu/, cli/, kernel/ (one tree, so
// relative imports between them keep working), and esbuild bundles lib/ as one
// CommonJS file for `require("llama-ts")` (the notebook kernel compiles cells to CJS).
// Type errors fail the build, but only after everything has been emitted.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const t0 = Date.now();
const tsc = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
await build({
  entryPoints: ["lib/index.ts"],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  packages: "external",
  outfile: "dist/cjs/index.cjs",
  sourcemap: true,
  logLevel: "warning",
  // lib/backend/registry.ts reads import.meta.url only in ESM and falls back to __dirname in this CJS bundle.
  logOverride: { "empty-import-meta": "silent" },
});
mkdirSync("dist/cjs", { recursive: true });
writeFileSync("dist/cjs/package.json", JSON.stringify({ type: "commonjs" }) + "\n");

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
