/**
 * `npm run bench -- dpo`: DPO on the preference task (datasets/preference/) with the CLI's
 * defaults, against TRL 1.13 on the same data and settings measured on this CPU
 * (bench/trl-dpo-baseline.py).
 *
 *   node --import tsx bench/dpo-bench.ts [--seeds 0,1,2] [-- any llama-ts dpo flag, for experiments]
 *
 * 1. samples the base model with the task's protocol (8 continuations per test prompt, temperature 1.0,
 *    top-k 0, top-p 1.0, 48 new tokens, seed 1000 + prompt index) and measures it (lib/peft/preference-eval.ts);
 * 2. for each training seed (default 0, 1 and 2: the defaults must work for any seed, not one), runs
 *    `llama-ts dpo --data datasets/preference/train.jsonl --out TMP --seed S` (the defaults; extra arguments
 *    are passed on) in a child process: steps, wall and CPU seconds per step, peak RSS;
 * 3. samples each tuned model (the adapter applied with --adapter's code) the same way, and measures its
 *    broken-byte mass (brokenByteMass below: the expected number of U+FFFD characters in a sample set, of
 *    which the non-printable count is one draw);
 * 4. prints a table with TRL's figures beside ours, and the goal per seed.
 *
 * The goal (issue 16): with the defaults, within 5 minutes, share ≥ 0.30, distinct-bigram ratio within
 * 0.6–1.3× the base's, no non-printable characters, stories of the same length, s/step ≤ TRL's.
 *
 * TRL's figures (TRL_RUNS below) come from `/root/refvenv/bin/python bench/trl-dpo-baseline.py …` on this
 * machine (torch's samples, torch's RNG: the base share differs a little from ours by sampling noise).
 *
 * The defaults across seeds (2026-12-07, stop 24). The recipe of the stops before (sigmoid loss, lr 4e-3,
 * beta 0.25) had been chosen on seed 0 alone; on other seeds it missed a goal every time. Adding TRL's "sft"
 * loss at weight 0.5 (the chosen completions' NLL per token: TRL's RPO) met every goal on seeds 0–3, and the
 * samples read better to the base model (reference NLL per token; the base's own samples: 0.53); on a second
 * task (below) it still left one broken character, and beta 0.5 with the same NLL term (the defaults) leaves
 * none on either task and reads better still, at a somewhat smaller share:
 *
 *   node --import tsx bench/dpo-bench.ts --seeds 0,1,2,3 [-- --loss sigmoid]   (load 2.0–2.4)
 *
 * | llama-ts dpo | seed | share (base 0.121) | distinct-2 ratio | non-printable | broken-byte mass (base 0.04) | reference NLL/token | mean words (base 36.2) | s/step (CPU) |
 * | --- | --- | --- | --- | --- | --- | --- | --- | --- |
 * | --loss sigmoid (the old defaults) | 0 | 0.390 | 1.22× | 1 ✗ | 0.47 | 0.91 | 35.0 | 0.81 (0.82) |
 * | | 1 | 0.294 ✗ | 1.06× | 0 | 0.54 | 0.73 | 35.1 | 0.84 (0.84) |
 * | | 2 | 0.342 | 1.44× ✗ | 7 ✗ | 3.52 | 1.51 | 33.9 | 0.45 (0.75) |
 * | | 3 | 0.265 ✗ | 1.21× | 0 | 0.63 | 1.00 | 34.8 | 0.48 (0.80) |
 * | --loss sigmoid,sft --loss-weights 1,0.5 (beta 0.25) | 0 | 0.474 | 1.11× | 0 | 0.20 | 0.76 | 33.2 | 0.48 (0.80) |
 * | | 1 | 0.445 | 1.06× | 0 | 0.11 | 0.69 | 34.1 | 0.45 (0.76) |
 * | | 2 | 0.500 | 1.13× | 0 | 0.21 | 0.78 | 33.9 | 0.45 (0.75) |
 * | | 3 | 0.371 | 1.10× | 0 | 0.12 | 0.68 | 34.0 | 0.47 (0.78) |
 * | **the defaults (sigmoid + 0.5 · sft, beta 0.5)** | 0 | 0.419 | 1.13× | 0 | 0.06 | 0.73 | 33.2 | – (0.80) |
 * | | 1 | 0.331 | 1.08× | 0 | 0.13 | 0.65 | 34.5 | – (0.79) |
 * | | 2 | 0.460 | 1.10× | 0 | 0.18 | 0.71 | 35.8 | – (0.90) |
 * | | 3 | 0.360 | 1.07× | 0 | 0.11 | 0.65 | 34.9 | – (0.92) |
 *
 * (The defaults' wall seconds per step are left out: the test suite ran beside that bench. The step costs
 * what the rows above cost; only the loss's numbers differ.)
 *
 * Pure DPO pushes the rejected completions down without a floor; the probability it frees drifts onto byte
 * tokens that cannot decode alone (the broken-byte mass grows 12–90× over the base's, and on seed 2 the
 * samples read "hotoney�vaged"). The NLL term keeps the chosen text likely: the mass stays at 3–5× the
 * base's, and since every chosen completion mentions a friend, the share rises further.
 *
 * Length: every chosen completion of the task was cut at 48 tokens mid-story and TRL appends `</s>` to it,
 * while some rejected ones ended by themselves earlier; preferring the chosen also prefers stopping
 * mid-sentence. Stories shorter than 25 words (base: 4 of 272): old defaults 10–29, sft at beta 0.25 24–32,
 * the defaults 5–36. Mean words 33–36 against 36.2 (TRL's best plain run: 33.3; TRL with the NLL term at
 * beta 0.25: 31.0–34.5).
 *
 * Other settings tried on seeds 0–2 (`llama-ts dpo … --seed S`, sampled as above):
 *
 * | flags | share | distinct-2 ratio | non-printable | mean words | verdict |
 * | --- | --- | --- | --- | --- | --- |
 * | (all at beta 0.25 unless given) | | | | | |
 * | --loss sigmoid,sft --loss-weights 1,1 | 0.49, 0.47, 0.48 | 1.13, 1.10, 1.12× | 0, 0, 0 | 32.7, 33.5, 32.9 | shorter: 12–14% of the samples stop before 25 words |
 * | --loss sigmoid,sft --loss-weights 1,0.25 | 0.36 (seed 0) | 1.14× | 0 | 34.1 | less movement; stopped there |
 * | --loss sigmoid,sft --loss-weights 1,0.5 --lr 3e-3 | 0.36, 0.42, 0.33 | 1.08, 1.13, 1.06× | 0, 0, 0 | 34.1, 33.6, 33.6 | fluent, less movement (0.21 on the ball task below) |
 * | --loss sigmoid,sft --loss-weights 1,0.5 --beta 0.1 | 0.47 (seed 0) | 1.18× | 13 | 32.6 | beta 0.1 at lr 4e-3 drifts even with the NLL term |
 * | --loss sigmoid,sft --lr 2e-3 --beta 0.1 (TRL's best + RPO at weight 1) | 0.34, 0.40, 0.32 | 1.06, 1.10, 1.06× | 0, 1, 0 | 33.5, 33.3, 34.0 | fluent, half the movement |
 * | --loss apo_zero (TRL's APO-zero) | 0.49 (seed 0) | 1.28× | 31 | 33.4 | drifts worse than sigmoid |
 *
 * TRL itself with the same recipe (`bench/trl-dpo-baseline.py --targets all-linear --lr 4e-3 --beta 0.25
 * --loss sigmoid,sft --loss-weights 1,0.5 --seed S`), seeds 0, 1, 2: share 0.118 → 0.566, 0.397, 0.338,
 * distinct-2 1.08, 1.07, 1.16×, 0 non-printable, 34.5, 34.2, 31.0 words. Seconds per step, ours and TRL's
 * in alternating runs of the same minutes (05:46–05:57; both with this recipe): ours 0.56, 0.50, 0.47, 0.63
 * (CPU 0.78–0.83), TRL 0.54, 0.58, 0.71 (a test ran beside it), 0.50 (CPU 0.81–0.92): level within the
 * machine's noise, ours at half the memory.
 *
 * The same with the defaults (beta 0.5; TRL with `--beta 0.5`), nothing else running (2026-12-07
 * 13:02–13:13, load ≈ 2 from the runs themselves), seeds 2, 0, 2, 0 alternating ours / TRL:
 * ours 0.49, 0.50, 0.50, 0.54 s/step (CPU 0.82–0.90; our two rounds gave identical metrics), TRL 0.473,
 * 0.586, 0.511, 0.580 (CPU 0.77–0.94). Means 0.51 against 0.54: ours is at or under TRL's time per step.
 *
 * A second task of the kind, to see whether the defaults are fitted to "friend":
 *
 *   node --import tsx bench/make-preference-task.ts ball /tmp/task-ball     # "ball" in 17% of the openers' samples
 *   node --import tsx bench/dpo-bench.ts --task /tmp/task-ball --word ball [-- --loss sigmoid]
 *
 * | llama-ts dpo | seed | share (base 0.070) | distinct-2 ratio | non-printable | reference NLL/token | mean words (base 36.2) |
 * | --- | --- | --- | --- | --- | --- | --- |
 * | --loss sigmoid (the old defaults) | 0 | 0.232 | 1.26× | 2 | 0.98 | 30.7 |
 * | | 1 | 0.313 | 1.08× | 0 | 0.80 | 28.9 |
 * | | 2 | 0.393 | 1.20× | 0 | 1.05 | 31.9 |
 * | sigmoid + 0.5 · sft, beta 0.25 | 0 | 0.360 | 1.04× | 0 | 0.73 | 31.2 |
 * | | 1 | 0.371 | 1.04× | 0 | 0.78 | 30.3 |
 * | | 2 | 0.331 | 1.12× | 1 | 0.83 | 29.4 |
 * | **the defaults (beta 0.5)** | 0 | 0.353 | 1.06× | 0 | 0.73 | 30.3 |
 * | | 1 | 0.364 | 1.01× | 0 | 0.76 | 30.0 |
 * | | 2 | 0.316 | 1.04× | 0 | 0.69 | 30.1 |
 *
 * At beta 0.25 the NLL term left, on seed 2, one broken character and a few garbled story starts ("Mom said
 * lamp a little watch the"); at beta 0.5 none, with the reference NLL lower on every seed. Every recipe
 * shortens these stories by 12–20% (the cut-at-48-tokens effect above, stronger here: 47–62 of 272 stop
 * before 25 words).
 *
 * Earlier experiments, one seed each (all with --seed 0, sampled as above; the machine was shared by
 * several jobs, so wall seconds are inflated; CPU s/step is the process's CPU time):
 *
 * | run (llama-ts dpo … --seed 0) | steps | CPU s/step | wall s (load avg) | share | distinct-2 ratio | non-printable | mean words | verdict |
 * | --- | --- | --- | --- | --- | --- | --- | --- | --- |
 * | base model (our sampler) | – | – | – | 0.121 | 1 (0.292) | 0 | 36.2 | |
 * | all-linear, lr 2e-3, beta 0.1, batch 8, 3 epochs (TRL's best) | 90 | 3.58 | 1553 (15) | 0.246 | 1.35× | 4 | 31.9 | TRL's result (0.235); gibberish creeping in |
 * | all-linear, lr 3e-3 | 90 | 2.92 | 1540 (18) | 0.349 | 1.27× | 17 | 33.0 | share ✓ and distinct-2 ✓, but 17 U+FFFD (broken byte tokens) |
 * | q/v only, lr 3e-3 | 90 | 1.91 | 783 (18) | 0.118 | 1.14× | 1 | 34.6 | no movement; collapses onto a few stories ("Don't be scared"), one "morningried mittens�" |
 * | all-linear, lr 3e-3, 2 epochs | 60 | 2.54 | 551 (12) | 0.228 | 1.12× | 4 | 32.9 | fluent, too little movement |
 * | all-linear, lr 3e-3, beta 0.2 | 90 | 2.48 | 690 (12) | 0.294 | 1.13× | 3 | 33.1 | near the share goal, fluent but for 3 stray byte tokens |
 * | all-linear, lr 3e-3, beta 0.15 | 90 | 2.36 | 820 (12) | 0.272 | 1.22× | 2 | 30.1 | shorter stories |
 * | **all-linear, lr 4e-3, beta 0.25 (the defaults until stop 24)** | 90 | 2.36 | 826 (12) | 0.397 | 1.18× | 1 | 34.5 | share ✓, distinct-2 ✓, length ✓; one stray byte token in 272 samples |
 *
 * `npm run bench -- dpo` with the defaults at load 6–7 (2026-12-06 11:12): 90 steps in 249 s (2.76 s/step,
 * 2.33 CPU s/step, peak RSS 550 MiB), share 0.121 → 0.397, distinct-2 1.18×, 1 non-printable, 36.2 → 34.5 words.
 * Goals missed: s/step (2.3–3.6 CPU s against TRL's 0.75–0.81 on the same machine: the CPU tape's step, not
 * the recipe; under load 12–18 a run took 690–1550 s wall), and one non-printable character (TRL's best: 2).
 *
 * TRL on the same machine and data: base 0.118 → 0.235 (distinct-2 1.08×, 2 non-printable, 36.3 → 33.2 words),
 * 0.75 CPU s/step (all-linear lr 2e-3); q/v lr 5e-4: 0.118 → 0.121, 0.66 CPU s/step.
 *
 * On the idle machine (2026-12-06 20:51, load 1.4), the tree of 425dcc9: ours 90 steps in 94 s (1.04 s/step,
 * 1.57 CPU s/step, peak RSS 537 MiB), share 0.121 → 0.364, distinct-2 1.20×, 0 non-printable, 36.2 → 34.3
 * words; TRL in the same hour: 40.9 s (0.454 s/step, 0.743 CPU s/step), 0.118 → 0.250, 0 non-printable.
 * Every goal holds but s/step: ours is 2.3× TRL's wall time per step.
 *
 * 2026-12-07 01:12–01:15 (load 1.6–1.9), the tree of this stop, `npm run bench -- dpo` then TRL in the same
 * minutes: ours 90 steps in 60 s (0.67 s/step, 1.02 CPU s/step, peak RSS 348 MiB), share 0.121 → 0.390,
 * distinct-2 1.22×, 1 non-printable, 36.2 → 35.0 words (a run at 00:57 under load 2.6–4.6: 55 s, 0.60 s/step);
 * TRL 43.4 s (0.482 s/step, 0.80 CPU s/step, 780 MiB). Ours is now 1.4× TRL's wall time per step (1.3× its
 * CPU time), at 45% of its memory; the one non-printable character is a stray byte token.
 *
 * 2026-12-07, the next stop's trees, pairs of runs in the same minutes (`npm run bench -- dpo` and
 * `/root/refvenv/bin/python bench/trl-dpo-baseline.py --targets all-linear --lr 2e-3 --skip-base`, TRL first in
 * each round's second pair). Every change kept the bits: the same samples and metrics as before.
 *
 * | tree, time (load) | pair | ours s/step (CPU s/step) | TRL s/step (CPU s/step) | ours / TRL |
 * | --- | --- | --- | --- | --- |
 * | 03e179c, 03:34–03:48 (1.4–2.7) | 1 | 0.45 (0.75) | 0.494 (0.827) | 0.91 |
 * | | 2 | 0.56 (0.92) | 0.505 (0.819) | 1.11 |
 * | | 3 | 0.51 (0.86) | 0.478 (0.778) | 1.07 |
 * | 6130b7a (q/k/v and gate/up in one call), 04:03–04:11 (1.3–2.4) | 1 | 0.50 (0.84) | 0.508 (0.835) | 0.98 |
 * | | 2 | 0.45 (0.76) | 0.498 (0.832) | 0.90 |
 * | | 3 | 0.47 (0.78) | 0.529 (0.867) | 0.89 |
 *
 * With the last tree every pair is at or below TRL's seconds per step: mean 0.47 against 0.51 (0.92×; 0.94×
 * its CPU time), at half its memory (384–388 against 763–775 MiB peak RSS). The machine's noise for the same
 * work is about ±10%. Ours computes the reference log-probs in a pass before the steps (TRL's
 * precompute_ref_log_probs option: 5.4–6.2 s for the 240 pairs, shown with its own progress bar); TRL's
 * default, measured here, runs the reference forward inside each step (three times over the data in 3
 * epochs). Counted in, our run takes ~5% longer than TRL's.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer, type LlamaAnyTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { applyAdapter } from "../lib/peft/adapter-load.js";
import { preferenceMetrics, sampleContinuations, type PreferenceMetrics } from "../lib/peft/preference-eval.js";

const MODEL = "models/tiny-stories";
const DATA = "datasets/preference";

/** The task: its folder (train.jsonl, test-prompts.jsonl) and the word its chosen completions mention. */
interface Task { dir: string; word: string }
const SEED = 1000;

/**
 * TRL 1.13 on this machine (bench/trl-dpo-baseline.py, torch 2.13 CPU with its 2 threads, OMP_WAIT_POLICY
 * PASSIVE), 2026-12-06. The all-linear row's timing and tuned samples are from a run on the idle machine
 * (20:58, load 1.1: 40.9 s, 0.454 s/step, 0.743 CPU s/step, peak RSS 778 MiB, as the issue's 0.46 s/step);
 * the q/v row's from a run while the machine was shared (load average 15–22 on 2 cores: wall seconds
 * inflated, CPU seconds much less so). The base model's samples are the same in every run. The last three
 * rows: TRL with the CLI's recipe (stop 24, 2026-12-07 05:40–05:52, load 1.6–2.3).
 */
const TRL_BASE: PreferenceMetrics = { samples: 272, share: 0.11764705882352941, distinctBigrams: 0.3020280811232449, nonPrintable: 1, meanWords: 36.349264705882355 };
const TRL_RUNS: { label: string; steps: number; seconds: number; sPerStep: number; cpuSPerStep: number | null; rssMiB?: number; base: PreferenceMetrics | null; tuned: PreferenceMetrics }[] = [
  {
    label: "TRL 1.13 DPOTrainer, LoRA r 8 all-linear, lr 2e-3, beta 0.1, batch 8, 3 epochs", steps: 90, seconds: 40.9, sPerStep: 0.454, cpuSPerStep: 0.743, rssMiB: 778,
    base: TRL_BASE, tuned: { samples: 272, share: 0.25, distinctBigrams: 0.30618521471693816, nonPrintable: 0, meanWords: 33.275735294117645 },
  },
  {
    label: "TRL 1.13 DPOTrainer, LoRA r 8 q/v, lr 5e-4, beta 0.1, batch 8, 3 epochs", steps: 90, seconds: 272.8, sPerStep: 3.031, cpuSPerStep: 0.658,
    base: TRL_BASE, tuned: { samples: 272, share: 0.1213235294117647, distinctBigrams: 0.2988733569789276, nonPrintable: 1, meanWords: 36.24264705882353 },
  },  {
    label: "TRL 1.13 DPOTrainer, our recipe: sigmoid + 0.5 · sft, LoRA r 8 all-linear, lr 4e-3, beta 0.25, batch 8, 3 epochs, seed 0", steps: 90, seconds: 51.3, sPerStep: 0.57, cpuSPerStep: 0.939, rssMiB: 797,
    base: TRL_BASE, tuned: { samples: 272, share: 0.5661764705882353, distinctBigrams: 0.3255456838872436, nonPrintable: 0, meanWords: 34.518382352941174 },
  },
  {
    label: "TRL 1.13 DPOTrainer, our recipe: sigmoid + 0.5 · sft, LoRA r 8 all-linear, lr 4e-3, beta 0.25, batch 8, 3 epochs, seed 1", steps: 90, seconds: 47.9, sPerStep: 0.533, cpuSPerStep: 0.881, rssMiB: 798,
    base: TRL_BASE, tuned: { samples: 272, share: 0.39705882352941174, distinctBigrams: 0.32237715803452854, nonPrintable: 0, meanWords: 34.220588235294116 },
  },
  {
    label: "TRL 1.13 DPOTrainer, our recipe: sigmoid + 0.5 · sft, LoRA r 8 all-linear, lr 4e-3, beta 0.25, batch 8, 3 epochs, seed 2", steps: 90, seconds: 35.6, sPerStep: 0.396, cpuSPerStep: 0.657, rssMiB: 773,
    base: TRL_BASE, tuned: { samples: 272, share: 0.3382352941176471, distinctBigrams: 0.3511722106296796, nonPrintable: 0, meanWords: 30.952205882352942 },
  },

];

/** Set DPO_BENCH_KEEP=DIR to keep the adapters and the samples (samples-base.json, samples-tuned-seed<S>.json) there. */
const KEEP = process.env.DPO_BENCH_KEEP;

/** Runs the model on prompt + completion and hands each completion position's logits row and target token to `visit`. */
async function forEachCompletionToken(model: LlamaForCausalLM, tok: LlamaAnyTokenizer, prompt: string, completion: string, visit: (logits: Float32Array, target: number) => void): Promise<void> {
  const V = model.config.vocab_size;
  const start = tok.encode(prompt).length, ids = tok.encode(prompt + completion);
  const logits = (await model.forward({ inputIds: [ids] })).logits.toFloat32();
  for (let t = start - 1; t < ids.length - 1; t++) visit(logits.subarray(t * V, (t + 1) * V), ids[t + 1]!);
}

/** max and log Σ exp(x − max) of a logits row. */
function logSumExp(row: Float32Array): { max: number; logZ: number } {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let z = 0;
  for (const x of row) z += Math.exp(x - max);
  return { max, logZ: Math.log(z) };
}

/**
 * The probability the model puts on byte tokens that cannot decode alone (they print as U+FFFD), summed over
 * the completion positions of the first 120 training pairs (teacher-forced) and scaled to the task's 272 × 48
 * sampled tokens: the expected number of broken characters in a sample set. The non-printable count is one
 * draw of that (a count of 0 or 1 is mostly luck); this is its mean, so it shows a drift the count may miss.
 */
async function brokenByteMass(model: LlamaForCausalLM, tok: LlamaAnyTokenizer, task: Task): Promise<number> {
  const broken: number[] = [];
  for (let id = 0; id < model.config.vocab_size; id++) if (tok.decode([id]).includes("\uFFFD")) broken.push(id);
  const rows = fs.readFileSync(path.join(task.dir, "train.jsonl"), "utf8").trim().split("\n").slice(0, 120).map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string });
  let mass = 0, positions = 0;
  for (const row of rows) {
    for (const completion of [row.chosen, row.rejected]) {
      await forEachCompletionToken(model, tok, row.prompt, completion, (logits) => {
        const { max, logZ } = logSumExp(logits);
        for (const id of broken) mass += Math.exp(logits[id]! - max - logZ);
        positions++;
      });
    }
  }
  return (mass / positions) * 272 * 48;
}

/**
 * Fluency as the base model judges it: its negative log-likelihood per token of the sampled continuations
 * (given their prompts). Moving the stories towards the preference raises it a little; gibberish, broken
 * starts and stray bytes raise it a lot (the base's own samples: 0.54 nats/token).
 */
async function referenceNll(base: LlamaForCausalLM, tok: LlamaAnyTokenizer, prompts: readonly string[], texts: readonly string[][]): Promise<number> {
  let nll = 0, tokens = 0;
  for (const [i, samples] of texts.entries()) {
    for (const text of samples) {
      await forEachCompletionToken(base, tok, prompts[i]!, text, (logits, target) => {
        const { max, logZ } = logSumExp(logits);
        nll += max + logZ - logits[target]!;
        tokens++;
      });
    }
  }
  return nll / tokens;
}

type Measured = PreferenceMetrics & { brokenMass: number; referenceNll: number };

async function measure(task: Task, adapter: string | undefined, name: string): Promise<Measured> {
  const model = await LlamaForCausalLM.fromPretrained(MODEL);
  const tok = AutoTokenizer.fromPretrained(MODEL);
  try {
    const applied = adapter ? await applyAdapter(model, adapter, MODEL) : undefined;
    const prompts = fs.readFileSync(path.join(task.dir, "test-prompts.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { prompt: string }).prompt);
    const texts = await sampleContinuations(applied?.generationModel() ?? model, tok, prompts, { perPrompt: 8, maxNewTokens: 48, seed: SEED });
    if (KEEP) {
      fs.mkdirSync(KEEP, { recursive: true });
      fs.writeFileSync(path.join(KEEP, `samples-${name}.json`), JSON.stringify(prompts.map((p, i) => ({ prompt: p, samples: texts[i] })), null, 1));
    }
    const brokenMass = await brokenByteMass(model, tok, task);
    applied?.remove(); // the base weights back, bit for bit: the reference judges the samples
    return { ...preferenceMetrics(texts.flat(), new RegExp(`\\b${task.word}\\b`, "i")), brokenMass, referenceNll: await referenceNll(model, tok, prompts, texts) };
  } finally {
    model.backend.dispose();
  }
}

// Prints the child's peak RSS on exit (process.resourceUsage().maxRSS is in KiB).
const RSS_HOOK = "data:text/javascript,process.on('exit',()=>process.stderr.write('maxrss_kib '+process.resourceUsage().maxRSS+'\\n'))";

function train(task: Task, out: string, args: string[]): { steps: number; seconds: number; sPerStep: number; cpuSPerStep: number; rssMiB: number; last: Record<string, number> } {
  const argv = ["bin/llama-ts.js", "dpo", "--data", path.join(task.dir, "train.jsonl"), "--out", out, ...args];
  console.log(`$ llama-ts ${argv.slice(1).join(" ")}`);
  const r = spawnSync(process.execPath, ["--import", RSS_HOOK, ...argv], { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`llama-ts dpo failed (${r.status}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  const steps = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, number>);
  const summary = /dpo: (\d+) steps in ([\d.]+) s \(([\d.]+) s\/step, ([\d.]+) CPU s\/step\)/.exec(r.stderr);
  const rss = /maxrss_kib (\d+)/.exec(r.stderr);
  if (!summary || steps.length === 0) throw new Error(`llama-ts dpo: no summary line in its output: ${r.stderr.slice(-400)}`);
  for (const line of r.stderr.split("\n")) if (/warning/.test(line)) console.log(`  ${line}`);
  return {
    steps: Number(summary[1]), seconds: Number(summary[2]), sPerStep: Number(summary[3]), cpuSPerStep: Number(summary[4]),
    rssMiB: rss ? Number(rss[1]) / 1024 : NaN, last: steps[steps.length - 1]!,
  };
}

const fmt = (x: number | undefined | null, d = 3) => (x === undefined || x === null || !Number.isFinite(x) ? "–" : x.toFixed(d));

/**
 * The bench's own flags, the rest going to llama-ts dpo: `--seeds 0,1,2` (one training run per seed;
 * default 0,1,2), `--task DIR --word W` (another preference task of the shared kind, e.g. one made by
 * bench/make-preference-task.ts; default datasets/preference and friend; TRL's rows are for the default).
 */
function parseArgs(argv: string[]): { seeds: string[]; task: Task; extra: string[] } {
  const args = argv.filter((a) => a !== "--");
  const take = (flag: string): string | undefined => {
    const at = args.indexOf(flag);
    if (at < 0) return undefined;
    const value = args[at + 1];
    if (value === undefined || value.startsWith("--")) throw new Error(`${flag}: expected a value`);
    args.splice(at, 2);
    return value;
  };
  const seeds = (take("--seeds") ?? "0,1,2").split(",");
  if (seeds.some((s) => !/^\d+$/.test(s))) throw new Error(`--seeds: expected a comma list of integers, got "${seeds.join(",")}"`);
  const task = { dir: take("--task") ?? DATA, word: take("--word") ?? "friend" };
  if (!/^\w+$/.test(task.word)) throw new Error(`--word: expected one word, got "${task.word}"`);
  if (args.includes("--seed")) throw new Error("give seeds with the bench's --seeds, not --seed");
  return { seeds, task, extra: args };
}

async function main(): Promise<void> {
  const { seeds, task, extra } = parseArgs(process.argv.slice(2));
  const custom = task.dir !== DATA || task.word !== "friend";
  console.log(`command: node --import tsx bench/dpo-bench.ts --seeds ${seeds.join(",")}${custom ? ` --task ${task.dir} --word ${task.word}` : ""} ${extra.join(" ")}`.trim());
  console.log(`machine: ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, node ${process.version}, load avg ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dpo-bench-"));
  try {
    const base = await measure(task, undefined, "base");
    const runs = [];
    for (const seed of seeds) {
      const adapter = path.join(KEEP ?? tmp, `adapter-seed${seed}`);
      const t = train(task, adapter, [...extra, "--seed", seed]);
      runs.push({ seed, t, tuned: await measure(task, adapter, `tuned-seed${seed}`) });
    }
    console.log(`load avg after: ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
    console.log("");
    console.log(`| run | steps | train s | s/step | CPU s/step | peak RSS | share with "${task.word}" (base → tuned) | distinct-2 (base → tuned, ratio) | non-printable | broken-byte mass (base → tuned) | reference NLL/token (base → tuned) | mean words (base → tuned) | last rewards/accuracies |`);
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const { seed, t, tuned } of runs) {
      console.log(`| ours: llama-ts dpo ${[...extra, "--seed", seed].join(" ")} | ${t.steps} | ${t.seconds.toFixed(0)} | ${fmt(t.sPerStep, 2)} | ${fmt(t.cpuSPerStep, 2)} | ${t.rssMiB.toFixed(0)} MiB | ` +
        `${fmt(base.share)} → ${fmt(tuned.share)} | ${fmt(base.distinctBigrams)} → ${fmt(tuned.distinctBigrams)} (${fmt(tuned.distinctBigrams / base.distinctBigrams, 2)}×) | ` +
        `${tuned.nonPrintable} | ${fmt(base.brokenMass, 2)} → ${fmt(tuned.brokenMass, 2)} | ${fmt(base.referenceNll, 2)} → ${fmt(tuned.referenceNll, 2)} | ${fmt(base.meanWords, 1)} → ${fmt(tuned.meanWords, 1)} | ${fmt(t.last["rewards/accuracies"], 2)} |`);
    }
    for (const trl of custom ? [] : TRL_RUNS) {
      console.log(`| ${trl.label} | ${trl.steps} | ${trl.seconds.toFixed(0)} | ${fmt(trl.sPerStep, 2)} | ${fmt(trl.cpuSPerStep, 2)} | ${trl.rssMiB ? `${trl.rssMiB} MiB` : "–"} | ` +
        `${fmt(trl.base?.share)} → ${fmt(trl.tuned.share)} | ${fmt(trl.base?.distinctBigrams)} → ${fmt(trl.tuned.distinctBigrams)}` +
        `${trl.base ? ` (${fmt(trl.tuned.distinctBigrams / trl.base.distinctBigrams, 2)}×)` : ""} | ${trl.tuned.nonPrintable} | – | – | ${fmt(trl.base?.meanWords, 1)} → ${fmt(trl.tuned.meanWords, 1)} | – |`);
    }
    console.log("");
    for (const { seed, t, tuned } of runs) {
      const ratio = tuned.distinctBigrams / base.distinctBigrams;
      const goal = [
        [`share ≥ 0.30`, tuned.share >= 0.3],
        [`distinct-2 ratio in 0.6–1.3`, ratio >= 0.6 && ratio <= 1.3],
        [`no non-printable`, tuned.nonPrintable === 0],
        [`train ≤ 300 s`, t.seconds <= 300],
      ] as const;
      console.log(`goal, seed ${seed}: ${goal.map(([what, ok]) => `${what} ${ok ? "✓" : "✗"}`).join(", ")}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
