/**
 * Interpretability benchmark. Prints two tables:
 *  1. runWithCache on the default model (models/tiny-stories) for 512 tokens
 *     with every hook point captured: time and memory, next to a plain forward.
 *  2. The attention grid figure for 6 layers × 8 heads × 128 tokens: time to
 *     build the figure object, and to render it in headless Chromium (offline).
 *
 * Run: node --import tsx bench/interp-bench.ts [--device cpu|webgpu] [--tokens 512] [--repeats 3]
 */
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import "../gpu/register.js"; // device "webgpu" for lib
import { runWithCache } from "../lib/interp/run.js";
import { hookPointNames } from "../lib/interp/hook-points.js";
import { attentionGrid } from "../lib/viz/attention-grid.js";
import { htmlPage, plotlyScriptPath } from "../lib/viz/html.js";
import { seededRandom } from "../lib/interp/math.js";
import { chromiumAvailable, launchOffline, renderFile } from "../test/viz-browser.js";

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const device = flag("device", "cpu") as "cpu" | "webgpu";
const T = Number(flag("tokens", "512"));
const repeats = Number(flag("repeats", "3"));
const MiB = (b: number) => (b / 2 ** 20).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`# interp bench: node --import tsx bench/interp-bench.ts ${process.argv.slice(2).join(" ")}`);
console.log(`machine: ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}, ${MiB(os.totalmem())} MiB RAM, node ${process.version}, ${os.platform()} ${os.release()}`);

const model = await LlamaForCausalLM.fromPretrained(path.resolve("models/tiny-stories"), { device });
console.log(`model: models/tiny-stories on ${model.backend.description}`);
const rand = seededRandom(0);
const ids = [1, ...Array.from({ length: T - 1 }, () => 3 + Math.floor(rand() * (model.config.vocab_size - 3)))];

// Warm-up (first-call allocations, JIT).
await model.forward({ inputIds: [ids], useCache: false });
const plain: number[] = [];
const cached: number[] = [];
let cacheBytes = 0;
let captured = 0;
let rssPeak = 0;
for (let r = 0; r < repeats; r++) {
  let t0 = performance.now();
  await model.forward({ inputIds: [ids], useCache: false });
  plain.push(performance.now() - t0);
  const rssBefore = process.memoryUsage().rss;
  t0 = performance.now();
  const { cache } = await runWithCache(model, [ids]);
  cached.push(performance.now() - t0);
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss - rssBefore);
  cacheBytes = cache.memoryBytes();
  captured = cache.size;
}
console.log(`\n## runWithCache, ${T} tokens, all ${hookPointNames(model.config.num_hidden_layers).length} hook points (median of ${repeats})`);
console.log("| run | time (ms) | cache size (MiB) | RSS growth (MiB) |");
console.log("| --- | ---: | ---: | ---: |");
console.log(`| forward, no hooks | ${median(plain).toFixed(0)} | – | – |`);
console.log(`| runWithCache (${captured} activations) | ${median(cached).toFixed(0)} | ${MiB(cacheBytes)} | ${MiB(rssPeak)} |`);
console.log(`overhead of capturing everything: ${(median(cached) / median(plain)).toFixed(2)}×`);

// ---- attention grid 6 × 8 × 128
const G = 128;
const { cache } = await runWithCache(model, [ids.slice(0, G)], { names: "layers.*.self_attn.pattern" });
const patterns = cache.allLayers("self_attn.pattern");
const tokens = ids.slice(0, G).map((id) => `t${id}`);
const builds: number[] = [];
let fig = attentionGrid(patterns, { tokens });
for (let r = 0; r < repeats; r++) {
  const t0 = performance.now();
  fig = attentionGrid(patterns, { tokens });
  builds.push(performance.now() - t0);
}
console.log(`\n## attention grid: ${patterns.length} layers × ${patterns[0]!.shape[1]} heads × ${G} tokens (median of ${repeats})`);
console.log("| step | time (ms) |");
console.log("| --- | ---: |");
console.log(`| build figure object | ${median(builds).toFixed(0)} |`);
if (!chromiumAvailable()) {
  console.log("| render | (skipped: /usr/bin/chromium not found) |");
} else {
  const ob = await launchOffline();
  const page = await ob.newPage();
  const plotlyUrl = pathToFileURL(plotlyScriptPath()).href;
  // Plotly.newPlot alone, plotly.js already loaded on the page.
  const renders: number[] = [];
  await renderFile(page, path.resolve("test-artifacts/bench/grid.html"), htmlPage("grid", [fig.toHTML({ plotlyScriptUrl: plotlyUrl })]));
  for (let r = 0; r < repeats; r++) {
    // A string, so this file needs no DOM types: draw into a fresh div and time Plotly.newPlot.
    const ms = (await page.evaluate(`(async (f) => {
      const div = document.createElement("div");
      document.body.appendChild(div);
      const t0 = performance.now();
      await window.Plotly.newPlot(div, f.data, f.layout, f.config);
      const dt = performance.now() - t0;
      window.Plotly.purge(div);
      div.remove();
      return dt;
    })(${JSON.stringify(fig.toJSON())})`)) as number;
    renders.push(ms);
  }
  // The whole self-contained HTML (plotly.js inline) from navigation to drawn.
  const page2 = await ob.newPage();
  const full: number[] = [];
  for (let r = 0; r < repeats; r++) full.push(await renderFile(page2, path.resolve("test-artifacts/bench/grid-inline.html"), htmlPage("grid", [fig.toHTML()])));
  await ob.close();
  console.log(`| Plotly.newPlot in headless Chromium | ${median(renders).toFixed(0)} |`);
  console.log(`| build + newPlot | ${(median(builds) + median(renders)).toFixed(0)} |`);
  console.log(`| whole page incl. parsing the inline 4.8 MB plotly.js | ${median(full).toFixed(0)} |`);
  if (ob.blocked.length) console.log(`WARNING: blocked network requests: ${ob.blocked.join(", ")}`);
}
model.backend.dispose?.();
process.exit(0);
