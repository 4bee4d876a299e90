/**
 * The `text/html` fallback of a plotly figure, for frontends without a plotly
 * renderer (classic Notebook 6, nbconvert HTML): a div plus a script that
 * draws the figure with plotly.js. There is no internet here, so plotly.js is
 * never fetched from a CDN: the first figure of a kernel session carries the
 * local `plotly.js-dist-min` bundle inline (it defines window.Plotly once);
 * later figures wait for it. The script and the "first figure" flag are
 * lib/viz/html.ts's (`plotlyInlineScript`, `takePlotlyInline`), shared with
 * the library's own figures, so a session inlines plotly.js once in all.
 */
import { randomUUID } from "node:crypto";
import { plotlyInlineScript } from "../../lib/viz/html.js";
import { jsonSafe } from "../protocol/wire.js";

export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

export interface PlotlyFigure {
  data: unknown[];
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
  frames?: unknown[];
}

/** Script-safe JSON: "<" escaped so figure text cannot close the script element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value, jsonSafe).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

/** The HTML drawing `fig`; `includeLibrary` (from `takePlotlyInline()`) puts plotly.js itself in front. */
export function plotlyHtml(fig: PlotlyFigure, includeLibrary: boolean): string {
  const id = `llama-ts-plot-${randomUUID()}`;
  const height = typeof fig.layout?.height === "number" ? fig.layout.height : 450;
  const lib = includeLibrary ? `${plotlyInlineScript()}\n` : "";
  const draw = `<script type="text/javascript">(function () {
  var fig = ${scriptJson({ data: fig.data, layout: fig.layout ?? {}, config: { responsive: true, ...(fig.config ?? {}) } })};
  function draw() { window.Plotly.newPlot(${JSON.stringify(id)}, fig.data, fig.layout, fig.config); }
  if (window.Plotly) { draw(); } else { var tries = 0; var t = setInterval(function () { if (window.Plotly) { clearInterval(t); draw(); } else if (++tries > 600) { clearInterval(t); } }, 50); }
})();</script>`;
  return `${lib}<div id="${id}" class="llama-ts-plotly" style="width:100%;height:${height}px;"></div>\n${draw}`;
}

export function isPlotlyFigure(v: unknown): v is PlotlyFigure {
  return typeof v === "object" && v !== null && Array.isArray((v as PlotlyFigure).data);
}
