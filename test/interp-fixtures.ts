/** Fixture access and tensor comparison for the interp tests. */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import type { Tensor } from "../lib/tensor/tensor.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const HF_FIXTURES = path.join(ROOT, "test", "fixtures", "hf");
export const DEFAULT_MODEL = path.join(ROOT, "models", "tiny-stories");

export interface GoldenCase {
  input_ids: number[][];
  attention_mask: number[][];
}

export function loadGolden(name: string): { cases: Record<string, GoldenCase>; tensors: SafetensorsFile } {
  const dir = path.join(HF_FIXTURES, name);
  const json = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as { cases: Record<string, GoldenCase> };
  return { cases: json.cases, tensors: SafetensorsFile.open(path.join(dir, "golden.safetensors")) };
}

/**
 * max |a − b|, skipping entries whose (batch, query position) is padding:
 * `tAxis` holds the query position; mask is [B][T]. Shapes must match.
 */
export function maxDiff(a: Tensor, b: Tensor, mask?: number[][], tAxis = 1): number {
  if (a.shape.join() !== b.shape.join()) throw new Error(`shape [${a.shape.join(", ")}] != [${b.shape.join(", ")}]`);
  const x = a.toFloat32();
  const y = b.toFloat32();
  const shape = a.shape;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  let max = 0;
  for (let i = 0; i < x.length; i++) {
    if (mask) {
      const bi = Math.floor(i / strides[0]!) % shape[0]!;
      const ti = Math.floor(i / strides[tAxis]!) % shape[tAxis]!;
      if (mask[bi]![ti] === 0) continue;
    }
    const d = Math.abs(x[i]! - y[i]!);
    if (!(d <= max)) max = d; // NaN fails
  }
  return max;
}
