/**
 * Input/output history, persisted per kernel session (like IPython's history
 * database). Each kernel process is one session, numbered 1, 2, 3…: its cells
 * are appended to `<dir>/<session>.jsonl`, one JSON line per executed cell
 * `{"line": n, "input": "...", "output": "..." | null}`. A session number is
 * claimed by creating its file exclusively, so two kernels never share one.
 *
 * Serves history_request: `tail` (last n), `range` (session, start, stop;
 * session ≤ 0 counts back from the current one), `search`, with
 * `output: true` returning [input, output] pairs. Search answers as ipykernel
 * does (IPython's HistoryAccessor.search): the pattern is SQLite GLOB
 * (glob.ts), `n` keeps the last n matches, `unique` keeps one row per
 * distinct input (its latest), rows oldest first; no pattern matches nothing.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { sqliteGlob } from "./glob.js";

export interface HistoryEntry {
  session: number;
  line: number;
  input: string;
  output: string | null;
}

export type HistoryRow = [number, number, string] | [number, number, [string, string | null]];

export interface HistoryQuery {
  hist_access_type?: unknown;
  output?: unknown;
  n?: unknown;
  session?: unknown;
  start?: unknown;
  stop?: unknown;
  pattern?: unknown;
  unique?: unknown;
}

/** Entries per session file we accept; the files are ours, but a runaway file must not exhaust memory. */
const MAX_LINE_BYTES = 1 << 20;

export function defaultHistoryDir(): string {
  if (process.env.LLAMA_TS_HISTORY_DIR) return process.env.LLAMA_TS_HISTORY_DIR;
  const data = process.env.XDG_DATA_HOME || path.join(os.homedir(), ".local", "share");
  return path.join(data, "llama-ts", "history");
}

export class History {
  readonly session: number;
  private readonly file: string;
  private readonly current: HistoryEntry[] = [];

  constructor(private readonly dir: string = defaultHistoryDir()) {
    fs.mkdirSync(dir, { recursive: true });
    let n = Math.max(0, ...this.sessions()) + 1;
    for (;;) {
      try {
        fs.closeSync(fs.openSync(path.join(dir, `${n}.jsonl`), "wx"));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        n++;
      }
    }
    this.session = n;
    this.file = path.join(dir, `${n}.jsonl`);
  }

  /** Records one executed cell (line = its execution_count). */
  append(line: number, input: string, output: string | null): void {
    const entry = { session: this.session, line, input, output };
    this.current.push(entry);
    const text = JSON.stringify({ line, input, output });
    if (text.length < MAX_LINE_BYTES) fs.appendFileSync(this.file, text + "\n");
  }

  query(q: HistoryQuery): HistoryRow[] {
    const withOutput = q.output === true;
    const n = typeof q.n === "number" && q.n >= 0 ? Math.floor(q.n) : undefined;
    let rows: HistoryEntry[];
    switch (q.hist_access_type) {
      case "tail":
        rows = this.last(n ?? 10, () => true);
        break;
      case "search": {
        // ipykernel passes a missing pattern on as None: `GLOB NULL` matches no row.
        const pattern = typeof q.pattern === "string" ? q.pattern : undefined;
        const seen = new Set<string>();
        const unique = q.unique === true;
        // Walk newest first so `unique` keeps the latest occurrence of each input.
        rows = this.last(n ?? Infinity, (e) => {
          if (pattern === undefined || !sqliteGlob(pattern, e.input)) return false;
          if (unique) {
            if (seen.has(e.input)) return false;
            seen.add(e.input);
          }
          return true;
        });
        break;
      }
      case "range":
      default: {
        let session = typeof q.session === "number" ? Math.floor(q.session) : 0;
        if (session <= 0) session = this.session + session;
        const start = typeof q.start === "number" ? q.start : 0;
        const stop = typeof q.stop === "number" && q.stop > 0 ? q.stop : Infinity;
        rows = this.entries(session).filter((e) => e.line >= start && e.line < stop);
      }
    }
    return rows.map((e) => (withOutput ? [e.session, e.line, [e.input, e.output]] : [e.session, e.line, e.input]));
  }

  /** The last `n` entries (oldest first) that `keep` accepts, scanning sessions newest first. */
  private last(n: number, keep: (e: HistoryEntry) => boolean): HistoryEntry[] {
    const out: HistoryEntry[] = [];
    const sessions = this.sessions().sort((a, b) => b - a);
    for (const s of sessions) {
      const entries = this.entries(s);
      for (let i = entries.length - 1; i >= 0 && out.length < n; i--) if (keep(entries[i]!)) out.push(entries[i]!);
      if (out.length >= n) break;
    }
    return out.reverse();
  }

  private entries(session: number): HistoryEntry[] {
    if (session === this.session) return this.current;
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir, `${session}.jsonl`), "utf8");
    } catch {
      return [];
    }
    const out: HistoryEntry[] = [];
    for (const line of text.split("\n")) {
      if (!line || line.length > MAX_LINE_BYTES) continue;
      try {
        const e = JSON.parse(line) as { line?: unknown; input?: unknown; output?: unknown };
        if (typeof e.line === "number" && typeof e.input === "string") {
          out.push({ session, line: e.line, input: e.input, output: typeof e.output === "string" ? e.output : null });
        }
      } catch {
        /* a torn last line (crash mid-write) is skipped */
      }
    }
    return out;
  }

  private sessions(): number[] {
    return fs
      .readdirSync(this.dir)
      .map((f) => /^(\d+)\.jsonl$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
  }
}
