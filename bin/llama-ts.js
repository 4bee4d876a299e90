#!/usr/bin/env node
// Entry point of the `llama-ts` CLI: runs the compiled CLI from dist/ (built by `npm run build`).
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "dist", "cli", "main.js");
if (!existsSync(entry)) {
  process.stderr.write("llama-ts: not built yet; run `npm run build` (or `npm test` / `npm start`, which build first)\n");
  process.exit(2);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
