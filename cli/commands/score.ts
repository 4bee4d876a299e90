/**
 * `llama-ts score`: one reward per row from a reward model (`reward-train`'s
 * output: a PEFT SEQ_CLS adapter on --model, or a full head-only model folder
 * as --model alone).
 *
 *   llama-ts score [--model DIR] [--adapter DIR] --data FILE.jsonl [--json]
 *
 * Rows: {"text"}, {"prompt", "completion"}, or pairs {"prompt", "chosen", "rejected"}.
 * Each text is scored as the reward trainer saw its pairs: tok(prompt + completion)
 * (BOS first) with EOS appended. stdout: one reward per row (a pair: chosen then
 * rejected); with --json one object per row ({"reward"} or {"chosen", "rejected"}).
 * For pairs, the share with chosen > rejected goes to stderr.
 */
import { AutoTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { FormatError } from "../../lib/errors.js";
import { RewardModel, loadRewardBase } from "../../lib/peft/reward.js";
import { tokenizeReward } from "../../lib/peft/preference-data.js";
import { readJsonl } from "../../lib/peft/prompt-data.js";
import { namingBase, readAdapterKind } from "../../lib/peft/adapter-load.js";
import { MODEL_FLAG, QUANTIZE_FLAG, defineCommand, existingPath, intFlag, modelPath, quantizeFlag, positive } from "../args.js";
import { cliProgress } from "../progress.js";

type Row = { kind: "text"; prompt: string; completion: string } | { kind: "pair"; prompt: string; chosen: string; rejected: string };

function readRows(file: string): Row[] {
  const rows = readJsonl(file).map(({ line, row }): Row => {
    const str = (k: string) => {
      const v = row[k];
      if (typeof v !== "string") throw new FormatError(file, `line ${line}: field "${k}" ${v === undefined ? "is missing" : "is not a string"}: expected {"text"}, {"prompt", "completion"} or {"prompt", "chosen", "rejected"}`);
      return v;
    };
    if ("chosen" in row || "rejected" in row) return { kind: "pair", prompt: str("prompt"), chosen: str("chosen"), rejected: str("rejected") };
    if ("text" in row) return { kind: "text", prompt: "", completion: str("text") };
    return { kind: "text", prompt: str("prompt"), completion: str("completion") };
  });
  if (rows.length === 0) throw new FormatError(file, "no rows");
  return rows;
}

export const command = defineCommand({
  summary: "score texts or preference pairs with a reward model (reward-train's output); one reward per row",
  usage: "--adapter DIR --data FILE [options]",
  flags: {
    model: MODEL_FLAG,
    quantize: QUANTIZE_FLAG,
    adapter: { type: "string", arg: "DIR", help: "the reward model's PEFT SEQ_CLS adapter (omit for a head-only model folder as --model)" },
    data: { type: "string", arg: "FILE", required: true, help: "JSONL rows {\"text\"}, {\"prompt\", \"completion\"} or {\"prompt\", \"chosen\", \"rejected\"}" },
    "batch-size": { type: "string", arg: "N", default: "8", help: "sequences per forward" },
    json: { type: "boolean", help: "one JSON object per row" },
  },
  async run(f) {
    const modelDir = modelPath("--model", f.model);
    const dataFile = existingPath("--data", f.data);
    const adapterDir = f.adapter !== undefined ? existingPath("--adapter", f.adapter) : undefined;
    const batchSize = positive("--batch-size", intFlag("--batch-size", f["batch-size"]))!;
    const rows = readRows(dataFile);
    const tok = AutoTokenizer.fromPretrained(modelDir);
    const base = await loadRewardBase(modelDir, { quantize: quantizeFlag(f.quantize) });
    try {
      const baseModel = adapterDir ? readAdapterKind(adapterDir).baseModel : null;
      const rm = await namingBase(baseModel, modelDir, () => RewardModel.fromPretrained(base, adapterDir));
      // Every text as tokenizeReward lays out a pair's side: BOS + prompt + text, then EOS.
      const seqs = rows.flatMap((r) => r.kind === "pair"
        ? (({ chosenIds, rejectedIds }) => [chosenIds, rejectedIds])(tokenizeReward(tok, { prompt: r.prompt, chosen: r.chosen, rejected: r.rejected }))
        : [tokenizeReward(tok, { prompt: r.prompt, chosen: r.completion, rejected: r.completion }).chosenIds]);
      const progress = cliProgress("score");
      const rewards: number[] = [];
      for (let i = 0; i < seqs.length; i += batchSize) {
        rewards.push(...(await rm.score(seqs.slice(i, i + batchSize), { batchSize })));
        progress(Math.min(i + batchSize, seqs.length), seqs.length, { unit: "items" });
      }
      let k = 0, pairs = 0, right = 0;
      for (const r of rows) {
        if (r.kind === "pair") {
          const chosen = rewards[k++]!, rejected = rewards[k++]!;
          pairs++;
          if (chosen > rejected) right++;
          process.stdout.write(f.json ? JSON.stringify({ chosen, rejected }) + "\n" : `${chosen} ${rejected}\n`);
        } else {
          const reward = rewards[k++]!;
          process.stdout.write(f.json ? JSON.stringify({ reward }) + "\n" : `${reward}\n`);
        }
      }
      if (pairs > 0) process.stderr.write(`score: chosen > rejected in ${right} of ${pairs} pairs (accuracy ${(right / pairs).toFixed(3)})\n`);
      return 0;
    } finally {
      base.backend.dispose();
    }
  },
});
