/** Figures (plain plotly objects and self-contained HTML) built from interpretability data. */
export * from "./figure.js";
export * from "./html.js";
export * from "./long-input.js";
export * from "./attention.js";
export * from "./attention-grid.js";
export * from "./head-view.js";
export * from "./lens.js";
export * from "./logprob-strip.js";
export * from "./patching.js";
