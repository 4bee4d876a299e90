/**
 * What one cell can see of the cells before it, at type-check time.
 *
 * Every earlier top-level name lives in `CellScope` as one declaration text:
 * imports as `import { A as B } from "m";`, values and types as their `.d.ts`
 * declaration (`declare const m: LlamaForCausalLM;`). To type-check a new
 * cell we append these declarations AFTER the cell's own source (so the
 * cell's line numbers are untouched), leaving out every name the cell
 * declares again — redeclaring `const x` in a later cell simply replaces it,
 * as in a notebook. Ambient `declare` statements and imports are hoisted, so
 * using them above their position is legal TypeScript.
 */
// `require`, not an ESM import: node scans a CommonJS module imported from ESM for its export
// names, and on typescript.js (9 MB) that scan costs ~0.7 s of kernel start-up.
import ts = require("typescript");

export class CellScope {
  /** name → declaration text (later cells overwrite earlier ones). */
  private readonly decls = new Map<string, string>();

  names(): string[] {
    return [...this.decls.keys()];
  }

  has(name: string): boolean {
    return this.decls.has(name);
  }

  /** The declarations to append after a cell that itself declares `own`. */
  header(own: ReadonlySet<string>): string {
    const out: string[] = [];
    for (const [name, text] of this.decls) if (!own.has(name)) out.push(text);
    return out.join("\n");
  }

  set(name: string, text: string): void {
    this.decls.delete(name); // re-insert at the end: later declarations may refer to earlier ones
    this.decls.set(name, text);
  }

  clear(): void {
    this.decls.clear();
  }
}

/** The names a cell declares at its top level (imports included), and the ones it already exports. */
export function topLevelNames(sf: ts.SourceFile): { own: Set<string>; exported: Set<string> } {
  const own = new Set<string>();
  const exported = new Set<string>();
  const addBinding = (name: ts.BindingName) => {
    if (ts.isIdentifier(name)) own.add(name.text);
    else for (const el of name.elements) if (!ts.isOmittedExpression(el)) addBinding(el.name);
  };
  for (const st of sf.statements) {
    const isExported = ts.canHaveModifiers(st) && (ts.getModifiers(st) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    const before = new Set(own);
    if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) addBinding(d.name);
    } else if (
      (ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st) || ts.isInterfaceDeclaration(st) ||
        ts.isTypeAliasDeclaration(st) || ts.isEnumDeclaration(st)) && st.name
    ) {
      own.add(st.name.text);
    } else if (ts.isModuleDeclaration(st) && ts.isIdentifier(st.name)) {
      own.add(st.name.text);
    } else if (ts.isImportDeclaration(st) && st.importClause) {
      const c = st.importClause;
      if (c.name) own.add(c.name.text);
      if (c.namedBindings) {
        if (ts.isNamespaceImport(c.namedBindings)) own.add(c.namedBindings.name.text);
        else for (const el of c.namedBindings.elements) own.add(el.name.text);
      }
    } else if (ts.isImportEqualsDeclaration(st)) {
      own.add(st.name.text);
    } else if (ts.isExportDeclaration(st) && st.exportClause && ts.isNamedExports(st.exportClause) && !st.moduleSpecifier) {
      for (const el of st.exportClause.elements) exported.add(el.name.text);
    }
    if (isExported) for (const n of own) if (!before.has(n)) exported.add(n);
  }
  return { own, exported };
}

/** One `import` line per binding of the cell's import declarations, keyed by local name. */
export function importEntries(sf: ts.SourceFile): Map<string, string> {
  const out = new Map<string, string>();
  for (const st of sf.statements) {
    if (!ts.isImportDeclaration(st) || !st.importClause || !ts.isStringLiteral(st.moduleSpecifier)) continue;
    const from = JSON.stringify(st.moduleSpecifier.text);
    const c = st.importClause;
    const typeOnly = c.isTypeOnly ? "type " : "";
    if (c.name) out.set(c.name.text, `import ${typeOnly}${c.name.text} from ${from};`);
    if (!c.namedBindings) continue;
    if (ts.isNamespaceImport(c.namedBindings)) {
      const n = c.namedBindings.name.text;
      out.set(n, `import ${typeOnly}* as ${n} from ${from};`);
    } else {
      for (const el of c.namedBindings.elements) {
        const imported = (el.propertyName ?? el.name).getText(sf);
        const t = typeOnly || (el.isTypeOnly ? "type " : "");
        out.set(el.name.text, `import ${t}{ ${imported} as ${el.name.text} } from ${from};`);
      }
    }
  }
  return out;
}

/**
 * Splits the cell's emitted `.d.ts` into one declaration text per top-level name
 * (only names in `own`; imports are taken from the source by importEntries).
 * Overloads and merged declarations of one name stay together.
 */
export function declarationEntries(dts: string, own: ReadonlySet<string>): Map<string, string> {
  const sf = ts.createSourceFile("cell.d.ts", dts, ts.ScriptTarget.Latest, true);
  const out = new Map<string, string[]>();
  const add = (name: string, text: string) => {
    if (!own.has(name)) return;
    const list = out.get(name) ?? [];
    list.push(text.replace(/^export\s+(default\s+)?/, ""));
    out.set(name, list);
  };
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) || ts.isExportDeclaration(st) || ts.isExportAssignment(st)) continue;
    if (ts.isVariableStatement(st)) {
      const flags = st.declarationList.flags;
      const kind = flags & ts.NodeFlags.Const ? "const" : flags & ts.NodeFlags.Let ? "let" : "var";
      for (const d of st.declarationList.declarations) {
        if (ts.isIdentifier(d.name)) add(d.name.text, `declare ${kind} ${d.getText(sf)};`);
      }
      continue;
    }
    const named = st as ts.Statement & { name?: ts.Node };
    if (named.name && ts.isIdentifier(named.name)) add(named.name.text, ensureDeclare(st.getText(sf), st));
  }
  return new Map([...out].map(([k, v]) => [k, v.join("\n")]));
}

/** Interfaces and type aliases need no `declare`; everything else in a header does. */
function ensureDeclare(text: string, st: ts.Statement): string {
  const t = text.replace(/^export\s+(default\s+)?/, "");
  if (ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st) || /^declare\s/.test(t)) return t;
  return `declare ${t}`;
}
