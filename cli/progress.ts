/**
 * The CLI's one progress renderer: turns an `onProgress(done, total, info?)`
 * callback into lines on stderr (stdout carries only results).
 *   - on a terminal, a bar redrawn in place (at most ~10 times a second):
 *       loading [############------------------]  40% 12.00/30.00 MiB · 85.3 MiB/s · 0:00 left
 *   - otherwise (pipes, CI logs), one plain line per 10% so logs stay readable:
 *       loading:  40% 12.00/30.00 MiB · 85.3 MiB/s · 0:00 left
 * A total ≤ 0 means "not known" (training bounded by time only): no bar, and
 * off a terminal a line every 10 s. Reaching `total` ends the line; a new
 * total, or `done` going back, starts a new run in the same renderer.
 */
import { progressStats, progressText, type OnProgress } from "../lib/progress.js";

/** What the renderer writes to (process.stderr, or a test's collector). */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

const BAR_WIDTH = 30;
const REDRAW_MS = 100;
const UNKNOWN_TOTAL_LINE_MS = 10_000;

export function cliProgress(label: string, stream: ProgressStream = process.stderr, now: () => number = Date.now): OnProgress {
  const tty = Boolean(stream.isTTY);
  let start = now(), lastDraw = -Infinity, lastDecile = -1, lastDone = -1, lastTotal: number | undefined;
  return (done, total, info) => {
    const t = now();
    if (lastTotal === undefined ? done === 0 : done < lastDone || total !== lastTotal) {
      // A run starting at 0 (its clock starts here, not when the renderer was made), or a new run through the same renderer.
      start = t;
      lastDraw = -Infinity;
      lastDecile = -1;
    }
    lastDone = done;
    lastTotal = total;
    const known = total > 0;
    const finished = known && done >= total;
    const { fraction } = progressStats(done, total, t - start);
    const pct = known ? `${Math.floor(fraction * 100)}%`.padStart(4) : "";
    const words = progressText(done, total, t - start, info);
    if (tty) {
      if (!finished && t - lastDraw < REDRAW_MS) return;
      lastDraw = t;
      // The bar gives way to the words on a narrow terminal (down to 10 cells), then the line is cut.
      const cols = stream.columns ?? 100;
      const width = Math.max(10, Math.min(BAR_WIDTH, cols - 1 - label.length - words.length - 9));
      const filled = Math.round(fraction * width);
      const bar = known ? ` [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${pct}` : "";
      const line = `${label}${bar} ${words}`;
      stream.write(`\r${line.slice(0, cols - 1)}\x1b[K${finished ? "\n" : ""}`);
    } else if (known) {
      const decile = Math.floor(fraction * 10);
      if (decile <= lastDecile) return;
      lastDecile = decile;
      stream.write(`${label}: ${pct} ${words}\n`);
    } else if (t - lastDraw >= UNKNOWN_TOTAL_LINE_MS) {
      lastDraw = t;
      stream.write(`${label}: ${words}\n`);
    }
  };
}

/**
 * For quick steps whose progress is noise in a log (loading a model): the
 * renderer on a terminal, nothing otherwise.
 */
export function terminalProgress(label: string, stream: ProgressStream = process.stderr): OnProgress | undefined {
  return stream.isTTY ? cliProgress(label, stream) : undefined;
}
