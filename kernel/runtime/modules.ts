/**
 * How cells load code. `import` statements and `import()` go through Node's
 * ESM loader (so ESM-only packages work), resolved from the notebook's folder;
 * `llama-ts` always means this checkout's build (dist/index.js, ESM: lib with
 * the WebGPU backend registered). Local `.ts` files load through tsx when it is
 * installed (see importLocal). `require()` in a cell is Node's CommonJS require
 * from the notebook's folder; `require("llama-ts")` loads the same ESM modules
 * (require(esm), node ≥ 20.19), so there is one Tensor class, not two.
 */
import { createRequire, register } from "node:module";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { importForCell } from "./cell-import.js";

export interface CellModules {
  /** ESM import from the notebook folder; the namespace object. */
  import(specifier: string): Promise<Record<string, unknown>>;
  /** Synchronous require for the compiled cell: preloaded ESM namespaces first, then CommonJS. */
  require(specifier: string): unknown;
  /** Loads a cell's static imports before it runs (they are async in ESM). */
  preload(specifiers: readonly string[]): Promise<void>;
}

let hooksRegistered = false;

export async function createCellModules(cwd: string, root: string): Promise<CellModules> {
  const esmEntry = path.join(root, "dist", "index.js");
  const internals = path.join(root, "dist", "lib", "internals.js");
  if (!hooksRegistered) {
    hooksRegistered = true;
    register(new URL("./import-hooks.js", import.meta.url), {
      data: {
        importer: new URL("./cell-import.js", import.meta.url).href,
        base: pathToFileURL(path.join(cwd, "__llama_ts_cell__.js")).href,
        aliases: fs.existsSync(esmEntry) ? { "llama-ts": pathToFileURL(esmEntry).href, "llama-ts/internals": pathToFileURL(internals).href } : {},
      },
    });
  }
  const cjsRequire = createRequire(path.join(cwd, "__llama_ts_cell__.js"));
  const loaded = new Map<string, unknown>();

  const interop = (ns: Record<string, unknown>): unknown => {
    // What TypeScript's CommonJS output expects (esModuleInterop): `__esModule` set, `default` as is.
    // A CommonJS package's named exports that Node's static analysis missed are taken from its default.
    const out: Record<string, unknown> = { __esModule: true };
    const def = ns.default;
    if ((typeof def === "object" && def !== null) || typeof def === "function") {
      for (const k of Object.keys(def)) if (!(k in ns)) out[k] = (def as Record<string, unknown>)[k];
    }
    for (const k of Object.keys(ns)) out[k] = ns[k];
    return out;
  };

  const load = (spec: string) => (isPathSpecifier(spec) ? importLocal(spec, cwd) : importForCell(spec));
  return {
    import: load,
    async preload(specs) {
      for (const s of specs) if (!loaded.has(s)) loaded.set(s, interop(await load(s)));
    },
    require(spec) {
      if (loaded.has(spec)) return loaded.get(spec);
      if (spec === "llama-ts") return cjsRequire(esmEntry);
      if (spec === "llama-ts/internals") return cjsRequire(internals);
      return cjsRequire(spec);
    },
  };
}

function isPathSpecifier(spec: string): boolean {
  return spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("/") || spec.startsWith("file:");
}

const TS_EXTENSIONS = [".ts", ".mts", ".cts", ".tsx"];

/**
 * A file next to the notebook (or anywhere on disk). TypeScript sources load
 * through tsx's tsImport, which compiles them (and what they import) on the
 * fly without hooking every other import of the process; `./x.js` finds
 * `./x.ts` as NodeNext projects write it. Anything else is a plain import().
 */
async function importLocal(spec: string, cwd: string): Promise<Record<string, unknown>> {
  const file = spec.startsWith("file:") ? fileURLToPath(spec) : path.resolve(cwd, spec);
  let target = file;
  if (!fs.existsSync(file)) {
    const base = file.replace(/\.(m|c)?jsx?$/, "");
    target = TS_EXTENSIONS.map((ext) => base + ext).find((f) => fs.existsSync(f)) ?? file;
  }
  if (TS_EXTENSIONS.some((ext) => target.endsWith(ext))) {
    let tsx: { tsImport: (specifier: string, parent: string) => Promise<Record<string, unknown>> };
    try {
      tsx = (await import("tsx/esm/api")) as typeof tsx;
    } catch {
      throw new Error(`cannot import ${spec}: loading TypeScript files needs the tsx package (npm install tsx)`);
    }
    return tsx.tsImport(pathToFileURL(target).href, pathToFileURL(path.join(cwd, "__llama_ts_cell__.ts")).href);
  }
  return import(pathToFileURL(target).href) as Promise<Record<string, unknown>>;
}
