/**
 * Keeping figures usable on long inputs. Past a few hundred tokens a T×T
 * heatmap has more cells than pixels and token labels overlap, so figures
 * either aggregate (mean-pool k×k blocks of an attention matrix) or show a
 * window of positions — and always say which in the figure.
 */
import { InputError } from "../errors.js";

/** Beyond this many tokens, attention figures aggregate or window (the "~256 tokens"). */
export const MAX_FULL_TOKENS = 256;

/** How a long axis is reduced. */
export interface AxisPlan {
  /** Number of cells along the axis after reduction. */
  cells: number;
  /** cell i covers positions [starts[i], ends[i]) of the original axis. */
  starts: number[];
  ends: number[];
  /** Human-readable description for the figure ("" when nothing was reduced). */
  note: string;
}

/** Identity plan over positions [from, to). */
function plainPlan(from: number, to: number, note: string): AxisPlan {
  const starts = Array.from({ length: to - from }, (_, i) => from + i);
  return { cells: to - from, starts, ends: starts.map((s) => s + 1), note };
}

/**
 * Plan for an axis of `length` tokens shown in at most `maxCells` cells:
 * "aggregate" pools consecutive blocks of ceil(length / maxCells) tokens;
 * "window" keeps `maxCells` tokens starting at `windowStart` (default: the last ones).
 */
export function planAxis(length: number, maxCells: number, mode: "aggregate" | "window" = "aggregate", windowStart?: number): AxisPlan {
  if (!Number.isInteger(length) || length < 0) throw new InputError(`planAxis: length must be a non-negative integer, got ${length}`);
  if (!Number.isInteger(maxCells) || maxCells < 1) throw new InputError(`planAxis: maxCells must be a positive integer, got ${maxCells}`);
  if (length <= maxCells) return plainPlan(0, length, "");
  if (mode === "window") {
    const start = windowStart === undefined ? length - maxCells : Math.max(0, Math.min(windowStart, length - maxCells));
    return plainPlan(start, start + maxCells, `showing tokens ${start}–${start + maxCells - 1} of ${length} (window)`);
  }
  const block = Math.ceil(length / maxCells);
  const cells = Math.ceil(length / block);
  const starts = Array.from({ length: cells }, (_, i) => i * block);
  const ends = starts.map((s) => Math.min(length, s + block));
  return { cells, starts, ends, note: `${length} tokens aggregated: each cell is the mean over a block of ${block} tokens` };
}

/**
 * Reduces a row-major [rows, cols] matrix with one plan per axis: each output
 * cell is the mean of its block (for attention: the average weight between
 * the two token blocks, so rows of the result still sum to ~1 over cells
 * scaled by block width). Returns a [rowPlan.cells][colPlan.cells] array.
 */
export function reduceMatrix(m: ArrayLike<number>, cols: number, rowPlan: AxisPlan, colPlan: AxisPlan, digits = 4): number[][] {
  const out: number[][] = [];
  const f = 10 ** digits;
  for (let r = 0; r < rowPlan.cells; r++) {
    const row: number[] = [];
    for (let c = 0; c < colPlan.cells; c++) {
      let s = 0;
      let n = 0;
      for (let i = rowPlan.starts[r]!; i < rowPlan.ends[r]!; i++) {
        for (let j = colPlan.starts[c]!; j < colPlan.ends[c]!; j++) {
          s += m[i * cols + j]!;
          n++;
        }
      }
      // Rounding keeps the JSON small (4 digits are below what a colour scale shows).
      row.push(Math.round((s / n) * f) / f);
    }
    out.push(row);
  }
  return out;
}

/** Labels for a plan's cells: "12 ▁the" for single tokens, "12–19" for blocks. Unique by construction. */
export function cellLabels(plan: AxisPlan, tokens: readonly string[]): string[] {
  return plan.starts.map((s, i) => (plan.ends[i]! - s === 1 ? `${s} ${tokens[s] ?? ""}` : `${s}–${plan.ends[i]! - 1}`));
}

/** A token as a short readable label: control characters shown as escapes, long tokens cut. */
export function displayToken(tok: string, maxLen = 16): string {
  const shown = tok.replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t");
  return shown.length > maxLen ? `${shown.slice(0, maxLen - 1)}…` : shown;
}
