/**
 * The coloured-token log-prob strip: the input text as a run of tokens, each
 * coloured by how surprised the model was to see it (log p(token | prefix)),
 * wrapped into lines like text. Built as a plotly heatmap with the tokens
 * written in the cells, so it renders through the same path as every figure.
 */
import { InputError } from "../errors.js";
import type { TokenLogProbs } from "../interp/logprobs.js";
import { Figure, escapeForPlotlyText, titleWithNotes, type PlotlyLayout, type PlotlyTrace } from "./figure.js";
import { displayToken, planAxis } from "./long-input.js";

export interface LogProbStripOptions {
  /** Display strings of the tokens, [T]. */
  tokens: readonly string[];
  /** Tokens per line (default 16). */
  perLine?: number;
  /** Beyond this many tokens, show the last ones (default 512). */
  maxTokens?: number;
  /** Lower end of the colour scale in nats (default: min(-8, lowest log-prob)). */
  zmin?: number;
  title?: string;
}

/** A wrapped strip of tokens coloured by their log-probability. */
export function logProbStrip(lp: TokenLogProbs, options: LogProbStripOptions): Figure {
  const T = lp.ids.length;
  if (options.tokens.length !== T) throw new InputError(`logProbStrip: ${options.tokens.length} token labels for ${T} tokens`);
  const perLine = options.perLine ?? 16;
  if (!Number.isInteger(perLine) || perLine < 1) throw new InputError(`logProbStrip: perLine must be a positive integer, got ${perLine}`);
  const plan = planAxis(T, options.maxTokens ?? 512, "window");
  const notes = plan.note ? [plan.note] : [];
  const positions = plan.starts;
  const lines = Math.ceil(positions.length / perLine);
  const z: (number | null)[][] = [];
  const text: string[][] = [];
  const hover: string[][] = [];
  let lowest = 0;
  for (let r = 0; r < lines; r++) {
    const zr: (number | null)[] = [];
    const tr: string[] = [];
    const hr: string[] = [];
    for (let c = 0; c < perLine; c++) {
      const t = positions[r * perLine + c];
      if (t === undefined) {
        zr.push(null);
        tr.push("");
        hr.push("");
        continue;
      }
      const v = lp.logProbs[t]!;
      const tok = escapeForPlotlyText(displayToken(options.tokens[t]!, 14));
      zr.push(Number.isNaN(v) ? null : v);
      if (!Number.isNaN(v)) lowest = Math.min(lowest, v);
      tr.push(tok);
      hr.push(
        Number.isNaN(v)
          ? `${t} ${tok}<br>(first token: nothing predicts it)`
          : `${t} ${tok} (id ${lp.ids[t]})<br>log p = ${v.toFixed(3)} (p = ${Math.exp(v).toFixed(4)})<br>rank ${lp.rank[t]}, entropy ${lp.entropy[t]!.toFixed(2)} nats`,
      );
    }
    z.push(zr);
    text.push(tr);
    hover.push(hr);
  }
  const zmin = options.zmin ?? Math.min(-8, Math.floor(lowest));
  const trace: PlotlyTrace = {
    type: "heatmap",
    z,
    text,
    texttemplate: "%{text}",
    textfont: { size: 11, color: "#000" },
    hovertext: hover,
    hovertemplate: "%{hovertext}<extra></extra>",
    zmin,
    zmax: 0,
    // Red = surprising (low log p), white = middling, green = expected.
    colorscale: [
      [0, "#d73027"],
      [0.5, "#fee08b"],
      [1, "#1a9850"],
    ],
    colorbar: { title: { text: "log p" }, thickness: 12 },
    xgap: 2,
    ygap: 2,
  };
  const layout: PlotlyLayout = {
    title: titleWithNotes(options.title ?? "Per-token log-probability", notes),
    xaxis: { visible: false },
    yaxis: { visible: false, autorange: "reversed" },
    width: Math.min(1400, 120 + 66 * perLine),
    height: 110 + 26 * lines,
    margin: { t: 60, l: 10, r: 10, b: 10 },
  };
  return new Figure({ data: [trace], layout, notes });
}
