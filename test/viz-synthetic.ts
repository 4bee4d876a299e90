/**
 * Synthetic attention data for the figure tests (no model needed): causal
 * softmax patterns from a seeded PRNG, with a planted previous-token head and
 * a planted induction head so detector tests have a known answer.
 */
import { Tensor } from "../lib/tensor/tensor.js";
import { seededRandom } from "../lib/interp/math.js";

/** [B, H, T, T] causal softmax patterns of random scores; head `prevHead` attends (almost) only to t-1. */
export function syntheticPattern(B: number, H: number, T: number, seed = 1, opts: { prevHead?: number; inductionHead?: number; tokens?: number[] } = {}): Tensor {
  const rand = seededRandom(seed);
  const data = new Float32Array(B * H * T * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const row = new Float64Array(t + 1);
        for (let j = 0; j <= t; j++) row[j] = rand() * 2;
        if (h === opts.prevHead && t >= 1) row[t - 1] = 20;
        if (h === opts.inductionHead && opts.tokens) {
          // Attend to the token after an earlier occurrence of the current token.
          for (let j = 0; j + 1 <= t; j++) if (j < t && opts.tokens[j] === opts.tokens[t]) row[j + 1] = 20;
        }
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let s = 0;
        for (let j = 0; j <= t; j++) s += Math.exp(row[j]! - max);
        for (let j = 0; j <= t; j++) data[((b * H + h) * T + t) * T + j] = Math.exp(row[j]! - max) / s;
      }
    }
  }
  return new Tensor(data, [B, H, T, T], "f32");
}

export const WORDS = ["<s>", "▁Once", "▁upon", "▁a", "▁time", ",", "▁there", "▁was", "▁a", "▁little", "▁girl", "▁named", "▁Lily", ".", "▁She", "▁loved", "▁to", "▁play", "</s>", "▁&", "<b>"];

/** T display tokens cycling through WORDS (includes "<s>", "&" and "<b>" to exercise escaping). */
export function syntheticTokens(T: number): string[] {
  return Array.from({ length: T }, (_, i) => WORDS[i % WORDS.length]!);
}
