// The preference task's measure (lib/peft/preference-eval.ts) against its Python twin
// (scripts/fixtures/preference_metrics.py → test/fixtures/preference/metrics.json, which
// bench/trl-dpo-baseline.py uses on TRL's samples), and its sampling protocol against the CLI's
// `generate --do-sample` with the same settings and seed.
import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import { mentionsFriend, preferenceMetrics, sampleContinuations, type PreferenceMetrics } from "../lib/peft/preference-eval.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { runCli } from "./cli-run.js";

const golden = JSON.parse(fs.readFileSync("test/fixtures/preference/metrics.json", "utf8")) as {
  chosen: PreferenceMetrics; rejected: PreferenceMetrics;
  edge_cases: { texts: string[]; each: PreferenceMetrics[]; all: PreferenceMetrics };
};
const rows = fs.readFileSync("datasets/preference/train.jsonl", "utf8").trim().split("\n").map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string });

function same(got: PreferenceMetrics, want: PreferenceMetrics): void {
  expect(got.samples).toBe(want.samples);
  expect(got.nonPrintable).toBe(want.nonPrintable);
  for (const k of ["share", "distinctBigrams", "meanWords"] as const) expect(got[k]).toBeCloseTo(want[k], 12);
}

describe("preference metrics", () => {
  it("the Python twin's numbers on the training pairs: every chosen mentions a friend, no rejected one does", () => {
    same(preferenceMetrics(rows.map((r) => r.chosen)), golden.chosen);
    same(preferenceMetrics(rows.map((r) => r.rejected)), golden.rejected);
    expect(golden.chosen.share).toBe(1);
    expect(golden.rejected.share).toBe(0);
  });

  it("edge cases as Python counts them: whole word only, any case; control characters and U+FFFD", () => {
    golden.edge_cases.texts.forEach((t, i) => same(preferenceMetrics([t]), golden.edge_cases.each[i]!));
    same(preferenceMetrics(golden.edge_cases.texts), golden.edge_cases.all);
    expect(mentionsFriend("a friendly dog")).toBe(false);
    expect(mentionsFriend("two friends")).toBe(false);
    expect(mentionsFriend("my FRIEND.")).toBe(true);
  });

  it("another task's preference: the share counts the pattern given (a g flag does not carry over between texts)", () => {
    const texts = ["He threw the ball.", "A Ball!", "balloons", "no toy here"];
    expect(preferenceMetrics(texts, /\bball\b/i).share).toBe(0.5);
    expect(preferenceMetrics(texts, /\bball\b/gi).share).toBe(0.5);
    expect(preferenceMetrics(texts).share).toBe(0);
  });

  it("sampling protocol = generate --do-sample --temperature 1 --top-k 0 --top-p 1 --max-new-tokens 48, seed per prompt", async () => {
    const prompts = fs.readFileSync("datasets/preference/test-prompts.jsonl", "utf8").trim().split("\n").slice(0, 2).map((l) => (JSON.parse(l) as { prompt: string }).prompt);
    const model = await LlamaForCausalLM.fromPretrained("models/tiny-stories");
    const tok = AutoTokenizer.fromPretrained("models/tiny-stories");
    const ours = await sampleContinuations(model, tok, prompts, { perPrompt: 4, seed: 7 });
    model.backend.dispose();
    expect(ours.map((x) => x.length)).toEqual([4, 4]);
    prompts.forEach((prompt, i) => {
      const r = runCli(["generate", "--model", "models/tiny-stories", "--prompt", prompt, "--do-sample", "--temperature", "1", "--top-k", "0",
        "--top-p", "1", "--max-new-tokens", "48", "--num-return-sequences", "4", "--seed", String(7 + i), "--json"]);
      expect(r.status, r.stderr).toBe(0);
      const texts = r.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { text: string }).text);
      // The CLI decodes prompt + continuation; the continuation is what the metric reads.
      texts.forEach((t, j) => {
        expect(ours[i]![j]!.length).toBeGreaterThan(40);
        expect(t.endsWith(ours[i]![j]!.trimStart())).toBe(true);
      });
    });
    expect(new Set(ours.flat()).size).toBe(8); // samples, not one greedy story
  });
});
