/**
 * The DPO recipe that `llama-ts dpo` and the workbench's DPO panel start from:
 * settings that work on the shared preference task without tuning, on every
 * training seed tried (bench/dpo-bench.ts holds the experiments that chose
 * them). trainDpo's own defaults stay TRL's (sigmoid loss, beta 0.1).
 *
 * Why these: TRL's best fluent run (sigmoid, lr 2e-3, beta 0.1) moves the
 * task only half as far as asked. A larger step with a larger beta moves it
 * further, but pure DPO pushes the rejected completions down without a floor,
 * and the freed probability drifts onto byte tokens that print as U+FFFD: on
 * one seed in four the samples turned to gibberish. TRL's "sft" loss (the
 * chosen completions' NLL, its RPO recipe) at half weight keeps the policy on
 * fluent text, and beta 0.5 (the loss saturates at half the log-ratio) lets
 * it drift less still: on the shared task (seeds 0–3) and on a second task of
 * the kind (bench/make-preference-task.ts, seeds 0–2), no broken characters and
 * a lower NLL under the base model than beta 0.25, at a somewhat smaller share.
 * lossWeights[1] is that NLL term's weight.
 */
export const DPO_RECIPE = {
  lossType: ["sigmoid", "sft"],
  lossWeights: [1, 0.5],
  beta: 0.5,
  lr: 4e-3,
  r: 8,
  targetModules: "all-linear",
  epochs: 3,
  batchSize: 8,
} as const;
