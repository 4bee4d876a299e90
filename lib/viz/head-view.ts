/**
 * A bertviz-style head view: the tokens in two columns (queries left, keys
 * right) with a line from each query to each key it attends to, line opacity
 * = attention weight, one colour per head; a layer menu and head toggles;
 * hovering a token shows only its lines. Self-contained HTML + inline JS
 * (SVG, no libraries, no network).
 */
import { InputError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { HtmlFigure } from "./figure.js";
import { escapeHtml, freshDomId, jsonForScript } from "./html.js";
import { displayToken, planAxis } from "./long-input.js";

export interface HeadViewOptions {
  /** Display strings of the tokens, [T]. */
  tokens: readonly string[];
  batch?: number;
  /** Layer shown first (default 0). */
  layer?: number;
  /** Weights below this are not drawn (and not shipped), default 0.01. */
  threshold?: number;
  /** Beyond this many tokens, show a window of the last ones (default 128). */
  maxTokens?: number;
  /** Window start when windowing (default: the last maxTokens tokens). */
  windowStart?: number;
  title?: string;
}

/** Sparse weights: [layer][head][query] → flat [key0, w0, key1, w1, …] with keys relative to the window. */
type SparseAttention = number[][][][];

export const HEAD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a"];

/** Builds the head view from every layer's pattern [B, heads, T, T]. */
export function headView(patterns: readonly Tensor[], options: HeadViewOptions): HtmlFigure {
  if (!patterns.length) throw new InputError("headView: no layers given");
  const first = patterns[0]!;
  if (first.rank !== 4) throw new InputError(`headView: pattern must be [B, heads, T, T], got [${first.shape.join(", ")}]`);
  const [B, H, T, S] = first.shape as [number, number, number, number];
  if (T !== S) throw new InputError(`headView: needs self-attention over the whole input (T == S), got T=${T}, S=${S}`);
  if (options.tokens.length !== T) throw new InputError(`headView: ${options.tokens.length} tokens for ${T} positions`);
  patterns.forEach((p, i) => {
    if (p.shape.join() !== first.shape.join()) throw new InputError(`headView: layer ${i} pattern [${p.shape.join(", ")}] differs from layer 0's [${first.shape.join(", ")}]`);
  });
  const b = options.batch ?? 0;
  if (b < 0 || b >= B) throw new InputError(`headView: batch index ${b} out of range 0..${B - 1}`);
  const threshold = options.threshold ?? 0.01;
  const plan = planAxis(T, options.maxTokens ?? 128, "window", options.windowStart);
  const start = plan.starts[0] ?? 0;
  const n = plan.cells;
  const notes = plan.note ? [`${plan.note}; attention to earlier tokens is not drawn`] : [];

  const weights: SparseAttention = patterns.map((p) => {
    const data = p.toFloat32();
    return Array.from({ length: H }, (_, h) => {
      const base = (b * H + h) * T * T;
      return Array.from({ length: n }, (_, qi) => {
        const row: number[] = [];
        const q = start + qi;
        for (let ki = 0; ki < n; ki++) {
          const w = data[base + q * T + start + ki]!;
          // 3 digits: opacity steps finer than that are invisible; keeps the page small.
          if (w >= threshold) row.push(ki, Math.round(w * 1000) / 1000);
        }
        return row;
      });
    });
  });

  const id = freshDomId("llama-ts-headview");
  const title = options.title ?? "Head view";
  const payload = {
    tokens: options.tokens.slice(start, start + n).map((t) => displayToken(t, 20)),
    offset: start,
    weights,
    colors: HEAD_COLORS,
    layer: Math.max(0, Math.min(options.layer ?? 0, patterns.length - 1)),
  };
  const html = `<div id="${id}" class="llama-ts-headview" style="font-family:sans-serif;font-size:13px;">
<div style="font-weight:bold;margin-bottom:4px;">${escapeHtml(title)}</div>
${notes.map((s) => `<div style="color:#a33;font-size:11px;">${escapeHtml(s)}</div>`).join("")}
<div class="controls" style="margin:4px 0;">Layer: <select class="layer"></select> <span class="heads"></span></div>
<svg class="lines" xmlns="http://www.w3.org/2000/svg"></svg>
<script>
(function(){
  var D = ${jsonForScript(payload)};
  var root = document.getElementById(${jsonForScript(id)});
  var svg = root.querySelector("svg.lines"), sel = root.querySelector("select.layer"), headsEl = root.querySelector("span.heads");
  var NS = "http://www.w3.org/2000/svg", rowH = 18, top = 10, leftX = 170, rightX = 430, nH = D.weights[0].length;
  var active = []; for (var h = 0; h < nH; h++) active.push(true);
  var focus = null; // {side: "q"|"k", index}
  svg.setAttribute("width", String(rightX + 170));
  svg.setAttribute("height", String(top * 2 + rowH * D.tokens.length));
  for (var l = 0; l < D.weights.length; l++) { var o = document.createElement("option"); o.value = String(l); o.textContent = String(l); sel.appendChild(o); }
  sel.value = String(D.layer);
  sel.onchange = draw;
  for (var h2 = 0; h2 < nH; h2++) (function(h){
    var lab = document.createElement("label");
    lab.style.cssText = "margin-right:6px;padding:1px 4px;border-radius:3px;color:#fff;cursor:pointer;background:" + D.colors[h % D.colors.length];
    var cb = document.createElement("input"); cb.type = "checkbox"; cb.checked = true;
    cb.onchange = function(){ active[h] = cb.checked; draw(); };
    lab.appendChild(cb); lab.appendChild(document.createTextNode("H" + h)); headsEl.appendChild(lab);
  })(h2);
  var edges = document.createElementNS(NS, "g"), labels = document.createElementNS(NS, "g");
  svg.appendChild(edges); svg.appendChild(labels);
  function text(x, y, s, anchor, side, i){
    var t = document.createElementNS(NS, "text");
    t.setAttribute("x", String(x)); t.setAttribute("y", String(y)); t.setAttribute("text-anchor", anchor);
    t.setAttribute("dominant-baseline", "middle"); t.setAttribute("class", "tok");
    t.style.cursor = "default";
    t.textContent = s;
    t.onmouseenter = function(){ focus = {side: side, index: i}; t.style.fontWeight = "bold"; draw(); };
    t.onmouseleave = function(){ focus = null; t.style.fontWeight = ""; draw(); };
    labels.appendChild(t);
  }
  for (var i = 0; i < D.tokens.length; i++) {
    text(leftX, top + rowH * (i + 0.5), D.tokens[i], "end", "q", i);
    text(rightX, top + rowH * (i + 0.5), D.tokens[i], "start", "k", i);
  }
  // Only the lines are redrawn (layer, head toggles, hover); the token labels stay put.
  function draw(){
    while (edges.firstChild) edges.removeChild(edges.firstChild);
    var L = Number(sel.value), W = D.weights[L];
    for (var h = 0; h < nH; h++) {
      if (!active[h]) continue;
      var rows = W[h];
      for (var q = 0; q < rows.length; q++) {
        if (focus && focus.side === "q" && focus.index !== q) continue;
        var r = rows[q];
        for (var j = 0; j < r.length; j += 2) {
          var k = r[j], w = r[j + 1];
          if (focus && focus.side === "k" && focus.index !== k) continue;
          var line = document.createElementNS(NS, "line");
          line.setAttribute("x1", String(leftX + 6)); line.setAttribute("y1", String(top + rowH * (q + 0.5)));
          line.setAttribute("x2", String(rightX - 6)); line.setAttribute("y2", String(top + rowH * (k + 0.5)));
          line.setAttribute("stroke", D.colors[h % D.colors.length]); line.setAttribute("stroke-width", "2");
          line.setAttribute("stroke-opacity", String(Math.min(1, w)));
          edges.appendChild(line);
        }
      }
    }
    root.setAttribute("data-rendered", "1");
  }
  draw();
})();
</script>
</div>`;
  return new HtmlFigure(html, title, notes);
}
