// TRL 1.13's tokenization of preference pairs (test/fixtures/trl/tokenize.json, made by
// scripts/fixtures/make_trl_tokenize.py with TRL's own _prepare_dataset on the default model's
// tokenizer): DPO's prompt/chosen/rejected ids (EOS appended, the plain slice after the prompt's
// tokens, the too-long-prompt filter) and the reward trainer's full sequences and length filter;
// TRL's collators; and the JSONL reader's one-line errors.
import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import {
  collateDpo, collateReward, identicalPairs, readPreferenceFile, tokenizeDpoRows, tokenizeRewardRows, type PreferenceRow,
} from "../lib/peft/preference-data.js";

const golden = JSON.parse(fs.readFileSync("test/fixtures/trl/tokenize.json", "utf8")) as {
  rows: PreferenceRow[]; small_max_length: number;
  dpo_default: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
  dpo_small_max_length: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
  reward_default: { chosen_ids: number[]; rejected_ids: number[] }[];
  reward_small_max_length: { chosen_ids: number[]; rejected_ids: number[] }[];
};
const tok = AutoTokenizer.fromPretrained("models/tiny-stories");
const dpoRows = (x: typeof golden.dpo_default) => x.map((r) => ({ promptIds: r.prompt_ids, chosenIds: r.chosen_ids, rejectedIds: r.rejected_ids }));
const rewardRows = (x: typeof golden.reward_default) => x.map((r) => ({ chosenIds: r.chosen_ids, rejectedIds: r.rejected_ids }));

describe("preference data as TRL tokenizes it", () => {
  it("DPO: prompt ids with BOS, completions with EOS, sliced after the prompt's tokens; TRL's max_length filter", () => {
    expect(golden.rows.length).toBe(16);
    const all = tokenizeDpoRows(tok, golden.rows);
    expect(all.dropped).toBe(0);
    expect(all.examples).toEqual(dpoRows(golden.dpo_default));
    const small = tokenizeDpoRows(tok, golden.rows, { maxLength: golden.small_max_length });
    expect(small.dropped).toBe(1);
    expect(small.examples).toEqual(dpoRows(golden.dpo_small_max_length));
  });

  it("reward: prompt + completion + EOS as one sequence each; pairs over max_length dropped", () => {
    expect(tokenizeRewardRows(tok, golden.rows).examples).toEqual(rewardRows(golden.reward_default));
    const small = tokenizeRewardRows(tok, golden.rows, { maxLength: golden.small_max_length });
    expect(small.examples).toEqual(rewardRows(golden.reward_small_max_length));
    expect(small.dropped).toBe(golden.rows.length - golden.reward_small_max_length.length);
  });

  it("collators: chosen rows first, keep_start truncation, right padding, completion mask (TRL's docstring example)", () => {
    const d = collateDpo([{ promptIds: [1, 2, 3], chosenIds: [4, 5], rejectedIds: [6] }, { promptIds: [7, 8], chosenIds: [9], rejectedIds: [10, 11] }], 0);
    expect(d.inputIds).toEqual([[1, 2, 3, 4, 5], [7, 8, 9, 0, 0], [1, 2, 3, 6, 0], [7, 8, 10, 11, 0]]);
    expect(d.attentionMask).toEqual([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]]);
    expect(d.completionMask).toEqual([[0, 0, 0, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 1, 0]]);
    const cut = collateDpo([{ promptIds: [1, 2, 3], chosenIds: [4, 5], rejectedIds: [6] }], 0, 4);
    expect(cut.inputIds).toEqual([[1, 2, 3, 4], [1, 2, 3, 6]]);
    expect(cut.completionMask).toEqual([[0, 0, 0, 1], [0, 0, 0, 1]]);
    const r = collateReward([{ chosenIds: [1, 2, 3], rejectedIds: [4, 5], margin: 0.5 }, { chosenIds: [6, 7], rejectedIds: [8], margin: 0 }], 0);
    expect(r.inputIds).toEqual([[1, 2, 3], [6, 7, 0], [4, 5, 0], [8, 0, 0]]);
    expect(r.attentionMask).toEqual([[1, 1, 1], [1, 1, 0], [1, 1, 0], [1, 0, 0]]);
    expect(r.margin).toEqual([0.5, 0]);
  });

  it("the JSONL reader names file, line and field; identical pairs are counted", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pref-"));
    try {
      const file = path.join(dir, "p.jsonl");
      const write = (lines: unknown[]) => fs.writeFileSync(file, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
      write([{ prompt: "a", chosen: " b", rejected: " c" }, { prompt: "a", chosen: " same", rejected: " same" }]);
      const rows = readPreferenceFile(file);
      expect(rows.map((r) => r.line)).toEqual([1, 2]);
      expect(identicalPairs(rows)).toBe(1);
      write([{ prompt: "a", chosen: " b", rejected: " c" }, { prompt: "a", chosen: "", rejected: " c" }]);
      expect(() => readPreferenceFile(file)).toThrow(/p\.jsonl.*line 2: field "chosen" is empty/);
      write([{ prompt: "a", chosen: " b" }]);
      expect(() => readPreferenceFile(file)).toThrow(/line 1: field "rejected" is missing/);
      write([{ prompt: 3, chosen: " b", rejected: " c" }]);
      expect(() => readPreferenceFile(file)).toThrow(/line 1: field "prompt" = 3: expected a string/);
      write([{ prompt: "a", chosen: " b", rejected: " c", margin: "x" }]);
      expect(() => readPreferenceFile(file)).toThrow(/line 1: field "margin"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
