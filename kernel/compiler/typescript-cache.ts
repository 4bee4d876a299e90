/**
 * Loads the `typescript` package (one 9 MB CommonJS file) through a V8 code
 * cache, so a kernel start does not re-compile it from source, nor re-compile
 * lazily the parser and checker functions the first type-check runs: the cache
 * is written after the kernel's warm-up, with those functions in it. Saves
 * ~0.2 s loading TypeScript and ~0.3 s of the warm-up on this machine.
 *
 * The module is put in require's cache, so every later `require("typescript")`
 * (the compiler's `import ts = require(...)`) gets this instance. The cache file
 * is named after the TypeScript file's size and mtime and node's version; V8
 * itself rejects data from another V8 build or flags (then it is rewritten).
 * Any failure falls back to a plain require: the cache is only a speed-up.
 */
import * as fs from "node:fs";
import { createRequire, Module } from "node:module";
import * as path from "node:path";
import * as vm from "node:vm";
import { writeTextAtomic } from "../../lib/io/atomic.js";

export interface TypeScriptCodeCache {
  /** Writes the code cache when it was missing or rejected (call after the warm-up compile). */
  save(): void;
}

const NOOP: TypeScriptCodeCache = { save() {} };

/** Loads `typescript` into require's cache from a V8 code cache; call before anything requires it. */
export function loadTypeScriptWithCodeCache(): TypeScriptCodeCache {
  const require = createRequire(import.meta.url);
  let file: string;
  try {
    file = require.resolve("typescript");
  } catch {
    return NOOP; // the compiler's own import reports the missing package
  }
  if (require.cache[file]) return NOOP;
  try {
    const stat = fs.statSync(file);
    // <root>/node_modules/typescript/lib/typescript.js → <root>/node_modules/.cache/llama-ts-kernel/
    const cacheDir = path.join(path.dirname(file), "..", "..", ".cache", "llama-ts-kernel");
    const cacheFile = path.join(
      cacheDir,
      `typescript-${stat.size}-${Math.round(stat.mtimeMs)}-node${process.version}-${process.arch}.v8cache`,
    );
    let cachedData: Buffer | undefined;
    try {
      cachedData = fs.readFileSync(cacheFile);
    } catch {
      /* first start: no cache yet */
    }
    const source = fs.readFileSync(file, "utf8");
    // The same wrapper Node's CommonJS loader uses (on one line, so line numbers stay right).
    const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
      filename: file,
      cachedData,
    });
    const mod = new Module(file);
    mod.filename = file;
    mod.paths = [];
    const wrapper = script.runInThisContext() as (e: unknown, r: NodeJS.Require, m: Module, f: string, d: string) => void;
    wrapper(mod.exports, createRequire(file), mod, file, path.dirname(file));
    mod.loaded = true;
    require.cache[file] = mod;
    if (cachedData && !script.cachedDataRejected) return NOOP;
    return {
      save() {
        try {
          fs.mkdirSync(cacheDir, { recursive: true });
          writeTextAtomic(cacheFile, script.createCachedData());
        } catch {
          /* read-only checkout: start without a cache */
        }
      },
    };
  } catch {
    delete require.cache[file];
    return NOOP;
  }
}
