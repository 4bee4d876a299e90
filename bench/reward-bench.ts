/**
 * `npm run bench -- reward`: which `llama-ts reward-train` settings make a reward model that
 * recognizes the preference of the shared task (datasets/preference/train.jsonl: the first 200
 * pairs train, the last 40 are held out, as notebook 11 splits them). Each row trains on the
 * default model with the library's trainReward (what the CLI runs: AdamW, linear decay, batch 8,
 * seed 0) and reports the held-out accuracy (chosen reward > rejected), the held-out mean margin,
 * the last batch's training accuracy, steps, and CPU-seconds per step. The CLI's defaults are the
 * first row; the table behind them is in cli/commands/reward-train.ts.
 *
 *   node --import tsx bench/reward-bench.ts [--only defaults,head-only]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { parseArgs } from "node:util";
import { createDifferentiableBackend } from "../lib/autograd/differentiable.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { RewardModel, loadRewardBase, trainReward } from "../lib/peft/reward.js";
import { readPreferenceFile, tokenizeRewardRows } from "../lib/peft/preference-data.js";
import { REWARD_DEFAULTS } from "../cli/commands/reward-train.js";
import { ALL_LINEAR } from "../lib/peft/lora-train.js";

const { values: flags } = parseArgs({ options: { only: { type: "string" } } });
const MODEL = "models/tiny-stories";

interface Setting { name: string; lora: boolean; r?: number; targets?: string[] | string; lr: number; epochs: number }
const D = REWARD_DEFAULTS;
const SETTINGS: Setting[] = [
  { name: "defaults (lr 3e-3, 3 epochs)", lora: true, r: Number(D.r), targets: ALL_LINEAR, lr: Number(D.lr), epochs: Number(D.epochs) },
  { name: "lora-lr1e-3-1ep", lora: true, r: 8, targets: ALL_LINEAR, lr: 1e-3, epochs: 1 },
  { name: "lora-lr1e-4-1ep (TRL's lr)", lora: true, r: 8, targets: ALL_LINEAR, lr: 1e-4, epochs: 1 },
  { name: "lora-lr3e-3-1ep", lora: true, r: 8, targets: ALL_LINEAR, lr: 3e-3, epochs: 1 },
  { name: "lora-lr1e-3-3ep", lora: true, r: 8, targets: ALL_LINEAR, lr: 1e-3, epochs: 3 },
  { name: "lora-lr3e-3-3ep", lora: true, r: 8, targets: ALL_LINEAR, lr: 3e-3, epochs: 3 },
  { name: "head-only-lr2e-2-3ep", lora: false, lr: 2e-2, epochs: 3 },
];

async function run(s: Setting, train: ReturnType<typeof tokenizeRewardRows>["examples"], held: ReturnType<typeof tokenizeRewardRows>["examples"]) {
  const backend = await createDifferentiableBackend("cpu");
  try {
    const base = await loadRewardBase(MODEL, { backend, seed: 0 });
    const rm = await RewardModel.create(base, { lora: s.lora ? { r: s.r!, lora_alpha: 2 * s.r!, target_modules: s.targets! } : null, seed: 0 });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const res = await trainReward(rm, train, { lr: s.lr, batchSize: 8, seed: 0, epochs: s.epochs, optimizer: "adamw", schedule: "linear" });
    const cpu = process.cpuUsage(c0);
    const wall = (performance.now() - t0) / 1000;
    const chosen = await rm.score(held.map((e) => e.chosenIds), { batchSize: 20 });
    const rejected = await rm.score(held.map((e) => e.rejectedIds), { batchSize: 20 });
    const acc = chosen.filter((r, i) => r > rejected[i]!).length / held.length;
    const margin = chosen.reduce((a, r, i) => a + r - rejected[i]!, 0) / held.length;
    const last = res.logs.at(-1)?.metrics ?? {};
    return { acc, margin, trainAcc: last.accuracy ?? NaN, steps: res.steps, wall, cpuPerStep: (cpu.user + cpu.system) / 1e6 / res.steps };
  } finally {
    backend.dispose();
  }
}

async function main(): Promise<void> {
  const tok = AutoTokenizer.fromPretrained(MODEL);
  const pairs = readPreferenceFile("datasets/preference/train.jsonl");
  const { examples: train } = tokenizeRewardRows(tok, pairs.slice(0, 200));
  const { examples: held } = tokenizeRewardRows(tok, pairs.slice(200));
  const only = flags.only?.split(",");
  const cpus = os.cpus();
  console.log(`# reward-train settings on the preference task — ${cpus[0]?.model ?? "cpu"} (${cpus.length} cores), node ${process.version}`);
  console.log(`# command: node --import tsx bench/reward-bench.ts ${process.argv.slice(2).join(" ")}`.trimEnd());
  console.log(`# load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}; 200 pairs train, 40 held out; batch 8, AdamW, linear decay, seed 0\n`);
  console.log("| setting | steps | held-out accuracy | held-out mean margin | last batch accuracy | CPU s/step | wall s |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const s of SETTINGS) {
    if (only && !only.some((o) => s.name.startsWith(o))) continue;
    const r = await run(s, train, held);
    console.log(`| ${s.name} | ${r.steps} | ${r.acc.toFixed(3)} | ${r.margin.toFixed(3)} | ${r.trainAcc.toFixed(2)} | ${r.cpuPerStep.toFixed(2)} | ${r.wall.toFixed(0)} |`);
  }
  console.log(`\n# load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
