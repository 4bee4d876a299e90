/**
 * Attention figures from post-softmax patterns ([B, heads, T, S], as cached
 * at `layers.{i}.self_attn.pattern` or returned as `attentions`):
 *  - `attentionHeatmap`: one head, query tokens down, key tokens across;
 *  - `attentionGrid`: every layer × head as small multiples with hover and
 *    click details (one shared colour scale).
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
function headMatrix(pattern: Tensor, b: number, h: number, qPlan: AxisPlan, kPlan: AxisPlan): number[][] {
  const [B, H, T, S] = pattern.shape as [number, number, number, number];
  if (b < 0 || b >= B) throw new InputError(`batch index ${b} out of range 0..${B - 1}`);
  if (h < 0 || h >= H) throw new InputError(`head ${h} out of range 0..${H - 1}`);
  const data = pattern.toFloat32();
  const off = (b * H + h) * T * S;
  return reduceMatrix(data.subarray(off, off + T * S), S, qPlan, kPlan);
}

/** Plans for the query and key axes of a [T, S] pattern; notes deduplicated. */
function plans(T: number, S: number, maxTokens: number, mode: "aggregate" | "window"): { q: AxisPlan; k: AxisPlan; notes: string[] } {
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
function rowPlan(q: AxisPlan, shift: number): AxisPlan {
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

export interface AttentionGridOptions {
  /** Display strings of the key tokens, [S]. */
  tokens: readonly string[];
  batch?: number;
  /** Beyond this many tokens per axis, each small multiple is reduced (default 128). */
  maxTokensPerCell?: number;
  longInput?: "aggregate" | "window";
  /** Pixel size of each small multiple (default 110). */
  cellSize?: number;
  /** Per-head numbers shown on hover/click, e.g. detector scores: name → [layer][head]. */
  headInfo?: Record<string, readonly (readonly number[])[]>;
  title?: string;
  zmax?: number;
}

/**
 * A grid of every layer (rows) × head (columns), one small heatmap each,
 * sharing one colour axis. Hover shows layer/head/query/key/weight; clicking
 * a cell writes the same plus `headInfo` under the figure.
 */
export function attentionGrid(patterns: readonly Tensor[], options: AttentionGridOptions): Figure {
  if (!patterns.length) throw new InputError("attentionGrid: no layers given");
  const dims = patterns.map((p, i) => patternDims(p, options.tokens, `attentionGrid layer ${i}`));
  const [, H, T, S] = dims[0]!;
  dims.forEach((d, i) => {
    if (d[1] !== H || d[2] !== T || d[3] !== S) throw new InputError(`attentionGrid: layer ${i} pattern [${d.join(", ")}] differs from layer 0's [${dims[0]!.join(", ")}]`);
  });
  const L = patterns.length;
  const b = options.batch ?? 0;
  const p = plans(T, S, options.maxTokensPerCell ?? 128, options.longInput ?? "aggregate");
  const shown = options.tokens.map((t) => escapeForPlotlyText(displayToken(t)));
  const x = cellLabels(p.k, shown);
  const y = cellLabels(p.q, shown);
  const rows = rowPlan(p.q, S - T);
  const cell = options.cellSize ?? 110;
  const gap = 0.012;
  const data: PlotlyTrace[] = [];
  const layout: PlotlyLayout = {
    title: titleWithNotes(options.title ?? `Attention patterns: ${L} layers × ${H} heads`, p.notes),
    width: H * cell + 140,
    height: L * cell + 120,
    margin: { l: 60, r: 80, t: 80, b: 20 },
    coloraxis: { colorscale: "Blues", cmin: 0, cmax: options.zmax ?? 1, colorbar: { title: { text: "weight" }, thickness: 12 } },
    showlegend: false,
    annotations: [] as unknown[],
    hovermode: "closest",
  };
  const annotations = layout["annotations"] as unknown[];
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      const n = l * H + h + 1;
      const ax = n === 1 ? "" : String(n);
      const info = Object.entries(options.headInfo ?? {})
        .map(([k, m]) => `${k} ${fmt(m[l]?.[h])}`)
        .join("<br>");
      data.push({
        type: "heatmap",
        z: headMatrix(patterns[l]!, b, h, rows, p.k),
        x,
        y,
        coloraxis: "coloraxis",
        xaxis: `x${ax}`,
        yaxis: `y${ax}`,
        meta: { layer: l, head: h, info },
        hovertemplate: `L${l} H${h}<br>query %{y}<br>key %{x}<br>weight %{z:.4f}${info ? `<br>${info}` : ""}<extra></extra>`,
      });
      const x0 = h / H + gap / 2;
      const y1 = 1 - l / L - gap / 2;
      layout[`xaxis${ax}`] = { domain: [x0, x0 + 1 / H - gap], showticklabels: false, ticks: "", showgrid: false, zeroline: false, type: "category", anchor: `y${ax}` };
      layout[`yaxis${ax}`] = { domain: [y1 - 1 / L + gap, y1], showticklabels: false, ticks: "", showgrid: false, zeroline: false, type: "category", autorange: "reversed", anchor: `x${ax}` };
      if (l === 0) annotations.push({ text: `H${h}`, x: (h + 0.5) / H, y: 1, xref: "paper", yref: "paper", yanchor: "bottom", showarrow: false });
    }
    annotations.push({ text: `L${l}`, x: 0, y: 1 - (l + 0.5) / L, xref: "paper", yref: "paper", xanchor: "right", showarrow: false });
  }
  // Click → details under the figure (plain JS run by htmlWithPlotly with `gd` and `info`).
  const script = `gd.on("plotly_click", function(ev){
  var pt = ev.points && ev.points[0]; if (!pt) return;
  var m = pt.data.meta || {};
  var details = (m.info || "").split("<br>").join("\\n");
  info.textContent = "layer " + m.layer + " head " + m.head + ": query " + pt.y + " -> key " + pt.x + " weight " + Number(pt.z).toFixed(4) + (details ? "\\n" + details : "");
});`;
  return new Figure({ data, layout, notes: p.notes, script });
}

function fmt(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? "–" : v.toFixed(3);
}
