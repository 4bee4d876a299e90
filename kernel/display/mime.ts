/**
 * A value → a MIME bundle, the way the notebook shows it.
 *
 * Objects speak for themselves with either convention (IPython's and a plain
 * JS one): `_repr_mimebundle_()` returning `Record<mime, data>` (or
 * `[data, metadata]`), or `toMimeBundle()`. lib/viz figures and tables do
 * this, so the library never imports the kernel. Everything gets `text/plain`
 * = what node's util.inspect prints; a plotly bundle also gets a `text/html`
 * fallback drawing with local plotly.js.
 */
import { inspect } from "node:util";
import { takePlotlyInline } from "../../lib/viz/html.js";
import { PLOTLY_MIME, plotlyHtml, type PlotlyFigure } from "./plotly-html.js";

export type MimeBundle = Record<string, unknown>;

export interface RichOutput {
  data: MimeBundle;
  metadata: Record<string, unknown>;
}

interface SelfDisplaying {
  _repr_mimebundle_?: () => unknown;
  toMimeBundle?: () => unknown;
}

export function richRepr(value: unknown): RichOutput {
  let data: MimeBundle = {};
  let metadata: Record<string, unknown> = {};
  const v = value as SelfDisplaying | null;
  if (v !== null && (typeof v === "object" || typeof v === "function")) {
    const produced =
      typeof v._repr_mimebundle_ === "function" ? v._repr_mimebundle_() : typeof v.toMimeBundle === "function" ? v.toMimeBundle() : undefined;
    if (Array.isArray(produced)) {
      data = { ...(produced[0] as MimeBundle) };
      metadata = { ...((produced[1] as Record<string, unknown>) ?? {}) };
    } else if (produced && typeof produced === "object") {
      data = { ...(produced as MimeBundle) };
    }
  }
  if (data["text/plain"] === undefined) data["text/plain"] = inspect(value);
  return { data: withFallbacks(data), metadata };
}

/** Adds the HTML fallback to a plotly bundle that lacks one. */
export function withFallbacks(data: MimeBundle): MimeBundle {
  const fig = data[PLOTLY_MIME] as PlotlyFigure | undefined;
  if (fig && data["text/html"] === undefined) data["text/html"] = plotlyHtml(fig, takePlotlyInline());
  return data;
}

/** The bundle of a plotly figure object ({data, layout?, config?}). */
export function plotlyBundle(fig: PlotlyFigure): MimeBundle {
  const traces = Array.isArray(fig.data) ? fig.data.length : 0;
  const title = (fig.layout?.title as { text?: string } | string | undefined) ?? "";
  const titleText = typeof title === "string" ? title : title.text ?? "";
  return withFallbacks({
    [PLOTLY_MIME]: { data: fig.data, layout: fig.layout ?? {}, ...(fig.config ? { config: fig.config } : {}) },
    "text/plain": `<plotly figure${titleText ? ` "${titleText}"` : ""}: ${traces} trace${traces === 1 ? "" : "s"}>`,
  });
}
