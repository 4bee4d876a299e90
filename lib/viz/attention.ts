/**
 * Attention figures from post-softmax patterns ([B, heads, T, S], as cached
 * at `layers.{i}.self_attn.pattern` or returned as `attentions`):
 *  - `attentionHeatmap`: one head, query tokens down, key tokens across;
 *  - `attentionGrid` (attention-grid.ts): every layer × head as small multiples.
 * Long inputs are aggregated (block means) or windowed, and the title says so.
 */
import { InputError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { Figure, escapeForPlotlyText, titleWithNotes, type PlotlyTrace, type PlotlyLayout } from "./figure.js";
import { MAX_FULL_TOKENS, cellLabels, displayToken, planAxis, reduceMatrix, type AxisPlan } from "./long-input.js";

export interface AttentionHeatmapOptions {
  layer?: number;
  head: number;
  /** Display strings of the key tokens, [S] (queries are the last T of them). */
  tokens: readonly string[];
  batch?: number;
  /** Beyond this many tokens per axis, reduce (default 256). */
  maxTokens?: number;
  /** "aggregate" (block means, default) or "window" (the last maxTokens positions). */
  longInput?: "aggregate" | "window";
  title?: string;
  /** Colour scale maximum (default 1). */
  zmax?: number;
}

/** Checks a pattern tensor and returns [B, heads, T, S]. */
export function patternDims(pattern: Tensor, tokens: readonly string[], what: string): [number, number, number, number] {
  if (pattern.rank !== 4) throw new InputError(`${what}: pattern must be [B, heads, T, S], got [${pattern.shape.join(", ")}]`);
  const [B, H, T, S] = pattern.shape as [number, number, number, number];
  if (T > S) throw new InputError(`${what}: pattern has more queries (${T}) than keys (${S})`);
  if (tokens.length !== S) throw new InputError(`${what}: ${tokens.length} token labels for ${S} key positions`);
  return [B, H, T, S];
}

/** One head's [T, S] weights reduced by the plans (queries are key positions S-T..S-1). */
export function headMatrix(pattern: Tensor, b: number, h: number, qPlan: AxisPlan, kPlan: AxisPlan): number[][] {
  const [B, H, T, S] = pattern.shape as [number, number, number, number];
  if (b < 0 || b >= B) throw new InputError(`batch index ${b} out of range 0..${B - 1}`);
  if (h < 0 || h >= H) throw new InputError(`head ${h} out of range 0..${H - 1}`);
  const data = pattern.toFloat32();
  const off = (b * H + h) * T * S;
  return reduceMatrix(data.subarray(off, off + T * S), S, qPlan, kPlan);
}

/** Plans for the query and key axes of a [T, S] pattern; notes deduplicated. */
export function plans(T: number, S: number, maxTokens: number, mode: "aggregate" | "window"): { q: AxisPlan; k: AxisPlan; notes: string[] } {
  const k = planAxis(S, maxTokens, mode);
  let q = planAxis(T, maxTokens, mode);
  if (mode === "window" && T === S) q = k; // same window on both axes keeps the diagonal visible
  // Query labels index into keys: shift the query plan by the cached length S - T.
  const shift = S - T;
  const qShifted: AxisPlan = { ...q, starts: q.starts.map((s) => s + shift), ends: q.ends.map((e) => e + shift) };
  const notes = [...new Set([k.note, q.note].filter(Boolean))];
  return { q: qShifted, k, notes };
}

/** Unshifts a query plan so it indexes rows of the [T, S] slab. */
export function rowPlan(q: AxisPlan, shift: number): AxisPlan {
  return { ...q, starts: q.starts.map((s) => s - shift), ends: q.ends.map((e) => e - shift) };
}

/** Attention heatmap of one head with token labels on both axes. */
export function attentionHeatmap(pattern: Tensor, options: AttentionHeatmapOptions): Figure {
  const [, , T, S] = patternDims(pattern, options.tokens, "attentionHeatmap");
  const b = options.batch ?? 0;
  const maxTokens = options.maxTokens ?? MAX_FULL_TOKENS;
  const p = plans(T, S, maxTokens, options.longInput ?? "aggregate");
  const shown = options.tokens.map((t) => escapeForPlotlyText(displayToken(t)));
  const z = headMatrix(pattern, b, options.head, rowPlan(p.q, S - T), p.k);
  const x = cellLabels(p.k, shown);
  const y = cellLabels(p.q, shown);
  const name = `${options.layer !== undefined ? `layer ${options.layer} ` : ""}head ${options.head}`;
  const trace: PlotlyTrace = {
    type: "heatmap",
    z,
    x,
    y,
    zmin: 0,
    zmax: options.zmax ?? 1,
    colorscale: "Blues",
    colorbar: { title: { text: "weight" } },
    hovertemplate: "query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>",
    name,
  };
  const side = Math.min(900, 220 + 14 * Math.max(x.length, 16));
  const layout: PlotlyLayout = {
    title: titleWithNotes(options.title ?? `Attention, ${name}`, p.notes),
    xaxis: { title: { text: "key" }, type: "category", tickangle: -60, automargin: true },
    yaxis: { title: { text: "query" }, type: "category", autorange: "reversed", automargin: true },
    width: side + 120,
    height: side,
    margin: { t: 70 },
  };
  return new Figure({ data: [trace], layout, notes: p.notes });
}
