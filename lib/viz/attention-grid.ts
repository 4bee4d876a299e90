/**
 * The attention grid: every layer (rows) × head (columns) as small multiples.
 *
 * Drawn as ONE heatmap trace: the small multiples are tiles of a single big
 * matrix separated by empty (null) gap rows/columns. With 48 heads of
 * 128 tokens, one trace and one pair of axes render several times faster
 * than 48 subplots, each with its own axes. The category labels carry the
 * coordinates, so hovering a cell still reads "L2 q17 ▁the" → "H3 k5 ▁a";
 * clicking writes the head's details (and any `headInfo`) under the figure.
 */
import { InputError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { Figure, escapeForPlotlyText, titleWithNotes, type PlotlyLayout } from "./figure.js";
import { cellLabels, displayToken } from "./long-input.js";
import { headMatrix, patternDims, plans, rowPlan } from "./attention.js";

export interface AttentionGridOptions {
  /** Display strings of the key tokens, [S]. */
  tokens: readonly string[];
  batch?: number;
  /** Beyond this many tokens per axis, each small multiple is reduced (default 128). */
  maxTokensPerCell?: number;
  longInput?: "aggregate" | "window";
  /** Pixel size of each small multiple (default 110). */
  cellSize?: number;
  /** Per-head numbers shown on click, e.g. detector scores: name → [layer][head]. */
  headInfo?: Record<string, readonly (readonly number[])[]>;
  title?: string;
  zmax?: number;
}

/** Where each row/column of the big matrix comes from (-1 = a gap). */
export interface GridIndex {
  /** Per matrix row: layer and query-cell index, or -1 in gaps. */
  rowLayer: number[];
  rowCell: number[];
  /** Per matrix column: head and key-cell index, or -1 in gaps. */
  colHead: number[];
  colCell: number[];
}

/** Builds the layers × heads grid of attention patterns. */
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
  const keyLabels = cellLabels(p.k, shown);
  const queryLabels = cellLabels(p.q, shown);
  const rows = rowPlan(p.q, S - T);
  const nq = p.q.cells;
  const nk = p.k.cells;
  // A gap of ~1/16 of a tile between tiles (at least one cell).
  const gapQ = Math.max(1, Math.round(nq / 16));
  const gapK = Math.max(1, Math.round(nk / 16));

  const idx: GridIndex = { rowLayer: [], rowCell: [], colHead: [], colCell: [] };
  const y: string[] = [];
  const x: string[] = [];
  for (let l = 0; l < L; l++) {
    if (l > 0) for (let g = 0; g < gapQ; g++) { y.push(`gap L${l} ${g}`); idx.rowLayer.push(-1); idx.rowCell.push(-1); }
    for (let q = 0; q < nq; q++) { y.push(`L${l} q${queryLabels[q]}`); idx.rowLayer.push(l); idx.rowCell.push(q); }
  }
  for (let h = 0; h < H; h++) {
    if (h > 0) for (let g = 0; g < gapK; g++) { x.push(`gap H${h} ${g}`); idx.colHead.push(-1); idx.colCell.push(-1); }
    for (let k = 0; k < nk; k++) { x.push(`H${h} k${keyLabels[k]}`); idx.colHead.push(h); idx.colCell.push(k); }
  }
  // z [rows][cols]: tiles copied in, gaps null (drawn transparent, no hover).
  const tiles = patterns.map((pat) => Array.from({ length: H }, (_, h) => headMatrix(pat, b, h, rows, p.k)));
  const z: (number | null)[][] = idx.rowLayer.map((l, r) => {
    const q = idx.rowCell[r]!;
    return idx.colHead.map((h, c) => (l < 0 || h < 0 ? null : tiles[l]![h]![q]![idx.colCell[c]!]!));
  });

  const info: Record<string, string> = {};
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      const parts = Object.entries(options.headInfo ?? {}).map(([k, m]) => `${k} ${fmt(m[l]?.[h])}`);
      if (parts.length) info[`${l},${h}`] = parts.join("\n");
    }
  }
  const cell = options.cellSize ?? 110;
  const layout: PlotlyLayout = {
    title: titleWithNotes(options.title ?? `Attention patterns: ${L} layers × ${H} heads`, p.notes),
    width: H * cell + 140,
    height: L * cell + 120,
    margin: { l: 50, r: 80, t: 80, b: 20 },
    xaxis: { type: "category", showticklabels: false, ticks: "", showgrid: false, zeroline: false, side: "top" },
    yaxis: { type: "category", showticklabels: false, ticks: "", showgrid: false, zeroline: false, autorange: "reversed" },
    hovermode: "closest",
    annotations: [
      ...Array.from({ length: H }, (_, h) => ({ text: `H${h}`, x: (h + 0.5) / H, y: 1, xref: "paper", yref: "paper", yanchor: "bottom", showarrow: false })),
      ...Array.from({ length: L }, (_, l) => ({ text: `L${l}`, x: 0, y: 1 - (l + 0.5) / L, xref: "paper", yref: "paper", xanchor: "right", showarrow: false })),
    ],
  };
  const script = `var m = gd.data[0].meta;
gd.on("plotly_click", function(ev){
  var pt = ev.points && ev.points[0]; if (!pt || pt.z === null || pt.z === undefined) return;
  var r = pt.pointIndex[0], c = pt.pointIndex[1];
  var l = m.rowLayer[r], h = m.colHead[c];
  if (l < 0 || h < 0) return;
  var extra = m.info[l + "," + h];
  var tmp = document.createElement("span");
  tmp.innerHTML = "layer " + l + " head " + h + ": query " + pt.y.replace(/^L\\d+ q/, "") + " -> key " + pt.x.replace(/^H\\d+ k/, "") + ", weight " + Number(pt.z).toFixed(4);
  info.textContent = tmp.textContent + (extra ? "\\n" + extra : "");
});`;
  return new Figure({
    data: [
      {
        type: "heatmap",
        z,
        x,
        y,
        zmin: 0,
        zmax: options.zmax ?? 1,
        colorscale: "Blues",
        colorbar: { title: { text: "weight" }, thickness: 12 },
        hoverongaps: false,
        xgap: 0,
        ygap: 0,
        meta: { ...idx, info },
        hovertemplate: "%{y} → %{x}<br>weight %{z:.4f}<extra></extra>",
      },
    ],
    layout,
    notes: p.notes,
    script,
  });
}

function fmt(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? "–" : v.toFixed(3);
}
