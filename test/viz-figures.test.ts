import { describe, it, expect } from "vitest";
import { Tensor } from "../lib/tensor/tensor.js";
import { InputError } from "../lib/errors.js";
import { attentionHeatmap } from "../lib/viz/attention.js";
import { attentionGrid } from "../lib/viz/attention-grid.js";
import { headView } from "../lib/viz/head-view.js";
import { logitLensFigure, topKBarChart } from "../lib/viz/lens.js";
import { logProbStrip } from "../lib/viz/logprob-strip.js";
import { patchingHeatmap } from "../lib/viz/patching.js";
import { PLOTLY_MIME, layoutTitle, type Figure } from "../lib/viz/figure.js";
import { htmlWithPlotly, jsonForScript, plotlyScriptSource, resetPlotlyInlining, setFigureHtmlDefaults } from "../lib/viz/html.js";
import { planAxis, reduceMatrix } from "../lib/viz/long-input.js";
import { summarizeLens } from "../lib/interp/lens-summary.js";
import { tokenLogProbs } from "../lib/interp/logprobs.js";
import { syntheticPattern, syntheticTokens } from "./viz-synthetic.js";

const z2 = (fig: Figure, i = 0) => fig.data[i]!["z"] as number[][];

describe("attention heatmap", () => {
  it("holds one head's weights with escaped, unique token labels", () => {
    const T = 12;
    const p = syntheticPattern(2, 3, T, 7);
    const tokens = syntheticTokens(T);
    const fig = attentionHeatmap(p, { head: 2, layer: 4, batch: 1, tokens });
    const z = z2(fig);
    expect(z.length).toBe(T);
    expect(z[0]!.length).toBe(T);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < T; j++) expect(z[t]![j]).toBeCloseTo(p.get(1, 2, t, j), 4);
      expect(z[t]!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 3);
    }
    const x = fig.data[0]!["x"] as string[];
    expect(x[0]).toBe("0 &lt;s&gt;");
    expect(new Set(x).size).toBe(T);
    expect(layoutTitle(fig.layout)).toContain("layer 4 head 2");
    expect((fig.layout["yaxis"] as Record<string, unknown>)["autorange"]).toBe("reversed");
    expect(fig.notes).toEqual([]);
  });

  it("aggregates long inputs into block means and says so", () => {
    const T = 600;
    const p = syntheticPattern(1, 1, T, 3);
    const fig = attentionHeatmap(p, { head: 0, tokens: syntheticTokens(T) });
    const z = z2(fig);
    expect(z.length).toBe(200); // blocks of 3
    let s = 0;
    for (let i = 3; i < 6; i++) for (let j = 0; j < 3; j++) s += p.get(0, 0, i, j);
    expect(z[1]![0]).toBeCloseTo(s / 9, 4);
    expect(fig.notes[0]).toContain("600 tokens aggregated");
    expect(layoutTitle(fig.layout)).toContain("block of 3 tokens");
    expect((fig.data[0]!["x"] as string[])[1]).toBe("3–5");
  });

  it("windows long inputs when asked", () => {
    const T = 300;
    const p = syntheticPattern(1, 1, T, 3);
    const fig = attentionHeatmap(p, { head: 0, tokens: syntheticTokens(T), longInput: "window" });
    const z = z2(fig);
    expect(z.length).toBe(256);
    expect(z[0]![0]).toBeCloseTo(p.get(0, 0, 44, 44), 4);
    expect(fig.notes[0]).toContain("44–299 of 300");
  });

  it("rejects mismatched labels and bad heads", () => {
    const p = syntheticPattern(1, 2, 5, 1);
    expect(() => attentionHeatmap(p, { head: 0, tokens: syntheticTokens(4) })).toThrow(InputError);
    expect(() => attentionHeatmap(p, { head: 2, tokens: syntheticTokens(5) })).toThrow(/head 2 out of range/);
    expect(() => attentionHeatmap(new Tensor(new Float32Array(4), [2, 2]), { head: 0, tokens: [] })).toThrow(/\[B, heads, T, S\]/);
  });
});

describe("attention grid", () => {
  it("tiles layers × heads into one heatmap with gaps, labels and click info", () => {
    const L = 3, H = 4, T = 10;
    const patterns = Array.from({ length: L }, (_, l) => syntheticPattern(1, H, T, 10 + l));
    const prev = patterns.map((_, l) => Array.from({ length: H }, (_, h) => l + h / 10));
    const fig = attentionGrid(patterns, { tokens: syntheticTokens(T), headInfo: { "prev-token": prev } });
    expect(fig.data.length).toBe(1);
    const tr = fig.data[0]!;
    const z = tr["z"] as (number | null)[][];
    const x = tr["x"] as string[];
    const y = tr["y"] as string[];
    // One gap row/column between tiles (T/16 rounds to 1).
    expect(z.length).toBe(L * T + (L - 1));
    expect(z[0]!.length).toBe(H * T + (H - 1));
    expect(new Set(x).size).toBe(x.length);
    expect(new Set(y).size).toBe(y.length);
    // Layer 2, head 3, query 5, key 2 lives at row 2*(T+1)+5, column 3*(T+1)+2.
    const r = 2 * (T + 1) + 5, c = 3 * (T + 1) + 2;
    expect(z[r]![c]).toBeCloseTo(patterns[2]!.get(0, 3, 5, 2), 4);
    expect(y[r]).toBe("L2 q5 ,");
    expect(x[c]).toBe("H3 k2 ▁upon");
    expect(z[T]![0]).toBeNull(); // the gap row after layer 0
    expect(z[0]![T]).toBeNull(); // the gap column after head 0
    const meta = tr["meta"] as { rowLayer: number[]; colHead: number[]; info: Record<string, string> };
    expect(meta.rowLayer[r]).toBe(2);
    expect(meta.colHead[c]).toBe(3);
    expect(meta.info["2,3"]).toBe("prev-token 2.300");
    expect(fig.script).toContain("plotly_click");
    expect(fig.notes).toEqual([]);
  });

  it("reduces cells beyond 128 tokens and notes it; rejects layers of different shapes", () => {
    const patterns = [syntheticPattern(1, 2, 200, 1), syntheticPattern(1, 2, 200, 2)];
    const fig = attentionGrid(patterns, { tokens: syntheticTokens(200) });
    const gap = Math.round(100 / 16);
    expect((fig.data[0]!["z"] as number[][]).length).toBe(2 * 100 + gap);
    expect(layoutTitle(fig.layout)).toContain("aggregated");
    expect(() => attentionGrid([patterns[0]!, syntheticPattern(1, 3, 200, 1)], { tokens: syntheticTokens(200) })).toThrow(/layer 1/);
  });
});

describe("head view", () => {
  it("ships sparse weights and inline JS, nothing external", () => {
    const T = 9;
    const patterns = [syntheticPattern(1, 2, T, 1, { prevHead: 1 }), syntheticPattern(1, 2, T, 2)];
    const fig = headView(patterns, { tokens: syntheticTokens(T), threshold: 0.05 });
    const json = fig.html.match(/var D = (\{.*?\});\n/s)![1]!;
    const D = JSON.parse(json) as { tokens: string[]; weights: number[][][][] };
    expect(D.tokens.length).toBe(T);
    expect(D.weights.length).toBe(2);
    // Head 1 of layer 0 is a planted previous-token head: query 4's strongest key is 3.
    const row = D.weights[0]![1]![4]!;
    expect(row[0]).toBe(3);
    expect(row[1]).toBeGreaterThan(0.99);
    for (let i = 1; i < row.length; i += 2) expect(row[i]).toBeGreaterThanOrEqual(0.05);
    expect(fig.html).not.toMatch(/<script[^>]+src=/);
    expect(fig.html.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, "")).not.toMatch(/https?:\/\//);
    expect(fig.html).not.toContain("</s>\""); // tokens go through jsonForScript
    expect(fig._repr_mimebundle_()["text/html"]).toBe(fig.html);
  });

  it("windows long inputs and requires T == S", () => {
    const fig = headView([syntheticPattern(1, 1, 150, 1)], { tokens: syntheticTokens(150), maxTokens: 100 });
    expect(fig.notes[0]).toContain("showing tokens 50–149 of 150");
    const p = new Tensor(new Float32Array(1 * 1 * 2 * 3), [1, 1, 2, 3]);
    expect(() => headView([p], { tokens: syntheticTokens(3) })).toThrow(/T == S/);
  });
});

/** Synthetic per-layer logits [1, T, V] whose argmax at (layer, t) is (t + layer) % V. */
function lensLogits(L: number, T: number, V: number): Tensor[] {
  return Array.from({ length: L }, (_, l) => {
    const d = new Float32Array(T * V);
    for (let t = 0; t < T; t++) d[t * V + ((t + l) % V)] = 2 + l;
    return new Tensor(d, [1, T, V]);
  });
}

describe("logit lens figure", () => {
  it("colours cells by the top token's probability and writes the token", () => {
    const L = 3, T = 5, V = 7;
    const ids = [0, 1, 2, 3, 4];
    const lens = summarizeLens(lensLogits(L, T, V), ids, { k: 3, target: "next", labels: ["embed", "layer 0", "layer 1"] });
    const fig = logitLensFigure(lens, { tokenText: (id) => `t${id}` });
    const z = z2(fig);
    expect(z.length).toBe(L);
    const pTop = Math.exp(3) / (Math.exp(3) + V - 1);
    expect(z[1]![2]).toBeCloseTo(pTop, 6);
    expect((fig.data[0]!["text"] as string[][])[1]![2]).toBe("t3");
    expect(fig.data[0]!["y"]).toEqual(["embed", "layer 0", "layer 1"]);
    expect((fig.data[0]!["x"] as string[])[4]).toBe("4 t4");
    expect((fig.data[0]!["hovertext"] as string[][])[0]![0]).toContain("target t1");
    const byTarget = logitLensFigure(lens, { tokenText: String, colorBy: "target" });
    // Layer 0 at t=0: argmax is token 0 (logit 2), the target (next input id 1) has logit 0.
    expect(z2(byTarget)[0]![0]).toBeCloseTo(1 / (Math.exp(2) + V - 1), 6);
  });

  it("windows many positions", () => {
    const lens = summarizeLens(lensLogits(2, 60, 11), Array.from({ length: 60 }, (_, i) => i % 11), { k: 2 });
    const fig = logitLensFigure(lens, { tokenText: String, maxPositions: 20 });
    expect((fig.data[0]!["x"] as string[]).length).toBe(20);
    expect((fig.data[0]!["x"] as string[])[0]).toMatch(/^40 /);
    expect(fig.notes[0]).toContain("40–59 of 60");
  });
});

describe("top-k bar chart and log-prob strip", () => {
  it("orders bars as given with probabilities as text", () => {
    const fig = topKBarChart({ ids: [5, 9, 2], probs: [0.5, 0.3, 0.1] }, { tokenText: (id) => (id === 5 ? "<s>" : `w${id}`) });
    expect(fig.data[0]!["y"]).toEqual(["1. &lt;s&gt;", "2. w9", "3. w2"]);
    expect(fig.data[0]!["text"]).toEqual(["50.0%", "30.0%", "10.0%"]);
    expect(() => topKBarChart({ ids: [1], probs: [] }, { tokenText: String })).toThrow(InputError);
  });

  it("wraps tokens into lines coloured by log-prob", () => {
    const T = 7, V = 5;
    const d = new Float32Array(T * V).map((_, i) => Math.sin(i));
    const logits = new Tensor(d, [1, T, V]);
    const ids = [1, 2, 3, 4, 0, 1, 2];
    const lp = tokenLogProbs(logits, ids);
    const fig = logProbStrip(lp, { tokens: syntheticTokens(T), perLine: 3 });
    const z = z2(fig);
    expect(z.length).toBe(3);
    expect(z[0]![0]).toBeNull();
    expect(z[1]![1]).toBeCloseTo(lp.logProbs[4]!, 10);
    expect(z[2]![1]).toBeNull(); // past the end
    expect(fig.data[0]!["zmax"]).toBe(0);
    expect(fig.data[0]!["zmin"] as number).toBeLessThanOrEqual(-8);
  });
});

describe("patching heatmap", () => {
  it("uses a symmetric diverging scale centred on 0", () => {
    const fig = patchingHeatmap({ values: [[0, 0.5, -1.5], [1, 0.2, 0]], rowLabels: ["layer 0", "layer 1"], colLabels: ["<s>", "a", "b"], site: "resid_pre", metric: "logit diff" });
    const t = fig.data[0]!;
    expect(t["zmid"]).toBe(0);
    expect(t["zmin"]).toBe(-1.5);
    expect(t["zmax"]).toBe(1.5);
    expect(t["x"]).toEqual(["0 &lt;s&gt;", "1 a", "2 b"]);
    expect(() => patchingHeatmap({ values: [[0]], rowLabels: ["a", "b"], colLabels: ["x"], site: "s", metric: "m" })).toThrow(/1 rows/);
  });
});

describe("MIME bundle and HTML", () => {
  const fig = topKBarChart({ ids: [1, 2], probs: [0.6, 0.4] }, { tokenText: (id) => `</script><b>${id}` });

  it("carries plotly JSON and self-contained HTML with the local plotly.js inline (once per process by default)", () => {
    setFigureHtmlDefaults({});
    resetPlotlyInlining();
    const b = fig._repr_mimebundle_();
    const second = fig._repr_mimebundle_()["text/html"] as string;
    expect(second.length).toBeLessThan(20_000); // later figures wait for window.Plotly
    expect(second).toContain("__llamaTsPlotlyReady");
    expect(fig.toHTML().length).toBeGreaterThan(plotlyScriptSource().length); // standalone HTML always inlines
    const pj = b[PLOTLY_MIME] as { data: unknown[]; layout: Record<string, unknown> };
    expect(pj.data).toBe(fig.data);
    expect(pj.layout).toBe(fig.layout);
    const html = b["text/html"] as string;
    expect(html.length).toBeGreaterThan(plotlyScriptSource().length);
    expect(html).toContain("plotly.js v");
    expect(html).not.toMatch(/<script[^>]+src=/);
    // A token that spells "</script>" must not close the figure's script.
    expect(html.split("<script").length).toBe(html.split("</script>").length);
    expect(html).not.toContain("</script><b>");
    expect(html.includes("\\u0026lt;/script\\u0026gt;\\u0026lt;b\\u0026gt;1")).toBe(true);
    expect(typeof b["text/plain"]).toBe("string");
  });

  it("loads plotly.js from a given local URL instead when configured", () => {
    setFigureHtmlDefaults({ plotlyScriptUrl: "/files/plotly.min.js" });
    try {
      const html = fig._repr_mimebundle_()["text/html"] as string;
      expect(html.length).toBeLessThan(20_000);
      expect(html).toContain('"/files/plotly.min.js"');
    } finally {
      setFigureHtmlDefaults({});
    }
    expect(htmlWithPlotly(fig, { inlinePlotly: false }).length).toBeLessThan(20_000);
  });

  it("escapes script-breaking text in JSON", () => {
    expect(jsonForScript({ a: "</script><!--\u2028" })).toBe('{"a":"\\u003c/script\\u003e\\u003c!--\\u2028"}');
  });
});

describe("long-input plans", () => {
  it("block means and windows", () => {
    expect(planAxis(10, 20).note).toBe("");
    const p = planAxis(10, 4);
    expect(p.starts).toEqual([0, 3, 6, 9]);
    expect(p.ends).toEqual([3, 6, 9, 10]);
    const m = Array.from({ length: 100 }, (_, i) => i);
    const r = reduceMatrix(m, 10, p, p);
    expect(r[3]![3]).toBe(99);
    expect(r[0]![0]).toBe((0 + 1 + 2 + 10 + 11 + 12 + 20 + 21 + 22) / 9);
    expect(planAxis(10, 4, "window", 2).starts).toEqual([2, 3, 4, 5]);
    expect(() => planAxis(10, 0)).toThrow(InputError);
  });
});
