/**
 * The TypeScript "after" transformer that turns one type-checked cell (ESNext
 * output) into code the executor can run as the body of an async function:
 *
 * - names declared by earlier cells (the appended header) are read and written
 *   through the shared scope object: `m` → `exports.m` (as tslab does);
 * - `import` declarations move to the top (they are hoisted in ES modules, and
 *   the header's imports sit after the cell's code);
 * - `import(x)` becomes `__llts.import(x)`, the kernel's ESM-capable loader
 *   (a CommonJS `require` cannot load ESM-only packages);
 * - `await x` becomes `await __llts.checkpoint(x)`, which throws once the cell
 *   was interrupted (so a loop of awaits stops instead of running on);
 * - the value of a final expression statement is kept: `expr` → `__llts.last = (expr)`.
 */
// `require`, not an ESM import: node scans a CommonJS module imported from ESM for its export
// names, and on typescript.js (9 MB) that scan costs ~0.7 s of kernel start-up.
import ts = require("typescript");

export const KERNEL_CONTEXT = "__llts";

export interface TransformResult {
  /** Static import specifiers left after TypeScript elided type-only imports. */
  imports: string[];
  /** True when the cell ends with an expression whose value is its result. */
  hasLastExpression: boolean;
}

export function cellTransformer(
  checker: ts.TypeChecker,
  cellFile: ts.SourceFile,
  headerStart: number,
  result: TransformResult,
): ts.TransformerFactory<ts.SourceFile> {
  /** Does this identifier resolve to a value declared by an earlier cell? */
  const fromHeader = (sym: ts.Symbol | undefined): boolean => {
    if (!sym) return false;
    for (const d of sym.declarations ?? []) {
      if (d.getSourceFile() !== cellFile || d.getStart(cellFile) < headerStart) continue;
      // Imports in the header are re-imported by this cell; only declarations go through `exports`.
      if (ts.isImportSpecifier(d) || ts.isImportClause(d) || ts.isNamespaceImport(d)) return false;
      return true;
    }
    return false;
  };

  return (context) => {
    const f = context.factory;
    const scoped = (name: string) => f.createPropertyAccessExpression(f.createIdentifier("exports"), name);

    const visit = (node: ts.Node): ts.Node => {
      if (ts.isShorthandPropertyAssignment(node)) {
        const orig = ts.getOriginalNode(node) as ts.ShorthandPropertyAssignment;
        if (orig.parent && fromHeader(checker.getShorthandAssignmentValueSymbol(orig))) {
          return f.createPropertyAssignment(node.name.text, scoped(node.name.text));
        }
      }
      if (ts.isIdentifier(node)) {
        const orig = ts.getOriginalNode(node);
        const parent = orig.parent;
        if (!parent) return node;
        if ((ts.isPropertyAccessExpression(parent) && parent.name === orig) || ts.isPropertyAssignment(parent) && parent.name === orig) {
          return node;
        }
        if (fromHeader(checker.getSymbolAtLocation(orig))) return scoped(node.text);
        return node;
      }
      if (ts.isAwaitExpression(node)) {
        const inner = ts.visitNode(node.expression, visit) as ts.Expression;
        const check = f.createPropertyAccessExpression(f.createIdentifier(KERNEL_CONTEXT), "checkpoint");
        return f.updateAwaitExpression(node, f.createCallExpression(check, undefined, [inner]));
      }
      if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const args = node.arguments.map((a) => ts.visitNode(a, visit) as ts.Expression);
        return f.createCallExpression(
          f.createPropertyAccessExpression(f.createIdentifier(KERNEL_CONTEXT), "import"),
          undefined,
          args,
        );
      }
      return ts.visitEachChild(node, visit, context);
    };

    return (sf) => {
      const imports: ts.Statement[] = [];
      const body: ts.Statement[] = [];
      for (const st of sf.statements) {
        if (ts.isImportDeclaration(st)) {
          imports.push(st);
          if (ts.isStringLiteral(st.moduleSpecifier)) result.imports.push(st.moduleSpecifier.text);
        } else {
          body.push(ts.visitNode(st, visit) as ts.Statement);
        }
      }
      // The last statement that is not an `export {…}` decides the cell's result.
      for (let i = body.length - 1; i >= 0; i--) {
        const st = body[i]!;
        // Erased declarations (the header's `declare`s, interfaces) leave NotEmittedStatements behind.
        if (ts.isExportDeclaration(st) || st.kind === ts.SyntaxKind.NotEmittedStatement) continue;
        if (ts.isExpressionStatement(st)) {
          const assign = f.createExpressionStatement(
            f.createAssignment(
              f.createPropertyAccessExpression(f.createIdentifier(KERNEL_CONTEXT), "last"),
              f.createParenthesizedExpression(st.expression),
            ),
          );
          ts.setTextRange(assign, st);
          ts.setOriginalNode(assign, st);
          body[i] = assign;
          result.hasLastExpression = true;
        }
        break;
      }
      return f.updateSourceFile(sf, [...imports, ...body]);
    };
  };
}
