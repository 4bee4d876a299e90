/**
 * Next-token figures: the logit-lens heatmap (layers × positions, coloured by
 * the probability of each cell's top token, the token written in the cell)
 * and a top-k next-token bar chart.
 */
import { InputError } from "../errors.js";
import type { LogitLensResult } from "../interp/lens-summary.js";
import { Figure, escapeForPlotlyText, titleWithNotes, type PlotlyLayout, type PlotlyTrace } from "./figure.js";
import { displayToken, planAxis } from "./long-input.js";

/** Turns a token id into display text (e.g. `id => tokenizer.convertIdsToTokens([id])[0]`). */
export type TokenText = (id: number) => string;

export interface LogitLensFigureOptions {
  tokenText: TokenText;
  /** Colour by the top token's probability (default) or by the followed target token's. */
  colorBy?: "top" | "target";
  /** Beyond this many positions, show a window of the last ones (default 48: cells hold words). */
  maxPositions?: number;
  title?: string;
}

/** Logit-lens heatmap: one row per layer (last layer on top), one column per position. */
export function logitLensFigure(lens: LogitLensResult, options: LogitLensFigureOptions): Figure {
  const colorBy = options.colorBy ?? "top";
  if (colorBy === "target" && !lens.targetProbs) throw new InputError('logitLensFigure: colorBy "target" needs a lens computed with a `target`');
  const plan = planAxis(lens.positions.length, options.maxPositions ?? 48, "window");
  const cols = plan.starts;
  const notes = plan.note ? [plan.note.replace("tokens", "positions")] : [];
  const tt = (id: number) => escapeForPlotlyText(displayToken(options.tokenText(id), 12));
  const x = cols.map((c) => `${lens.positions[c]} ${tt(lens.inputIds[lens.positions[c]!]!)}`);
  const z: number[][] = [];
  const text: string[][] = [];
  const hover: string[][] = [];
  lens.layerLabels.forEach((_, l) => {
    z.push(cols.map((c) => (colorBy === "top" ? lens.topProbs[l]![c]![0]! : lens.targetProbs![l]![c]!)));
    text.push(cols.map((c) => tt(lens.topIds[l]![c]![0]!)));
    hover.push(
      cols.map((c) => {
        const top = lens.topIds[l]![c]!.map((id, i) => `${tt(id)}  ${(lens.topProbs[l]![c]![i]! * 100).toFixed(1)}%`).join("<br>");
        const target =
          lens.targetIds && lens.targetIds[c]! >= 0
            ? `<br>target ${tt(lens.targetIds[c]!)}: p=${lens.targetProbs![l]![c]!.toFixed(4)}, rank ${lens.targetRanks![l]![c]}`
            : "";
        return `${lens.layerLabels[l]} · position ${lens.positions[c]}<br>${top}${target}`;
      }),
    );
  });
  const trace: PlotlyTrace = {
    type: "heatmap",
    z,
    x,
    y: lens.layerLabels,
    text,
    texttemplate: "%{text}",
    textfont: { size: 10 },
    hovertext: hover,
    hovertemplate: "%{hovertext}<extra></extra>",
    zmin: 0,
    zmax: 1,
    colorscale: "Viridis",
    colorbar: { title: { text: colorBy === "top" ? "p(top)" : "p(target)" } },
  };
  const layout: PlotlyLayout = {
    title: titleWithNotes(options.title ?? "Logit lens: top next-token guess of each layer's residual stream", notes),
    xaxis: { title: { text: "position · input token (each column predicts the next token)" }, type: "category", tickangle: -45, automargin: true },
    yaxis: { title: { text: "layer" }, type: "category", automargin: true },
    width: Math.max(500, 160 + 62 * x.length),
    height: Math.max(300, 160 + 34 * lens.layerLabels.length),
    margin: { t: 70 },
  };
  return new Figure({ data: [trace], layout, notes });
}

export interface TopKBarOptions {
  tokenText: TokenText;
  title?: string;
  /** Show log-probabilities instead of probabilities. */
  logScale?: boolean;
}

/** Horizontal bar chart of the most likely next tokens (most likely on top). */
export function topKBarChart(top: { ids: readonly number[]; probs: readonly number[] }, options: TopKBarOptions): Figure {
  if (top.ids.length !== top.probs.length) throw new InputError(`topKBarChart: ${top.ids.length} ids but ${top.probs.length} probabilities`);
  const labels = top.ids.map((id, i) => `${i + 1}. ${escapeForPlotlyText(displayToken(options.tokenText(id), 20))}`);
  const values = top.probs.map((p) => (options.logScale ? Math.log(p) : p));
  const trace: PlotlyTrace = {
    type: "bar",
    orientation: "h",
    x: values,
    y: labels,
    text: top.probs.map((p) => `${(p * 100).toFixed(1)}%`),
    textposition: "auto",
    customdata: top.ids,
    hovertemplate: "%{y} (id %{customdata})<br>p = %{text}<extra></extra>",
    marker: { color: "#4c78a8" },
  };
  const layout: PlotlyLayout = {
    title: { text: options.title ?? `Top ${top.ids.length} next tokens` },
    xaxis: { title: { text: options.logScale ? "log p" : "probability" }, ...(options.logScale ? {} : { range: [0, 1] }) },
    yaxis: { type: "category", autorange: "reversed", automargin: true },
    height: 140 + 24 * top.ids.length,
    width: 560,
    margin: { t: 50 },
  };
  return new Figure({ data: [trace], layout });
}
