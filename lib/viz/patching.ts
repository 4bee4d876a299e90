/**
 * Activation-patching heatmap: rows are where the clean activation was
 * patched in (layers, or layer·head), columns are token positions, colour is
 * the normalized effect on the metric (1 = fully restores the clean result,
 * 0 = no effect), on a diverging scale centred at 0.
 */
import { InputError } from "../errors.js";
import { Figure, escapeForPlotlyText, titleWithNotes, type PlotlyLayout, type PlotlyTrace } from "./figure.js";
import { displayToken, planAxis } from "./long-input.js";

/** What a patching sweep produced (see lib/interp/patching.ts). */
export interface PatchingGrid {
  /** [rows][columns] normalized effects. */
  values: readonly (readonly number[])[];
  /** Row labels, e.g. "layer 3" or "L3 H5". */
  rowLabels: readonly string[];
  /** Column labels (token at each position), or a single "all positions" column. */
  colLabels: readonly string[];
  /** Absolute position of each column (default 0..C-1; empty = one "all positions" column). */
  positions?: readonly number[];
  /** Which activation was patched, e.g. "resid_pre". */
  site: string;
  /** The metric, e.g. "logit diff ' Tom' − ' Lily'". */
  metric: string;
}

export interface PatchingHeatmapOptions {
  title?: string;
  /** Beyond this many positions, show the last ones (default 96). */
  maxPositions?: number;
}

/** Diverging heatmap of a patching sweep. */
export function patchingHeatmap(grid: PatchingGrid, options: PatchingHeatmapOptions = {}): Figure {
  const R = grid.rowLabels.length;
  const C = grid.colLabels.length;
  if (grid.values.length !== R) throw new InputError(`patchingHeatmap: ${grid.values.length} rows of values for ${R} row labels`);
  grid.values.forEach((row, r) => {
    if (row.length !== C) throw new InputError(`patchingHeatmap: row ${r} has ${row.length} values for ${C} columns`);
  });
  const plan = planAxis(C, options.maxPositions ?? 96, "window");
  const notes = plan.note ? [plan.note.replace("tokens", "positions")] : [];
  const cols = plan.starts;
  const label = (c: number) => escapeForPlotlyText(displayToken(grid.colLabels[c]!));
  const x = cols.map((c) => (grid.positions && grid.positions.length === 0 ? label(c) : `${grid.positions?.[c] ?? c} ${label(c)}`));
  const z = grid.values.map((row) => cols.map((c) => row[c]!));
  let extent = 0;
  for (const row of z) for (const v of row) if (Number.isFinite(v)) extent = Math.max(extent, Math.abs(v));
  extent = Math.max(1, extent);
  const trace: PlotlyTrace = {
    type: "heatmap",
    z,
    x,
    y: [...grid.rowLabels],
    zmid: 0,
    zmin: -extent,
    zmax: extent,
    colorscale: "RdBu",
    reversescale: true,
    colorbar: { title: { text: "effect" } },
    hovertemplate: "%{y}, position %{x}<br>normalized effect %{z:.3f}<extra></extra>",
  };
  const layout: PlotlyLayout = {
    title: titleWithNotes(options.title ?? `Activation patching (${grid.site}): ${escapeForPlotlyText(grid.metric)}`, notes),
    xaxis: { title: { text: "position" }, type: "category", tickangle: -45, automargin: true },
    yaxis: { title: { text: "patched at" }, type: "category", autorange: "reversed", automargin: true },
    width: Math.max(480, 180 + 40 * x.length),
    height: Math.max(300, 140 + 22 * R),
    margin: { t: 70 },
  };
  return new Figure({ data: [trace], layout, notes });
}
