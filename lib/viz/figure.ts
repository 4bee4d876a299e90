/**
 * Plain plotly figure objects. A `Figure` is just `{ data, layout, config }`
 * as plotly.js takes them (no DOM, no Jupyter): the builders in lib/viz fill
 * it from tensors, and a notebook kernel renders it through
 * `_repr_mimebundle_()` — the plotly MIME type for frontends that have the
 * plotly renderer, plus a self-contained `text/html` fallback that loads
 * plotly.js from a local copy (never a CDN).
 */
import { htmlWithPlotly, figureHtmlDefaults, type PlotlyHtmlOptions } from "./html.js";

/** One plotly trace (`heatmap`, `bar`, …) with its attributes as plotly.js names them. */
export type PlotlyTrace = { type: string } & Record<string, unknown>;
/** A plotly layout object (title, axes, annotations, …). */
export type PlotlyLayout = Record<string, unknown>;
/** A plotly config object (modebar, responsiveness, …). */
export type PlotlyConfig = Record<string, unknown>;

/** The JSON form of a figure: what `Plotly.newPlot(div, data, layout, config)` takes. */
export interface PlotlyFigureJSON {
  data: PlotlyTrace[];
  layout: PlotlyLayout;
  config?: PlotlyConfig;
}

/** The MIME type JupyterLab's plotly renderer (and nteract, VS Code) understands. */
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** Offline-friendly defaults: no plotly cloud link, no logo. */
export const DEFAULT_PLOTLY_CONFIG: PlotlyConfig = Object.freeze({
  displaylogo: false,
  showLink: false,
  showSendToCloud: false,
  showEditInChartStudio: false,
  responsive: true,
});

/** Something a Jupyter kernel can display (it calls `_repr_mimebundle_`). */
export interface MimeRenderable {
  _repr_mimebundle_(): Record<string, unknown>;
}

/**
 * A plotly figure. `notes` carries what the figure leaves out (e.g. "showing
 * the last 256 of 600 tokens"); builders also put it in the title so the
 * rendered figure says so.
 */
export class Figure implements PlotlyFigureJSON, MimeRenderable {
  data: PlotlyTrace[];
  layout: PlotlyLayout;
  config: PlotlyConfig;
  notes: string[];
  /**
   * Extra JavaScript run after the plot is drawn in the HTML rendering; it sees
   * `gd` (the plot's div) and `info` (a caption div under the plot). Used for
   * click handlers. Ignored by the plotly MIME renderer.
   */
  script?: string;

  constructor(fig: PlotlyFigureJSON & { notes?: string[]; script?: string }) {
    this.data = fig.data;
    this.layout = fig.layout;
    this.config = { ...DEFAULT_PLOTLY_CONFIG, ...(fig.config ?? {}) };
    this.notes = fig.notes ?? [];
    if (fig.script !== undefined) this.script = fig.script;
  }

  /** `{ data, layout, config }`, e.g. for JSON.stringify or Plotly.newPlot. */
  toJSON(): PlotlyFigureJSON {
    return { data: this.data, layout: this.layout, config: this.config };
  }

  /** A self-contained HTML fragment (a div + scripts) drawing this figure. */
  toHTML(options?: PlotlyHtmlOptions): string {
    return htmlWithPlotly(this, options);
  }

  /** MIME bundle for Jupyter: plotly JSON first, self-contained HTML as the fallback. */
  _repr_mimebundle_(): Record<string, unknown> {
    return {
      [PLOTLY_MIME]: { data: this.data, layout: this.layout, config: this.config },
      "text/html": htmlWithPlotly(this, figureHtmlDefaults()),
      "text/plain": this.toString(),
    };
  }

  /** A one-line description (what a REPL prints). */
  toString(): string {
    const title = layoutTitle(this.layout);
    const kinds = [...new Set(this.data.map((t) => t.type))].join(", ");
    const notes = this.notes.length ? ` (${this.notes.join("; ")})` : "";
    return `Figure(${kinds}${title ? `: ${title}` : ""})${notes}`;
  }
}

/** A figure made of HTML + inline JS instead of plotly (e.g. the head view). */
export class HtmlFigure implements MimeRenderable {
  constructor(
    /** A self-contained fragment: no external scripts, styles or fonts. */
    readonly html: string,
    readonly title: string,
    readonly notes: string[] = [],
  ) {}

  _repr_mimebundle_(): Record<string, unknown> {
    return { "text/html": this.html, "text/plain": this.toString() };
  }

  toHTML(): string {
    return this.html;
  }

  toString(): string {
    const notes = this.notes.length ? ` (${this.notes.join("; ")})` : "";
    return `HtmlFigure(${this.title})${notes}`;
  }
}

/** The title text of a layout (`title` may be a string or `{ text }`). */
export function layoutTitle(layout: PlotlyLayout): string {
  const t = layout["title"];
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof (t as { text?: unknown }).text === "string") return (t as { text: string }).text;
  return "";
}

/** A title whose second line (smaller) lists the notes, so the figure itself says what it left out. */
export function titleWithNotes(title: string, notes: readonly string[]): { text: string; font?: Record<string, unknown> } {
  if (!notes.length) return { text: title };
  return { text: `${title}<br><span style="font-size:11px;color:#a33">${notes.map(escapeForPlotlyText).join("; ")}</span>` };
}

/**
 * Plotly renders a subset of HTML in text (titles, tick labels, hover text).
 * Token strings are user data: escape `<`, `>` and `&` so a token like
 * "<s>" shows as itself instead of being eaten as a tag.
 */
export function escapeForPlotlyText(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
