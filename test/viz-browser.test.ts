/**
 * Every figure's HTML rendered in headless Chromium with the network cut off.
 * Asserts the SVG is drawn and that no request tried to leave the machine;
 * screenshots go to test-artifacts/viz/ (look at them).
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { Page } from "playwright-core";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { attentionHeatmap } from "../lib/viz/attention.js";
import { attentionGrid } from "../lib/viz/attention-grid.js";
import { headView } from "../lib/viz/head-view.js";
import { logitLensFigure, topKBarChart } from "../lib/viz/lens.js";
import { logProbStrip } from "../lib/viz/logprob-strip.js";
import { patchingHeatmap } from "../lib/viz/patching.js";
import { htmlPage, plotlyScriptPath, resetPlotlyInlining } from "../lib/viz/html.js";
import { HtmlFigure, type Figure } from "../lib/viz/figure.js";
import { summarizeLens } from "../lib/interp/lens-summary.js";
import { tokenLogProbs } from "../lib/interp/logprobs.js";
import { summarizeHeads } from "../lib/interp/heads.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { seededRandom } from "../lib/interp/math.js";
import { syntheticPattern, syntheticTokens } from "./viz-synthetic.js";
import { chromiumAvailable, launchOffline, renderFile, type OfflineBrowser } from "./viz-browser.js";

const OUT = path.resolve("test-artifacts/viz");

function randomLogits(T: number, V: number, seed: number): Tensor {
  const r = seededRandom(seed);
  return new Tensor(Float32Array.from({ length: T * V }, () => (r() - 0.5) * 8), [1, T, V]);
}

const T = 20;
const tokens = syntheticTokens(T);
const ids = Array.from({ length: T }, (_, i) => (i * 7) % 50);
const layers = Array.from({ length: 6 }, (_, l) => syntheticPattern(1, 8, T, 100 + l, { prevHead: l % 8 }));
const vocabText = (id: number) => (id === 0 ? "<s>" : `▁w${id}`);
const heads = summarizeHeads(layers, ids);
const lens = summarizeLens(Array.from({ length: 7 }, (_, l) => randomLogits(T, 50, l)), ids, { k: 5, target: "next", labels: ["embed", ...Array.from({ length: 6 }, (_, l) => `layer ${l}`)] });

const figures: Record<string, () => Figure | HtmlFigure> = {
  "attention-heatmap": () => attentionHeatmap(layers[1]!, { layer: 1, head: 1, tokens }),
  "attention-heatmap-long": () => attentionHeatmap(syntheticPattern(1, 1, 600, 5, { prevHead: 0 }), { head: 0, tokens: syntheticTokens(600) }),
  "attention-grid": () => attentionGrid(layers, { tokens, headInfo: { "prev-token": heads.previousToken, entropy: heads.entropy } }),
  "head-view": () => headView(layers, { tokens, layer: 2 }),
  "logit-lens": () => logitLensFigure(lens, { tokenText: vocabText }),
  "topk-bar": () => topKBarChart({ ids: [3, 0, 17, 9, 42], probs: [0.41, 0.22, 0.1, 0.05, 0.02] }, { tokenText: vocabText }),
  "logprob-strip": () => logProbStrip(tokenLogProbs(randomLogits(T, 50, 9), ids), { tokens }),
  "patching-heatmap": () =>
    patchingHeatmap({
      values: Array.from({ length: 6 }, (_, l) => Array.from({ length: T }, (_, t) => (t === T - 1 ? l / 5 : t === 5 ? 1 - l / 5 : 0.02 * Math.sin(l + t)))),
      rowLabels: Array.from({ length: 6 }, (_, l) => `layer ${l}`),
      colLabels: tokens,
      site: "resid_pre",
      metric: "logit diff",
    }),
};

describe.skipIf(!chromiumAvailable())("figures render offline in headless Chromium", () => {
  let ob: OfflineBrowser;
  let page: Page;
  const built = Object.fromEntries(Object.entries(figures).map(([name, build]) => [name, build()]));
  beforeAll(async () => {
    ob = await launchOffline();
    // One page holding every figure, as a notebook does: plotly.js inline in the first output only.
    resetPlotlyInlining();
    const fragments = Object.entries(built).map(([name, fig]) => `<section id="fig-${name}">${fig instanceof HtmlFigure ? fig.html : fig.toHTML({ inlinePlotly: "once" })}</section>`);
    page = await ob.newPage();
    await renderFile(page, path.join(OUT, "all-figures.html"), htmlPage("all figures", fragments));
    // Every figure marks itself drawn (data-rendered) once plotly.js has run its draw.
    await page.waitForFunction(`document.querySelectorAll("[data-rendered='1']").length === ${fragments.length}`, undefined, { timeout: 60_000 });
  });
  afterAll(async () => {
    await ob?.close();
  });

  for (const name of Object.keys(figures)) {
    it(`${name}: draws without network`, async () => {
      const fig = built[name]!;
      const section = page.locator(`#fig-${name}`);
      if (fig instanceof HtmlFigure) {
        expect(await section.locator("svg.lines text.tok").count()).toBe(2 * T);
        expect(await section.locator("svg.lines line").count()).toBeGreaterThan(T);
        // Hovering a query token keeps only its lines.
        const all = await section.locator("svg.lines line").count();
        await section.locator("svg.lines text.tok").nth(2 * 10).hover();
        const some = await section.locator("svg.lines line").count();
        expect(some).toBeGreaterThan(0);
        expect(some).toBeLessThan(all);
        await page.mouse.move(0, 0);
      } else {
        expect(await section.locator("svg.main-svg").count()).toBeGreaterThan(0);
        const kind = fig.data[0]!.type;
        if (kind === "heatmap") expect(await section.locator("g.hm image").count()).toBe(1);
        if (kind === "bar") expect(await section.locator("g.point path").count()).toBe(5);
        // The figure says what it left out.
        for (const note of fig.notes) expect(await section.textContent()).toContain(note.slice(0, 20));
      }
      if (name === "attention-grid") {
        // Click inside the L2 H3 tile (6 layers × 8 heads, thin gaps): the details appear under the figure.
        await section.scrollIntoViewIfNeeded();
        const box = (await section.locator("g.hm image").first().boundingBox())!;
        await page.mouse.click(box.x + box.width * (3.5 / 8), box.y + box.height * (2.5 / 6));
        await expect.poll(() => section.locator(".llama-ts-figure-info").first().textContent()).toContain("layer 2 head 3");
      }
      await section.screenshot({ path: path.join(OUT, `${name}.png`) });
      expect(ob.errors).toEqual([]);
      expect(ob.blocked).toEqual([]);
    });
  }

  it("a standalone figure file (toHTML: plotly.js inline) draws on its own", async () => {
    const p = await ob.newPage();
    await renderFile(p, path.join(OUT, "standalone.html"), htmlPage("standalone", [(built["attention-heatmap"] as Figure).toHTML()]));
    expect(await p.locator("g.hm image").count()).toBe(1);
    await p.close();
    expect(ob.blocked).toEqual([]);
  });

  it("two figures on one page share plotly.js loaded from a local URL", async () => {
    const url = pathToFileURL(plotlyScriptPath()).href;
    const a = figures["topk-bar"]!() as Figure;
    const b = figures["logit-lens"]!() as Figure;
    const page = await ob.newPage();
    await renderFile(page, path.join(OUT, "shared-url.html"), htmlPage("shared", [a.toHTML({ plotlyScriptUrl: url }), b.toHTML({ plotlyScriptUrl: url })]));
    await expect.poll(() => page.locator("[data-rendered='1']").count()).toBe(2);
    expect(await page.locator("svg.main-svg").count()).toBeGreaterThanOrEqual(2);
    await page.close();
    expect(ob.blocked).toEqual([]);
  });

  it("notebook mode: plotly.js inline once; a figure drawn before it arrives waits, then draws", async () => {
    resetPlotlyInlining();
    const first = (figures["topk-bar"]!() as Figure).toHTML({ inlinePlotly: "once" });
    const later = (figures["patching-heatmap"]!() as Figure).toHTML({ inlinePlotly: "once" });
    expect(later.length).toBeLessThan(first.length / 10);
    const page = await ob.newPage();
    // The later output comes first on the page, so it must wait for window.Plotly.
    await renderFile(page, path.join(OUT, "inline-once.html"), htmlPage("once", [later, first]));
    await expect.poll(() => page.locator("[data-rendered='1']").count()).toBe(2);
    await page.close();
    expect(ob.blocked).toEqual([]);
  });

  it("the guard itself catches a page that reaches for the network", async () => {
    const page = await ob.newPage();
    const n = ob.blocked.length;
    const html = `<html><body><script src="https://cdn.example.invalid/plotly.js"></script><div data-rendered="1"></div></body></html>`;
    await renderFile(page, path.join(OUT, "guard.html"), html);
    await page.close();
    expect(ob.blocked.slice(n)).toEqual(["https://cdn.example.invalid/plotly.js"]);
    ob.blocked.splice(n);
    ob.errors.length = 0;
  });
});
