/** Interpretability: hooks, activation cache, logit lens, attributions, head detectors, patching. */
export * from "./hook-points.js";
export * from "./cache.js";
export * from "./run.js";
export * from "./interventions.js";
export { logSoftmaxRow, entropyOfLogits, rankOf, headSlab, positionRow, seededRandom, cloneTensor } from "./math.js";
export * from "./logprobs.js";
export * from "./lens-summary.js";
export * from "./logit-lens.js";
export * from "./attribution.js";
export * from "./heads.js";
export * from "./detect.js";
export * from "./patching.js";
