/**
 * Compiles notebook cells: TypeScript (strict, ES2022, the project's own
 * compiler) → type-checked → JavaScript the executor runs, with a source map
 * back to the cell's lines. Built on tslab's design (one in-memory program;
 * earlier cells seen as declarations; the last expression kept; top-level
 * names shared through an `exports` object), with its gaps closed: modern
 * TypeScript, strict mode, ESM imports, `llama-ts` resolving to this checkout.
 *
 * A LanguageService keeps the lib and package declarations parsed between
 * cells, so only the cell itself is re-checked; completion and hover use it too.
 */
// `require`, not an ESM import: node scans a CommonJS module imported from ESM for its export
// names, and on typescript.js (9 MB) that scan costs ~0.7 s of kernel start-up.
import ts = require("typescript");
import * as fs from "node:fs";
import * as path from "node:path";
import { CellScope, declarationEntries, importEntries, topLevelNames } from "./cell-scope.js";
import { cellTransformer, type TransformResult } from "./transformers.js";

export interface CellDiagnostic {
  /** 0-based line/column in the cell. */
  line: number;
  column: number;
  code: number;
  message: string;
}

export interface CompiledCell {
  /** CommonJS-flavoured JavaScript for the body of the cell function. */
  js: string;
  /** Source maps (v3 JSON): `cjs` maps `js` to the ESM pass, `esm` maps that to the cell's TypeScript. */
  maps: { cjs: string; esm: string };
  imports: string[];
  hasLastExpression: boolean;
  /** Declarations this cell adds to the scope, recorded by commit(). */
  pending: Map<string, string>;
}

export type CompileResult = { ok: true; cell: CompiledCell } | { ok: false; diagnostics: CellDiagnostic[] };

// Diagnostics that only get in the way in a notebook.
const IGNORED = new Set([
  7016, // untyped JS package: import it as `any` rather than refuse the cell
  1375, 1378, 1431, 1432, // top-level await/for-await "only allowed in modules…": cells are async
  2451, // (cannot happen with the header approach, but never block on a redeclare)
]);

export interface CompilerOptions {
  /** The notebook's folder: relative imports resolve from here. */
  cwd: string;
  /** Checkout root (where package.json named llama-ts lives). */
  root: string;
  /** Ambient declarations of the kernel's cell globals (display, clearOutput, …). */
  globalsDts: string;
}

export class CellCompiler {
  readonly scope = new CellScope();
  private readonly cellFile: string;
  private readonly globalsFile: string;
  private cellText = "export {};";
  private version = 0;
  private readonly service: ts.LanguageService;
  private readonly options: ts.CompilerOptions;

  constructor(private readonly opts: CompilerOptions) {
    this.cellFile = path.join(opts.cwd, "__llama_ts_cell__.ts");
    this.globalsFile = path.join(opts.cwd, "__llama_ts_globals__.d.ts");
    const typeRoots = [path.join(opts.root, "node_modules", "@types")];
    const llamaTypes = [path.join(opts.root, "dist", "lib", "index.d.ts"), path.join(opts.root, "lib", "index.ts")];
    this.options = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ["lib.es2023.d.ts"],
      types: ["node"],
      typeRoots,
      paths: {
        "llama-ts": llamaTypes,
        "llama-ts/internals": [path.join(opts.root, "dist", "lib", "internals.d.ts"), path.join(opts.root, "lib", "internals.ts")],
      },
      strict: true,
      esModuleInterop: true,
      allowSyntheticDefaultImports: true,
      resolveJsonModule: true,
      skipLibCheck: true,
      declaration: true,
      sourceMap: true,
      newLine: ts.NewLineKind.LineFeed,
      noEmitOnError: false,
      useDefineForClassFields: true,
    };
    const self = this;
    const host: ts.LanguageServiceHost = {
      getCompilationSettings: () => self.options,
      getScriptFileNames: () => [self.globalsFile, self.cellFile],
      getScriptVersion: (f) => (f === self.cellFile ? String(self.version) : "0"),
      getScriptSnapshot: (f) => {
        const text = self.read(f);
        return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
      },
      getCurrentDirectory: () => opts.cwd,
      getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
      fileExists: (f) => f === self.cellFile || f === self.globalsFile || ts.sys.fileExists(f),
      readFile: (f) => self.read(f),
      readDirectory: ts.sys.readDirectory,
      directoryExists: ts.sys.directoryExists,
      getDirectories: ts.sys.getDirectories,
      realpath: ts.sys.realpath,
      useCaseSensitiveFileNames: () => true,
    };
    this.service = ts.createLanguageService(host, ts.createDocumentRegistry());
  }

  private read(f: string): string | undefined {
    if (f === this.cellFile) return this.cellText;
    if (f === this.globalsFile) return this.opts.globalsDts;
    return ts.sys.readFile(f);
  }

  /** Lays out `src` + `export {own names}` + the earlier cells' declarations; returns where the header starts. */
  private layout(src: string): { text: string; headerStart: number; own: Set<string>; sf: ts.SourceFile } {
    const sf = ts.createSourceFile(this.cellFile, src, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    const { own, exported } = topLevelNames(sf);
    const toExport = [...own].filter((n) => !exported.has(n));
    const exportLine = toExport.length ? `export { ${toExport.join(", ")} };` : "export {};";
    const body = `${src}\n${exportLine}\n`;
    const text = body + this.scope.header(own);
    this.cellText = text;
    this.version++;
    return { text, headerStart: body.length, own, sf };
  }

  compile(src: string): CompileResult {
    const { headerStart, own, sf } = this.layout(src);
    const program = this.service.getProgram();
    const file = program?.getSourceFile(this.cellFile);
    if (!program || !file) throw new Error("internal: the cell is missing from the TypeScript program");
    const diagnostics = [
      ...program.getSyntacticDiagnostics(file),
      ...program.getSemanticDiagnostics(file),
      ...program.getGlobalDiagnostics(),
    ]
      .filter((d) => d.category === ts.DiagnosticCategory.Error && !IGNORED.has(d.code))
      // Problems inside earlier cells' declarations (a deleted module, a type redefined since)
      // are not this cell's fault and must not block every cell from now on.
      .filter((d) => !(d.file === file && d.start !== undefined && d.start >= headerStart))
      .map((d) => toCellDiagnostic(d, file, headerStart));
    if (diagnostics.length) return { ok: false, diagnostics };

    const result: TransformResult = { imports: [], hasLastExpression: false };
    let js = "";
    let map = "";
    let dts = "";
    program.emit(
      file,
      (name, data) => {
        if (name.endsWith(".d.ts")) dts = data;
        else if (name.endsWith(".js.map")) map = data;
        else if (name.endsWith(".js")) js = data;
      },
      undefined,
      false,
      { after: [cellTransformer(program.getTypeChecker(), file, headerStart, result)] },
    );
    const cjs = toCommonJs(js.replace(/\n\/\/# sourceMappingURL=.*\s*$/, "\n"));
    const pending = declarationEntries(dts, own);
    for (const [name, text] of importEntries(sf)) pending.set(name, text);
    return {
      ok: true,
      cell: {
        js: cjs.js,
        maps: { cjs: cjs.map, esm: map },
        imports: [...new Set(result.imports)],
        hasLastExpression: result.hasLastExpression,
        pending,
      },
    };
  }

  /** Type-checks a cell that touches the globals and llama-ts, so the first real cell finds everything parsed. */
  warmUp(): void {
    this.compile('import type * as __llama_ts_warmup from "llama-ts";\ndisplay; 0');
  }

  /** Makes a cell's declarations visible to the following cells. */
  commit(cell: CompiledCell): void {
    for (const [name, text] of cell.pending) this.scope.set(name, text);
  }

  /** Completion: the members/names that start with what was typed before `pos` (UTF-16 offset). */
  complete(src: string, pos: number): { start: number; end: number; matches: string[] } {
    let start = pos;
    while (start > 0 && /[\w$]/.test(src[start - 1]!)) start--;
    let end = pos;
    while (end < src.length && /[\w$]/.test(src[end]!)) end++;
    const prefix = src.slice(start, pos);
    this.layout(src);
    const info = this.service.getCompletionsAtPosition(this.cellFile, pos, {
      includeCompletionsForModuleExports: false,
      includeCompletionsWithInsertText: false,
    });
    const entries = (info?.entries ?? []).filter((e) => e.name.startsWith(prefix) && !e.name.startsWith("__llama_ts"));
    entries.sort((a, b) => a.sortText.localeCompare(b.sortText) || a.name.localeCompare(b.name));
    return { start, end, matches: [...new Set(entries.map((e) => e.name))] };
  }

  /** Hover text for the symbol at (or just before) `pos`: signature, then documentation. */
  inspect(src: string, pos: number): string | undefined {
    this.layout(src);
    const info =
      this.service.getQuickInfoAtPosition(this.cellFile, pos) ??
      (pos > 0 ? this.service.getQuickInfoAtPosition(this.cellFile, pos - 1) : undefined);
    if (!info) return undefined;
    const sig = ts.displayPartsToString(info.displayParts);
    const doc = ts.displayPartsToString(info.documentation);
    const tags = (info.tags ?? []).map((t) => `@${t.name} ${ts.displayPartsToString(t.text)}`.trim());
    return [sig, doc, ...tags].filter((s) => s.length > 0).join("\n\n");
  }
}

function toCellDiagnostic(d: ts.Diagnostic, file: ts.SourceFile, headerStart: number): CellDiagnostic {
  const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
  if (d.file === file && d.start !== undefined && d.start < headerStart) {
    const { line, character } = file.getLineAndCharacterOfPosition(d.start);
    return { line, column: character, code: d.code, message };
  }
  // In another file (the globals, a local module): report without a cell position.
  const where = d.file && d.file !== file ? ` (in ${d.file.fileName})` : "";
  return { line: -1, column: -1, code: d.code, message: message + where };
}

/** Second pass: ESM → CommonJS so the cell runs as a function body with `require` and `exports`. */
function toCommonJs(js: string): { js: string; map: string } {
  const out = ts.transpileModule(js, {
    fileName: "cell.js",
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      sourceMap: true,
      newLine: ts.NewLineKind.LineFeed,
    },
  });
  return { js: out.outputText.replace(/\n\/\/# sourceMappingURL=.*\s*$/, "\n"), map: out.sourceMapText ?? "" };
}

/** The checkout root for a file inside it (the folder whose package.json is named llama-ts). */
export function findRoot(from: string): string {
  let dir = from;
  for (;;) {
    const pj = path.join(dir, "package.json");
    if (fs.existsSync(pj)) {
      try {
        if ((JSON.parse(fs.readFileSync(pj, "utf8")) as { name?: string }).name === "llama-ts") return dir;
      } catch {
        /* keep walking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no llama-ts checkout above ${from}`);
    dir = up;
  }
}
