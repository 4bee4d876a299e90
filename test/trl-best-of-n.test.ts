// Best-of-n with a reward model: n sampled continuations, each scored as the reward trainer scores a
// pair (prompt + continuation up to its first EOS + EOS; with a tokenizer, the decoded text
// re-tokenized exactly as tokenizeReward does), the highest kept. Checked against scoring the same
// samples by hand, on the default model with a (seeded, untrained) reward head.
import { describe, it, expect, beforeAll } from "vitest";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { generate } from "../lib/generate/generate.js";
import { RewardModel, loadRewardBase } from "../lib/peft/reward.js";
import { tokenizeReward } from "../lib/peft/preference-data.js";
import { bestOfN } from "../lib/peft/best-of-n.js";

const MODEL = "models/tiny-stories";

describe("bestOfN", () => {
  let policy: LlamaForCausalLM;
  let reward: RewardModel;
  const tok = AutoTokenizer.fromPretrained(MODEL);
  beforeAll(async () => {
    policy = await LlamaForCausalLM.fromPretrained(MODEL);
    reward = await RewardModel.fromPretrained(await loadRewardBase(MODEL, { seed: 11 }), undefined, { padTokenId: tok.padTokenId! });
  });

  it("keeps the sample the reward model scores highest (text re-tokenized as the reward trainer's pairs)", async () => {
    const prompt = "Once upon a time, there was a little dog named Max.";
    const promptIds = tok.encode(prompt);
    const gen = { maxNewTokens: 24, temperature: 1.0, topK: 0, topP: 1.0, seed: 7 };
    const r = await bestOfN(policy, reward, promptIds, { n: 6, ...gen, tokenizer: tok, promptText: prompt });
    expect(r.candidates.length).toBe(6);
    // The same samples, drawn directly, scored by hand.
    const seqs = await generate(policy, { doSample: true, ...gen, inputIds: [promptIds], numReturnSequences: 6 }) as number[][];
    const texts = seqs.map((s) => {
      const cont = s.slice(promptIds.length);
      const stop = cont.indexOf(tok.eosTokenId!);
      return tok.decode(stop < 0 ? cont : cont.slice(0, stop), { skipSpecialTokens: true });
    });
    expect(r.candidates.map((c) => c.text)).toEqual(texts);
    expect(new Set(texts).size).toBeGreaterThan(1);
    const byHand = await reward.score(texts.map((t) => tokenizeReward(tok, { prompt, chosen: t, rejected: t }).chosenIds));
    r.candidates.forEach((c, i) => expect(Math.abs(c.reward - byHand[i]!)).toBeLessThan(1e-5));
    expect(r.bestIndex).toBe(byHand.indexOf(Math.max(...byHand)));
    expect(r.best).toBe(r.candidates[r.bestIndex]);
    // Rewards differ between samples (the head reads each text's last token state).
    expect(Math.max(...byHand) - Math.min(...byHand)).toBeGreaterThan(1e-3);
  });

  it("without a tokenizer scores prompt + sampled ids + EOS; rejects n < 1", async () => {
    const promptIds = tok.encode("Lily had a red ball.");
    const r = await bestOfN(policy, reward, promptIds, { n: 3, maxNewTokens: 8, seed: 3 });
    const byHand = await reward.score(r.candidates.map((c) => [...promptIds, ...c.ids, tok.eosTokenId!]));
    r.candidates.forEach((c, i) => expect(Math.abs(c.reward - byHand[i]!)).toBeLessThan(1e-5));
    expect(r.candidates.every((c) => !c.ids.includes(tok.eosTokenId!))).toBe(true);
    await expect(bestOfN(policy, reward, promptIds, { n: 0 })).rejects.toThrow(/n = 0: expected a positive integer/);
  });
});
