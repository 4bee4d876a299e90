/**
 * `npm run bench -- dpo`: DPO on the preference task (datasets/preference/) with the CLI's
 * defaults, against TRL 1.13 on the same data and settings measured on this CPU
 * (bench/trl-dpo-baseline.py).
 *
 *   node --import tsx bench/dpo-bench.ts [-- any llama-ts dpo flag, for experiments]
 *
 * 1. samples the base model with the task's protocol (8 continuations per test prompt, temperature 1.0,
 *    top-k 0, top-p 1.0, 48 new tokens, seed 1000 + prompt index) and measures it (lib/peft/preference-eval.ts);
 * 2. runs `llama-ts dpo --data datasets/preference/train.jsonl --out TMP --seed 0` (the defaults; extra
 *    arguments are passed on) in a child process: steps, wall and CPU seconds per step, peak RSS;
 * 3. samples the tuned model (the adapter applied with --adapter's code) the same way;
 * 4. prints a table with TRL's figures beside ours.
 *
 * The goal (issue 16): with the defaults, within 5 minutes, share ≥ 0.30, distinct-bigram ratio within
 * 0.6–1.3× the base's, no non-printable characters, stories of the same length, s/step ≤ TRL's.
 *
 * TRL's figures (TRL_RUNS below) come from `/root/refvenv/bin/python bench/trl-dpo-baseline.py …` on this
 * machine (torch's samples, torch's RNG: the base share differs a little from ours by sampling noise).
 *
 * Experiments that chose the defaults (all with --seed 0, sampled as above; the machine was shared by
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
 * | **all-linear, lr 4e-3, beta 0.25 (the defaults)** | 90 | 2.36 | 826 (12) | 0.397 | 1.18× | 1 | 34.5 | share ✓, distinct-2 ✓, length ✓; one stray byte token in 272 samples |
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
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { applyAdapter } from "../lib/peft/adapter-load.js";
import { preferenceMetrics, sampleContinuations, type PreferenceMetrics } from "../lib/peft/preference-eval.js";

const MODEL = "models/tiny-stories";
const DATA = "datasets/preference";
const SEED = 1000;

/**
 * TRL 1.13 on this machine (bench/trl-dpo-baseline.py, torch 2.13 CPU with its 2 threads, OMP_WAIT_POLICY
 * PASSIVE), 2026-12-06. The all-linear row's timing and tuned samples are from a run on the idle machine
 * (20:58, load 1.1: 40.9 s, 0.454 s/step, 0.743 CPU s/step, peak RSS 778 MiB, as the issue's 0.46 s/step);
 * the q/v row's from a run while the machine was shared (load average 15–22 on 2 cores: wall seconds
 * inflated, CPU seconds much less so). The base model's samples are the same in every run.
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
  },
];

/** Set DPO_BENCH_KEEP=DIR to keep the adapter and both sets of samples (samples-base.json, samples-tuned.json) there. */
const KEEP = process.env.DPO_BENCH_KEEP;

async function measure(adapter?: string): Promise<PreferenceMetrics> {
  const model = await LlamaForCausalLM.fromPretrained(MODEL);
  const tok = AutoTokenizer.fromPretrained(MODEL);
  try {
    const applied = adapter ? await applyAdapter(model, adapter, MODEL) : undefined;
    const prompts = fs.readFileSync(path.join(DATA, "test-prompts.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { prompt: string }).prompt);
    const texts = await sampleContinuations(applied?.generationModel() ?? model, tok, prompts, { perPrompt: 8, maxNewTokens: 48, seed: SEED });
    if (KEEP) {
      fs.mkdirSync(KEEP, { recursive: true });
      fs.writeFileSync(path.join(KEEP, adapter ? "samples-tuned.json" : "samples-base.json"), JSON.stringify(prompts.map((p, i) => ({ prompt: p, samples: texts[i] })), null, 1));
    }
    return preferenceMetrics(texts.flat());
  } finally {
    model.backend.dispose();
  }
}

// Prints the child's peak RSS on exit (process.resourceUsage().maxRSS is in KiB).
const RSS_HOOK = "data:text/javascript,process.on('exit',()=>process.stderr.write('maxrss_kib '+process.resourceUsage().maxRSS+'\\n'))";

function train(out: string, extra: string[]): { steps: number; seconds: number; sPerStep: number; cpuSPerStep: number; rssMiB: number; last: Record<string, number> } {
  const args = ["bin/llama-ts.js", "dpo", "--data", path.join(DATA, "train.jsonl"), "--out", out, "--seed", "0", ...extra];
  console.log(`$ llama-ts ${args.slice(1).join(" ")}`);
  const r = spawnSync(process.execPath, ["--import", RSS_HOOK, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
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

async function main(): Promise<void> {
  const extra = process.argv.slice(2).filter((a) => a !== "--");
  console.log(`command: node --import tsx bench/dpo-bench.ts ${extra.join(" ")}`.trim());
  console.log(`machine: ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, node ${process.version}, load avg ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dpo-bench-"));
  try {
    const base = await measure();
    const adapter = KEEP ? path.join(KEEP, "adapter") : path.join(tmp, "adapter");
    const t = train(adapter, extra);
    const tuned = await measure(adapter);
    console.log(`load avg after: ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
    console.log("");
    console.log("| run | steps | train s | s/step | CPU s/step | peak RSS | share (base → tuned) | distinct-2 (base → tuned, ratio) | non-printable | mean words (base → tuned) | last rewards/accuracies |");
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    console.log(`| ours: llama-ts dpo ${extra.join(" ") || "(defaults)"} --seed 0 | ${t.steps} | ${t.seconds.toFixed(0)} | ${fmt(t.sPerStep, 2)} | ${fmt(t.cpuSPerStep, 2)} | ${t.rssMiB.toFixed(0)} MiB | ` +
      `${fmt(base.share)} → ${fmt(tuned.share)} | ${fmt(base.distinctBigrams)} → ${fmt(tuned.distinctBigrams)} (${fmt(tuned.distinctBigrams / base.distinctBigrams, 2)}×) | ` +
      `${tuned.nonPrintable} | ${fmt(base.meanWords, 1)} → ${fmt(tuned.meanWords, 1)} | ${fmt(t.last["rewards/accuracies"], 2)} |`);
    for (const trl of TRL_RUNS) {
      console.log(`| ${trl.label} | ${trl.steps} | ${trl.seconds.toFixed(0)} | ${fmt(trl.sPerStep, 2)} | ${fmt(trl.cpuSPerStep, 2)} | ${trl.rssMiB ? `${trl.rssMiB} MiB` : "–"} | ` +
        `${fmt(trl.base?.share)} → ${fmt(trl.tuned.share)} | ${fmt(trl.base?.distinctBigrams)} → ${fmt(trl.tuned.distinctBigrams)}` +
        `${trl.base ? ` (${fmt(trl.tuned.distinctBigrams / trl.base.distinctBigrams, 2)}×)` : ""} | ${trl.tuned.nonPrintable} | ${fmt(trl.base?.meanWords, 1)} → ${fmt(trl.tuned.meanWords, 1)} | – |`);
    }
    const ratio = tuned.distinctBigrams / base.distinctBigrams;
    const goal = [
      [`share ≥ 0.30`, tuned.share >= 0.3],
      [`distinct-2 ratio in 0.6–1.3`, ratio >= 0.6 && ratio <= 1.3],
      [`no non-printable`, tuned.nonPrintable === 0],
      [`train ≤ 300 s`, t.seconds <= 300],
    ] as const;
    console.log(`\ngoal: ${goal.map(([what, ok]) => `${what} ${ok ? "✓" : "✗"}`).join(", ")}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
