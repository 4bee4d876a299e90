/** Fixture access and tensor comparison for the interp tests (built on the core test helpers). */
import * as path from "node:path";
import type { SafetensorsFile } from "../lib/io/safetensors.js";
import type { Tensor } from "../lib/tensor/tensor.js";
import { golden, maskedMaxDiff, ROOT, HF, type GoldenCase } from "./core-helpers.js";

export { ROOT, type GoldenCase };
export const HF_FIXTURES = HF;
export const DEFAULT_MODEL = path.join(ROOT, "models", "tiny-stories");

export function loadGolden(name: string): { cases: Record<string, GoldenCase>; tensors: SafetensorsFile } {
  const g = golden(name);
  return { cases: g.json.cases, tensors: g.tensors };
}

/**
 * max |a − b|, skipping entries whose (batch, query position) is padding:
 * `tAxis` holds the query position; mask is [B][T]. Shapes must match.
 */
export function maxDiff(a: Tensor, b: Tensor, mask?: number[][], tAxis = 1): number {
  return maskedMaxDiff(a, b, mask, tAxis);
}
