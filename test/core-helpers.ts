/** Shared helpers for the core tests: fixture paths, golden tensors, masked max |Δ|. */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import type { Tensor } from "../lib/tensor/tensor.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const HF = path.join(ROOT, "test", "fixtures", "hf");

export interface GoldenCase {
  input_ids: number[][];
  attention_mask: number[][];
}

export interface Golden {
  cases: Record<string, GoldenCase>;
  generate: { prompt: number[]; greedy: number[]; "greedy_repetition_penalty_1.3": number[] }[];
}

export function golden(name: string): { json: Golden; tensors: SafetensorsFile } {
  const dir = path.join(HF, name);
  return {
    json: JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as Golden,
    tensors: SafetensorsFile.open(path.join(dir, "golden.safetensors")),
  };
}

/**
 * max |a - b| over entries whose query position is unpadded. `tAxis` is the
 * axis holding the query position (the mask is [B][T]); axis 0 is the batch.
 * With no mask every entry counts. Shapes must match.
 */
export function maskedMaxDiff(a: Tensor, b: Tensor, mask: number[][] | undefined, tAxis: number): number {
  if (a.shape.join() !== b.shape.join()) throw new Error(`shape [${a.shape.join(", ")}] != [${b.shape.join(", ")}]`);
  const x = a.toFloat32();
  const y = b.toFloat32();
  const shape = a.shape;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  let max = 0;
  for (let i = 0; i < x.length; i++) {
    if (mask) {
      const bIdx = Math.floor(i / strides[0]!) % shape[0]!;
      const tIdx = Math.floor(i / strides[tAxis]!) % shape[tAxis]!;
      if (mask[bIdx]![tIdx] === 0) continue;
    }
    const d = Math.abs(x[i]! - y[i]!);
    if (!(d <= max)) max = d; // NaN counts as a failure
  }
  return max;
}

/** HF's repetition penalty on one row of logits (in place). */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  for (const id of new Set(seen)) {
    const s = logits[id]!;
    logits[id] = s < 0 ? s * penalty : s / penalty;
  }
}

/** First index of the maximum (torch.argmax's tie rule). */
export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}
