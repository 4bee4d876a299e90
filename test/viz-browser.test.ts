/**
 * Every figure's HTML rendered in headless Chromium with the network cut off.
 * Asserts the SVG is drawn and that no request tried to leave the machine;
 * screenshots go to test-artifacts/viz/ (look at them).
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { attentionHeatmap } from "../lib/viz/attention.js";
import { attentionGrid } from "../lib/viz/attention-grid.js";
import { headView } from "../lib/viz/head-view.js";
import { logitLensFigure, topKBarChart } from "../lib/viz/lens.js";
import { logProbStrip } from "../lib/viz/logprob-strip.js";
import { patchingHeatmap } from "../lib/viz/patching.js";
import { htmlPage, plotlyScriptPath } from "../lib/viz/html.js";
import type { Figure, HtmlFigure } from "../lib/viz/figure.js";
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
  beforeAll(async () => {
    ob = await launchOffline();
  });
  afterAll(async () => {
    await ob?.close();
  });

  for (const [name, build] of Object.entries(figures)) {
    it(`${name}: draws without network`, async () => {
      const fig = build();
      const page = await ob.newPage();
      const before = ob.errors.length;
      await renderFile(page, path.join(OUT, `${name}.html`), htmlPage(name, [fig.toHTML()]));
      if (name === "head-view") {
        expect(await page.locator("svg.lines text.tok").count()).toBe(2 * T);
        expect(await page.locator("svg.lines line").count()).toBeGreaterThan(T);
        // Hovering a query token keeps only its lines.
        const all = await page.locator("svg.lines line").count();
        await page.locator("svg.lines text.tok").nth(2 * 10).hover();
        const some = await page.locator("svg.lines line").count();
        expect(some).toBeGreaterThan(0);
        expect(some).toBeLessThan(all);
      } else {
        expect(await page.locator("svg.main-svg").count()).toBeGreaterThan(0);
        const kind = (fig as Figure).data[0]!.type;
        if (kind === "heatmap") expect(await page.locator("g.hm image").count()).toBe(1);
        if (kind === "bar") expect(await page.locator("g.point path").count()).toBe(5);
        // The figure says what it left out.
        for (const note of fig.notes) expect(await page.locator("svg.main-svg").first().evaluate((s) => s.parentElement!.textContent)).toContain(note.slice(0, 20));
      }
      if (name === "attention-grid") {
        // Click inside the L2 H3 tile (6 layers × 8 heads, thin gaps): the details appear under the figure.
        const box = (await page.locator("g.hm image").first().boundingBox())!;
        await page.mouse.click(box.x + box.width * (3.5 / 8), box.y + box.height * (2.5 / 6));
        await expect.poll(() => page.locator(".llama-ts-figure-info").first().textContent()).toContain("layer 2 head 3");
      }
      await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
      await page.close();
      expect(ob.errors.slice(before)).toEqual([]);
      expect(ob.blocked).toEqual([]);
    });
  }

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
