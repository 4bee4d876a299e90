/**
 * The public API is the documented one, and the module graph points one way:
 *   - `llama-ts` (the built package entry, resolved through package.json's
 *     exports) has at most 150 runtime names, counting the names inside every
 *     namespace but `autograd`, and exports every name README, the notebooks
 *     and the workbench's cells import from it;
 *   - `llama-ts/internals` has the rest, with the same class objects;
 *   - importing `llama-ts` does not load gpu/index.js or Dawn (the `webgpu` package);
 *   - lib/ never names gpu/ (static, dynamic or as a path string), and lib/
 *     and gpu/ have no runtime import cycles.
 * Needs `node scripts/build.mjs` first (the checks on the entry run the built dist/).
 */
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const MAX_RUNTIME_NAMES = 150;

/** Runs an ES module program with node from the repo root (so "llama-ts" resolves through package.json) and parses its last stdout line. */
function runModule<T>(source: string, args: string[] = []): T {
  const res = spawnSync(process.execPath, [...args, "--input-type=module", "-e", source], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  if (res.status !== 0) throw new Error(`node exited ${res.status}: ${res.stderr}`);
  return JSON.parse(res.stdout.trim().split("\n").pop()!) as T;
}

interface Surface {
  names: string[];
  /** Namespace exports and their names. */
  namespaces: Record<string, string[]>;
}

function surface(specifier: string): Surface {
  return runModule<Surface>(`
    const m = await import(${JSON.stringify(specifier)});
    const namespaces = {};
    for (const [k, v] of Object.entries(m)) if (Object.prototype.toString.call(v) === "[object Module]") namespaces[k] = Object.keys(v);
    console.log(JSON.stringify({ names: Object.keys(m), namespaces }));
  `);
}

/** Names imported from "llama-ts" (values, not `import type`) in a text, and `autograd.x` uses. */
function importedNames(text: string): { names: Set<string>; autograd: Set<string> } {
  const names = new Set<string>();
  for (const m of text.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s*from\s*["']llama-ts["']/g)) {
    if (m[1]) continue;
    for (const part of m[2]!.split(",")) {
      const p = part.trim();
      if (p && !p.startsWith("type ")) names.add(p.split(/\s+as\s+/)[0]!.trim());
    }
  }
  const autograd = new Set([...text.matchAll(/\bautograd\.(\w+)/g)].map((m) => m[1]!));
  return { names, autograd };
}

/** A notebook's cells' sources, one after another. */
function notebookSource(json: string): string {
  const nb = JSON.parse(json) as { cells: { source: string | string[] }[] };
  return nb.cells.map((c) => (Array.isArray(c.source) ? c.source.join("") : c.source)).join("\n");
}

function documentedUses(): { names: Map<string, string>; autograd: Map<string, string> } {
  const files = [
    "README.md",
    "kernel/workbench/web/snippets.ts",
    ...fs.readdirSync(path.join(ROOT, "notebooks")).filter((f) => f.endsWith(".ipynb") || f.endsWith(".md")).map((f) => `notebooks/${f}`),
  ];
  const names = new Map<string, string>();
  const autograd = new Map<string, string>();
  for (const f of files) {
    const text = fs.readFileSync(path.join(ROOT, f), "utf8");
    const found = importedNames(f.endsWith(".ipynb") ? notebookSource(text) : text);
    for (const n of found.names) names.set(n, f);
    for (const n of found.autograd) autograd.set(n, f);
  }
  return { names, autograd };
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...tsFiles(rel));
    else if (rel.endsWith(".ts") && !rel.endsWith(".d.ts")) out.push(rel);
  }
  return out;
}

/** The file's runtime imports (relative, resolved to .ts paths): what is left after TypeScript erases type-only ones. */
function runtimeImports(file: string): string[] {
  const js = ts.transpileModule(fs.readFileSync(path.join(ROOT, file), "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: file,
  }).outputText;
  const specs = [
    ...[...js.matchAll(/^\s*(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']/gm)].map((m) => m[1]!),
    ...[...js.matchAll(/^\s*import\s*["']([^"']+)["']/gm)].map((m) => m[1]!),
    ...[...js.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!),
  ];
  return specs.filter((s) => s.startsWith(".")).map((s) => path.posix.join(path.posix.dirname(file), s).replace(/\.js$/, ".ts"));
}

/** Strongly connected components with more than one file (or a self-import): the import cycles. */
function cycles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)!.includes(v)) found.push(scc);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe("the public API", () => {
  const pub = surface("llama-ts");

  it(`has at most ${MAX_RUNTIME_NAMES} runtime names (namespaces counted by their names, autograd excepted)`, () => {
    const inside = Object.entries(pub.namespaces).filter(([k]) => k !== "autograd").reduce((n, [, v]) => n + v.length, 0);
    const count = pub.names.length + inside;
    expect(pub.namespaces.autograd, "autograd is a namespace").toBeDefined();
    expect(count).toBeLessThanOrEqual(MAX_RUNTIME_NAMES);
    expect(count).toBeGreaterThan(50); // the check saw the real entry
  });

  it("exports every name README, the notebooks and the workbench's cells import from it", () => {
    const uses = documentedUses();
    expect(uses.names.size).toBeGreaterThan(40); // the scan found the imports
    const exported = new Set(pub.names);
    const missing = [...uses.names].filter(([n]) => !exported.has(n)).map(([n, f]) => `${n} (${f})`);
    expect(missing).toEqual([]);
    const grad = new Set(pub.namespaces.autograd);
    const missingGrad = [...uses.autograd].filter(([n]) => !grad.has(n)).map(([n, f]) => `autograd.${n} (${f})`);
    expect(missingGrad).toEqual([]);
  });

  it("leaves the internals to llama-ts/internals, with the same classes", () => {
    const same = runModule<{ internals: string[]; sameTensor: boolean; sameModel: boolean }>(`
      const pub = await import("llama-ts");
      const internals = await import("llama-ts/internals");
      console.log(JSON.stringify({ internals: Object.keys(internals), sameTensor: pub.Tensor === internals.Tensor, sameModel: pub.LlamaForCausalLM === internals.LlamaForCausalLM }));
    `);
    expect(same.sameTensor).toBe(true);
    expect(same.sameModel).toBe(true);
    for (const n of ["CpuBackend", "matmulTransposedInto", "rmsNormInto", "registerDevice", "GgufValueType"]) {
      expect(pub.names, n).not.toContain(n);
      expect(same.internals, n).toContain(n);
    }
  });

  it("importing it loads neither gpu/index.js nor Dawn", () => {
    // A resolve hook (in node's loader thread) records every module URL the import touches.
    const hook = `
      import * as fs from "node:fs";
      let out;
      export function initialize(d) { out = d.out; }
      export async function resolve(s, c, next) { const r = await next(s, c); fs.appendFileSync(out, r.url + "\\n"); return r; }`;
    const out = path.join(fs.mkdtempSync(path.join(ROOT, "node_modules", ".api-surface-")), "urls.txt");
    try {
      runModule<number>(`
        import { register } from "node:module";
        register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hook)}), { data: { out: ${JSON.stringify(out)} } });
        await import("llama-ts");
        console.log(1);
      `);
      const urls = fs.readFileSync(out, "utf8").split("\n").filter(Boolean);
      expect(urls.some((u) => u.endsWith("/dist/gpu/register.js"))).toBe(true); // the hook saw the graph
      expect(urls.filter((u) => u.includes("/dist/gpu/") && !u.endsWith("/dist/gpu/register.js"))).toEqual([]);
      expect(urls.filter((u) => u.includes("/node_modules/webgpu/"))).toEqual([]);
    } finally {
      fs.rmSync(path.dirname(out), { recursive: true, force: true });
    }
  });
});

describe("the module graph", () => {
  it("lib/ never names gpu/: no import of it, no path string to it, no computed import()", () => {
    const offences: string[] = [];
    for (const file of tsFiles("lib")) {
      const text = fs.readFileSync(path.join(ROOT, file), "utf8");
      // Comments may talk about gpu/; code may not. Scan the code with the comments removed.
      const code = ts.transpileModule(text, { compilerOptions: { removeComments: true, module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true }, fileName: file }).outputText;
      code.split("\n").forEach((line) => {
        if (/["'`/]gpu["'`/]|["'`]gpu\b/.test(line)) offences.push(`${file}: ${line.trim()} (path to gpu/)`);
        if (/\bimport\(\s*[^"'\s)]/.test(line)) offences.push(`${file}: ${line.trim()} (import() of a computed path)`);
      });
    }
    expect(offences).toEqual([]);
  });

  it("lib/, gpu/ and the package entry have no runtime import cycles", () => {
    const files = ["index.ts", ...tsFiles("lib"), ...tsFiles("gpu")];
    const graph = new Map(files.map((f) => [f, runtimeImports(f)]));
    expect(graph.get("index.ts")!.sort()).toEqual(["gpu/register.ts", "lib/index.ts"]); // the parser sees imports
    expect(cycles(graph)).toEqual([]);
  });
});
