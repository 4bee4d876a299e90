/**
 * is_complete_request: should the frontend run this code, wait for more
 * lines, or report it as unparseable? TypeScript's parser decides: no syntax
 * errors → complete; only errors at the very end of the text ("'}' expected",
 * an open template or comment) → incomplete, with the indent for the next
 * line; any error before the end → invalid.
 */
// `require`, not an ESM import: node scans a CommonJS module imported from ESM for its export
// names, and on typescript.js (9 MB) that scan costs ~0.7 s of kernel start-up.
import ts = require("typescript");

export type IsCompleteReply = { status: "complete" } | { status: "incomplete"; indent: string } | { status: "invalid" };

export function isComplete(code: string): IsCompleteReply {
  const out = ts.transpileModule(code, {
    reportDiagnostics: true,
    fileName: "cell.ts",
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, noEmit: true },
  });
  const diags = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error && d.start !== undefined);
  if (diags.length === 0) return { status: "complete" };
  const end = code.trimEnd().length;
  const atEnd = (d: ts.Diagnostic) => {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (/^Unterminated (string|regular expression) literal/.test(msg)) return false; // JS strings cannot span lines
    return d.start! >= end || /^Unterminated template literal|^'\*\/' expected/.test(msg);
  };
  if (!diags.every(atEnd)) return { status: "invalid" };
  // A blank line after the text asks to run it as it is (the frontend then shows the error).
  if (/\n[ \t]*\n[ \t]*$/.test(code)) return { status: "complete" };
  return { status: "incomplete", indent: nextIndent(code) };
}

/** Keep the last line's indent; add two spaces after an opening bracket. */
function nextIndent(code: string): string {
  const last = /[^\n]*$/.exec(code)![0];
  const current = /^\s*/.exec(last)![0];
  return /[{([]\s*$/.test(last) ? current + "  " : current;
}
