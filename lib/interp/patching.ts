/**
 * Activation patching (causal tracing): run a corrupted prompt, but at one
 * place (a layer's residual stream at one position, or one head's output)
 * put back the activation from the clean prompt, and measure how much of the
 * clean behaviour that restores:
 *
 *   effect = (metric(patched) − metric(corrupted)) / (metric(clean) − metric(corrupted))
 *
 * 1 = this activation alone carries the difference; 0 = it carries none.
 */
import { InputError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import type { PatchingGrid } from "../viz/patching.js";
import { actName, residPreName } from "./hook-points.js";
import { patchActivation } from "./interventions.js";
import { positionRow } from "./math.js";
import { runWithCache, runWithHooks, type HookableModel } from "./run.js";
import type { OnProgress } from "../progress.js";

/** Where to patch: residual stream points, a block's output, or per-head outputs (z). */
export type PatchSite = "resid_pre" | "resid_mid" | "resid_post" | "attn_out" | "mlp_out" | "z";

/** A scalar read from a forward pass's logits [B, T, V]; higher = "more clean-like". */
export type PatchMetric = (logits: Tensor) => number;

/** logit(a) − logit(b) at a position (default the last) of batch row 0. */
export function logitDiffMetric(a: number, b: number, position = -1): PatchMetric {
  return (logits) => {
    const T = logits.shape[1]!;
    const row = positionRow(logits, 0, position < 0 ? T + position : position);
    return row[a]! - row[b]!;
  };
}

export interface PatchingOptions {
  clean: readonly number[];
  corrupted: readonly number[];
  metric: PatchMetric;
  /** Default "resid_pre". */
  site?: PatchSite;
  /** Positions to sweep (default all). For "z", heads are patched at all positions unless `perPosition`. */
  positions?: readonly number[];
  /** For site "z": sweep positions too (rows stay heads). Default false. */
  perPosition?: boolean;
  /** Called after each patched run: (runs done, runs in all, { unit: "items", label: the patched site, e.g. "L1 resid_post @9" }). */
  onProgress?: OnProgress;
  /** Display strings of the clean tokens (column labels; default the ids). */
  tokens?: readonly string[];
  /** Name of the metric for the figure (default "metric"). */
  metricName?: string;
}

export interface PatchingResult extends PatchingGrid {
  /** metric(clean), metric(corrupted): the two ends of the normalization. */
  cleanMetric: number;
  corruptedMetric: number;
  /** Un-normalized metric of every patched run, same layout as `values`. */
  raw: number[][];
  /** The absolute positions of the columns (empty for one "all positions" column). */
  positions: number[];
}

/** The hook point name of a site at a layer. */
export function siteName(site: PatchSite, layer: number): string {
  switch (site) {
    case "resid_pre": return residPreName(layer);
    case "resid_mid": return actName("resid_mid", layer);
    case "resid_post": return actName("resid_post", layer);
    case "attn_out": return actName("self_attn.o_proj", layer);
    case "mlp_out": return actName("mlp.down_proj", layer);
    case "z": return actName("self_attn.z", layer);
  }
}

/** Sweeps a patch over layers (× heads for "z") × positions and returns the normalized effects. */
export async function activationPatching(model: HookableModel, options: PatchingOptions): Promise<PatchingResult> {
  const { clean, corrupted, metric } = options;
  const site = options.site ?? "resid_pre";
  if (clean.length !== corrupted.length) {
    throw new InputError(`activation patching: clean has ${clean.length} tokens, corrupted ${corrupted.length}; they must line up position by position`);
  }
  const T = clean.length;
  const L = model.config.num_hidden_layers;
  const names = Array.from({ length: L }, (_, l) => siteName(site, l));
  const { logits: cleanLogits, cache } = await runWithCache(model, [clean], { names });
  const corruptedLogits = (await runWithHooks(model, [corrupted], [])).logits;
  const cleanMetric = metric(cleanLogits);
  const corruptedMetric = metric(corruptedLogits);
  const span = cleanMetric - corruptedMetric;
  if (!Number.isFinite(span) || span === 0) {
    throw new InputError(`activation patching: the metric is ${cleanMetric} on both clean and corrupted inputs, so there is nothing to restore`);
  }

  const headRows = site === "z";
  const sweepPositions = !headRows || options.perPosition === true;
  const positions = sweepPositions ? (options.positions ? [...options.positions] : Array.from({ length: T }, (_, t) => t)) : [];
  for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= T) throw new InputError(`activation patching: position ${p} out of range 0..${T - 1}`);
  const n = model.config.num_attention_heads;
  const rows = headRows ? Array.from({ length: L * n }, (_, i) => ({ layer: Math.floor(i / n), head: i % n })) : Array.from({ length: L }, (_, l) => ({ layer: l, head: -1 }));
  const cols: (number | undefined)[] = sweepPositions ? positions : [undefined];
  const total = rows.length * cols.length;
  const raw: number[][] = [];
  let done = 0;
  for (const row of rows) {
    const out: number[] = [];
    for (const col of cols) {
      const name = names[row.layer]!;
      const spec = patchActivation(name, cache.get(name), {
        ...(col !== undefined ? { positions: [col] } : {}),
        ...(row.head >= 0 ? { heads: [row.head] } : {}),
      });
      out.push(metric((await runWithHooks(model, [corrupted], [spec])).logits));
      const where = row.head >= 0 ? `L${row.layer} H${row.head}` : `L${row.layer} ${site}`;
      options.onProgress?.(++done, total, { unit: "items", label: col === undefined ? where : `${where} @${col}` });
    }
    raw.push(out);
  }
  const ids = options.tokens ?? clean.map(String);
  return {
    values: raw.map((r) => r.map((m) => (m - corruptedMetric) / span)),
    raw,
    rowLabels: rows.map((r) => (r.head >= 0 ? `L${r.layer} H${r.head}` : `L${r.layer} ${site}`)),
    colLabels: sweepPositions ? positions.map((p) => ids[p] ?? String(p)) : ["all positions"],
    positions,
    site,
    metric: options.metricName ?? "metric",
    cleanMetric,
    corruptedMetric,
  };
}
