/**
 * Turns a thrown value into a Jupyter `error` (ename, evalue, traceback) whose
 * frames point at the cell's own lines, IPython style ("Cell In[3], line 2"
 * with the source around it). A cell runs as compiled JavaScript, two source
 * maps away from what the user typed (cell.ts → ESM → CommonJS): each stack
 * frame is walked back through both. Frames inside the library keep Node's
 * source-mapped file:line (dist/ ships maps); the kernel's own frames and
 * Node internals are dropped.
 */
import { SourceMap } from "node:module";
import * as path from "node:path";
import { inspect } from "node:util";
import type { CellDiagnostic } from "../compiler/cell-compiler.js";

const RED = "\x1b[0;31m";
const GREEN = "\x1b[0;32m";
const CYAN = "\x1b[0;36m";
const BOLD = "\x1b[1m";
const RESET = "\x1b[0m";

interface CellRecord {
  label: string;
  source: string[];
  cjs: SourceMap;
  esm: SourceMap;
  /** Lines the executor puts before the compiled code (the function wrapper). */
  lineOffset: number;
  /** Lines of compiled code; frames past them are the wrapper's own call. */
  jsLines: number;
}

export interface ErrorContent {
  ename: string;
  evalue: string;
  traceback: string[];
}

export class Tracebacks {
  private readonly cells = new Map<string, CellRecord>();

  constructor(private readonly hiddenDirs: string[]) {}

  /** Remembers how to map frames of the script named `filename` back to the cell. */
  register(filename: string, label: string, source: string, js: string, maps: { cjs: string; esm: string }, lineOffset: number): void {
    this.cells.set(filename, {
      label,
      source: source.split("\n"),
      cjs: new SourceMap(JSON.parse(maps.cjs)),
      esm: new SourceMap(JSON.parse(maps.esm)),
      lineOffset,
      jsLines: js.split("\n").length,
    });
  }

  /** Maps a 1-based line/column in the compiled script to a 0-based cell line/column. */
  private toCell(rec: CellRecord, line: number, column: number): { line: number; column: number } | undefined {
    if (line - 1 - rec.lineOffset < 0 || line - 1 - rec.lineOffset >= rec.jsLines) return undefined;
    const a = rec.cjs.findEntry(line - 1 - rec.lineOffset, column - 1) as { originalLine?: number; originalColumn?: number };
    if (a.originalLine === undefined || a.originalColumn === undefined) return undefined;
    const b = rec.esm.findEntry(a.originalLine, a.originalColumn) as { originalLine?: number; originalColumn?: number };
    if (b.originalLine === undefined || b.originalColumn === undefined) return undefined;
    if (b.originalLine >= rec.source.length) return undefined; // the appended export/header lines
    return { line: b.originalLine, column: b.originalColumn };
  }

  format(err: unknown): ErrorContent {
    if (!(err instanceof Error)) {
      const evalue = inspect(err);
      return { ename: "Uncaught", evalue, traceback: [`${RED}Uncaught${RESET} ${evalue}`] };
    }
    const ename = err.name || err.constructor?.name || "Error";
    const evalue = err.message;
    const lines = [`${RED}${BOLD}${ename}${RESET}: ${evalue}`];
    let previous = "";
    for (const frame of parseStack(err.stack ?? "")) {
      const rec = this.cells.get(frame.file);
      if (rec) {
        const at = this.toCell(rec, frame.line, frame.column);
        if (!at) continue;
        const fn = frame.fn && !/^(async )?(Object\.)?<anonymous>$/.test(frame.fn) ? `, in ${frame.fn}` : "";
        const text = `${GREEN}${rec.label}${RESET}, line ${at.line + 1}${fn}\n${excerpt(rec.source, at.line)}`;
        if (text !== previous) lines.push(text);
        previous = text;
      } else if (!this.hidden(frame.file)) {
        lines.push(`    at ${frame.fn ? `${frame.fn} ` : ""}${CYAN}${frame.file}:${frame.line}:${frame.column}${RESET}`);
      }
    }
    if (err.cause !== undefined) {
      const cause = this.format(err.cause);
      lines.push("", "Caused by:", ...cause.traceback);
    }
    return { ename, evalue, traceback: lines };
  }

  private hidden(file: string): boolean {
    if (file.startsWith("node:") || !path.isAbsolute(file.replace(/^file:\/\//, ""))) return true;
    const f = file.replace(/^file:\/\//, "");
    return this.hiddenDirs.some((d) => f.startsWith(d));
  }
}

/** The type checker's complaints about a cell, as an `error` content. */
export function compileError(label: string, source: string, diags: CellDiagnostic[]): ErrorContent {
  const src = source.split("\n");
  const first = diags[0]!;
  const lines = [`${RED}${BOLD}CompileError${RESET}: ${diags.length} error${diags.length > 1 ? "s" : ""} in ${label}`];
  for (const d of diags) {
    if (d.line < 0) {
      lines.push(`${RED}error TS${d.code}${RESET}: ${d.message}`);
      continue;
    }
    lines.push(`${GREEN}${label}${RESET}, line ${d.line + 1}, column ${d.column + 1}: ${RED}error TS${d.code}${RESET}: ${d.message}\n${excerpt(src, d.line, d.column)}`);
  }
  const where = first.line >= 0 ? ` (line ${first.line + 1})` : "";
  return { ename: "CompileError", evalue: `${first.message}${where}`, traceback: lines };
}

/** Two lines of context either side, an arrow on the line, a caret under the column if given. */
function excerpt(src: string[], line: number, column?: number): string {
  const out: string[] = [];
  const width = String(Math.min(src.length, line + 3)).length;
  for (let i = Math.max(0, line - 2); i <= Math.min(src.length - 1, line + 2); i++) {
    const n = String(i + 1).padStart(width);
    out.push(i === line ? `${GREEN}----> ${n}${RESET} ${src[i]}` : `      ${n} ${src[i]}`);
    if (i === line && column !== undefined) out.push(" ".repeat(7 + width + column) + `${RED}^${RESET}`);
  }
  return out.join("\n");
}

interface Frame {
  fn?: string;
  file: string;
  line: number;
  column: number;
}

/** V8 stack lines: "    at fn (file:line:col)" or "    at file:line:col". */
export function parseStack(stack: string): Frame[] {
  const frames: Frame[] = [];
  for (const raw of stack.split("\n")) {
    const m = /^\s+at (?:(.*?) \()?(.+?):(\d+):(\d+)\)?$/.exec(raw);
    if (!m) continue;
    frames.push({ fn: m[1], file: m[2]!, line: Number(m[3]), column: Number(m[4]) });
  }
  return frames;
}
