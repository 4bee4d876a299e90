/**
 * HTML string builders for figures. Everything here works offline: plotly.js
 * comes either inline (read from the local node_modules/plotly.js-dist-min)
 * or from a URL the caller serves locally (the kernel decides). No CDN, ever.
 *
 * This is the one module that inlines plotly.js (~4.8 MB): figures built
 * here and the kernel's `display.plotly` fallback (kernel/display/plotly-html.ts)
 * both take the script from `plotlyInlineScript()` and claim the single
 * per-process "once" with `takePlotlyInline()`, so a notebook session's
 * outputs carry the script once, whichever path shows the first figure.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaError } from "../errors.js";
import type { PlotlyFigureJSON } from "./figure.js";

export interface PlotlyHtmlOptions {
  /** Load plotly.js from this URL (one the kernel/server serves locally). Wins over `inlinePlotly`. */
  plotlyScriptUrl?: string;
  /**
   * Embed the local plotly.min.js (~4.8 MB): `true` in every fragment (the
   * default for toHTML: a standalone file), `"once"` only in the first
   * fragment this process builds (the default for notebook outputs: later
   * figures wait for window.Plotly), `false` never (the page already has it).
   */
  inlinePlotly?: boolean | "once";
  /** The id of the plot's div (default: a fresh unique id). */
  divId?: string;
  /** CSS height of the plot div when the layout gives none (default from layout.height or 450px). */
  height?: string;
}

let defaults: PlotlyHtmlOptions = {};

/** Sets how `Figure._repr_mimebundle_()` builds its `text/html` (the kernel calls this once). */
export function setFigureHtmlDefaults(options: PlotlyHtmlOptions): void {
  defaults = { ...options };
}

/** The current defaults set by `setFigureHtmlDefaults` (plotly.js inline once per process unless set). */
export function figureHtmlDefaults(): PlotlyHtmlOptions {
  return { inlinePlotly: "once", ...defaults };
}

let inlinedOnce = false;

/** Makes the next `inlinePlotly: "once"` fragment carry plotly.js again (e.g. after a page reload). */
export function resetPlotlyInlining(): void {
  inlinedOnce = false;
}

/**
 * Claims this process's one inline copy of plotly.js: true the first time
 * (the caller must then include `plotlyInlineScript()`), false afterwards
 * (later outputs wait for `window.Plotly`).
 */
export function takePlotlyInline(): boolean {
  if (inlinedOnce) return false;
  inlinedOnce = true;
  return true;
}

/**
 * The `<script>` element that defines `window.Plotly` from the local bundle,
 * unless the page has it already. module/exports/define are hidden: under
 * require.js (classic Notebook) the UMD bundle must still set window.Plotly.
 */
export function plotlyInlineScript(): string {
  return `<script>if (!window.Plotly) { (function(define, module, exports){
${scriptText(plotlyScriptSource())}
}).call(window); }</script>`;
}

let cachedPlotlySource: string | undefined;
let cachedPlotlyPath: string | undefined;

/**
 * Path of the local plotly.min.js: node_modules/ above this module's folder
 * (lib/ or dist/lib/ in a checkout, the installed package's own or hoisted
 * dependency), then above the working directory. Throws a clear error if it is missing.
 */
export function plotlyScriptPath(): string {
  if (cachedPlotlyPath) return cachedPlotlyPath;
  const rel = path.join("node_modules", "plotly.js-dist-min", "plotly.min.js");
  const starts = [path.dirname(fileURLToPath(import.meta.url)), process.cwd()];
  for (const start of starts) {
    let dir = path.resolve(start);
    for (;;) {
      const candidate = path.join(dir, rel);
      if (fs.existsSync(candidate)) return (cachedPlotlyPath = candidate);
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new LlamaError(`plotly.js not found: looked for ${rel} above ${starts.join(" and ")} (is plotly.js-dist-min installed?)`);
}

/** The text of the local plotly.min.js (read once). */
export function plotlyScriptSource(): string {
  if (cachedPlotlySource === undefined) cachedPlotlySource = fs.readFileSync(plotlyScriptPath(), "utf8");
  return cachedPlotlySource;
}

let idCounter = 0;
/** A div id unlikely to clash with other outputs on the same page. */
export function freshDomId(prefix: string): string {
  idCounter += 1;
  return `${prefix}-${Date.now().toString(36)}-${idCounter}-${Math.floor(Math.random() * 1e9).toString(36)}`;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/**
 * JSON safe to put inside a <script> element: `</script>` and `<!--` in the
 * data (token strings!) cannot end the script, and U+2028/9 cannot break it.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/** Plotly script text safe inside a <script> element. */
function scriptText(js: string): string {
  return js.replace(/<\/(script)/gi, "<\\/$1");
}

/**
 * A self-contained HTML fragment that draws `fig`: a div, plotly.js (inline or
 * from `plotlyScriptUrl`, loaded once per page and shared between figures),
 * and the `Plotly.newPlot` call. A figure's `script` (click handlers) runs
 * after drawing with `gd` (the plot div) and `info` (a caption div) in scope.
 */
export function htmlWithPlotly(fig: PlotlyFigureJSON & { script?: string }, options: PlotlyHtmlOptions = {}): string {
  const id = options.divId ?? freshDomId("llama-ts-plot");
  const layoutHeight = typeof fig.layout["height"] === "number" ? `${fig.layout["height"]}px` : undefined;
  const height = options.height ?? layoutHeight ?? "450px";
  const width = typeof fig.layout["width"] === "number" ? `${fig.layout["width"]}px` : "100%";
  const figJson = jsonForScript({ data: fig.data, layout: fig.layout, config: fig.config ?? {} });
  const loader = plotlyLoader(options);
  const after = fig.script ? `(function(gd, info){${scriptText(fig.script)}\n})(gd, info);` : "";
  return `<div class="llama-ts-figure">
<div id="${id}" style="width:${width};height:${height};"></div>
<div id="${id}-info" class="llama-ts-figure-info" style="font:12px monospace;min-height:1em;white-space:pre-wrap;"></div>
${loader}
<script>
(function(){
  var fig = ${figJson};
  function draw(){
    var gd = document.getElementById(${jsonForScript(id)});
    var info = document.getElementById(${jsonForScript(id + "-info")});
    window.Plotly.newPlot(gd, fig.data, fig.layout, fig.config).then(function(){ ${after} gd.setAttribute("data-rendered", "1"); });
  }
  var done = false;
  function once(){ if (!done && window.Plotly) { done = true; draw(); } }
  if (window.Plotly) { once(); return; }
  (window.__llamaTsPlotlyReady = window.__llamaTsPlotlyReady || []).push(once);
  // plotly.js may also arrive from another output (e.g. the kernel's own fallback): poll for it too.
  var tries = 0, timer = setInterval(function(){ if (window.Plotly || ++tries > 600) { clearInterval(timer); once(); } }, 50);
})();
</script>
</div>`;
}

/**
 * The script(s) that make `window.Plotly` available, then call the queued
 * draw functions (`window.__llamaTsPlotlyReady`). Loading is shared: a page
 * with many figures fetches/evaluates plotly.js only once.
 */
function plotlyLoader(options: PlotlyHtmlOptions): string {
  const flush = `function __llamaTsFlush(){var q=window.__llamaTsPlotlyReady||[];window.__llamaTsPlotlyReady=[];q.forEach(function(f){f();});}`;
  if (options.plotlyScriptUrl !== undefined) {
    const url = jsonForScript(options.plotlyScriptUrl);
    return `<script>
(function(){
  ${flush}
  if (window.Plotly) { setTimeout(__llamaTsFlush, 0); return; }
  if (window.__llamaTsPlotlyLoading) { window.__llamaTsPlotlyLoading.then(__llamaTsFlush); return; }
  window.__llamaTsPlotlyLoading = new Promise(function(resolve, reject){
    var s = document.createElement("script");
    s.src = ${url};
    s.onload = function(){ resolve(); };
    s.onerror = function(){ reject(new Error("llama-ts: could not load plotly.js from " + ${url})); };
    document.head.appendChild(s);
  });
  window.__llamaTsPlotlyLoading.then(__llamaTsFlush);
})();
</script>`;
  }
  let inline = options.inlinePlotly ?? true;
  if (inline === "once") inline = takePlotlyInline();
  if (!inline) {
    // The caller promises plotly.js is already on the page; still flush the queue when it appears.
    return `<script>(function(){${flush} if (window.Plotly) setTimeout(__llamaTsFlush, 0);})();</script>`;
  }
  return `${plotlyInlineScript()}
<script>(function(){${flush} setTimeout(__llamaTsFlush, 0);})();</script>`;
}

/** A whole HTML document around fragments (for saving a figure to a file or a browser test). */
export function htmlPage(title: string, bodyFragments: readonly string[]): string {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body style="margin:8px;font-family:sans-serif;">
${bodyFragments.join("\n")}
</body></html>`;
}
