/**
 * Makes another preference task of the shared kind (datasets/preference/README.md), to check that
 * `llama-ts dpo`'s defaults are not fitted to the word "friend": the default model continues each of the
 * shared task's story openers 48 times (temperature 1.0, no top-k/top-p, 48 new tokens, seeded), and each
 * pair puts a continuation that mentions WORD (the whole word, any case) against one of the same opener
 * that does not, until 240 pairs. test-prompts.jsonl is the shared task's.
 *
 *   node --import tsx bench/make-preference-task.ts WORD OUT_DIR
 *   node --import tsx bench/dpo-bench.ts --task OUT_DIR --word WORD     # the defaults on it
 *
 * The pairs are the model's own samples, so, as in the shared task, a policy can only learn "bring WORD
 * into the story". OUT_DIR is written all at once at the end (train.jsonl, test-prompts.jsonl).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { sampleContinuations } from "../lib/peft/preference-eval.js";
import { cliProgress } from "../cli/progress.js";

const MODEL = "models/tiny-stories";
const SHARED = "datasets/preference";
const PAIRS = 240, PER_OPENER = 48, SEED = 5000;

async function main(): Promise<void> {
  const [word, out] = process.argv.slice(2);
  if (!word || !out || !/^\w+$/.test(word)) throw new Error("usage: make-preference-task.ts WORD OUT_DIR (WORD: one word)");
  if (fs.existsSync(out)) throw new Error(`${out}: already exists`);
  const wanted = new RegExp(`\\b${word}\\b`, "i");
  const openers = [...new Set(fs.readFileSync(path.join(SHARED, "train.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { prompt: string }).prompt))];
  const model = await LlamaForCausalLM.fromPretrained(MODEL);
  const tok = AutoTokenizer.fromPretrained(MODEL);
  const progress = cliProgress("sampling openers");
  const texts = await sampleContinuations(model, tok, openers, { perPrompt: PER_OPENER, maxNewTokens: 48, seed: SEED, onProgress: (done, total) => progress(done, total, { unit: "items" }) });
  model.backend.dispose();
  // Round r takes each opener's r-th continuation with WORD and r-th without, while both exist.
  const pairs: { prompt: string; chosen: string; rejected: string }[] = [];
  const yes = texts.map((ts) => ts.filter((t) => wanted.test(t))), no = texts.map((ts) => ts.filter((t) => !wanted.test(t)));
  for (let r = 0; r < PER_OPENER && pairs.length < PAIRS; r++) {
    openers.forEach((prompt, i) => {
      if (pairs.length < PAIRS && r < yes[i]!.length && r < no[i]!.length) pairs.push({ prompt, chosen: yes[i]![r]!, rejected: no[i]![r]! });
    });
  }
  const share = yes.flat().length / texts.flat().length;
  if (pairs.length < PAIRS) throw new Error(`"${word}" is in ${(share * 100).toFixed(1)}% of the continuations: only ${pairs.length} pairs (need ${PAIRS})`);
  const tmp = `${out}.tmp-${process.pid}`;
  fs.mkdirSync(tmp, { recursive: true });
  fs.writeFileSync(path.join(tmp, "train.jsonl"), pairs.map((p) => JSON.stringify(p)).join("\n") + "\n");
  fs.copyFileSync(path.join(SHARED, "test-prompts.jsonl"), path.join(tmp, "test-prompts.jsonl"));
  fs.renameSync(tmp, out);
  console.log(`${out}: ${pairs.length} pairs from ${openers.length} openers; "${word}" in ${(share * 100).toFixed(1)}% of ${texts.flat().length} continuations`);
}

await main();
