/**
 * Best-of-n sampling with a reward model, the simplest use of a reward model
 * in StackLLaMA's pipeline: sample n continuations of a prompt, score each
 * completed text with the reward model, keep the highest.
 *
 * A candidate is scored as the reward trainer saw its training pairs: the
 * prompt's tokens (BOS first), the continuation up to its first EOS, then EOS
 * (tokenizeReward's layout). With a tokenizer, the continuation is decoded
 * and prompt + text re-tokenized (exactly tokenizeReward), so the reward sees
 * the same tokens a text pair would have; without one, the sampled ids are used as they are.
 */
import { InputError } from "../errors.js";
import { generate } from "../generate/generate.js";
import type { GenerateOptions, GenerationModel } from "../generate/types.js";
import type { RewardModel } from "./reward.js";
import { tokenizeReward, type PreferenceTokenizer } from "./preference-data.js";

export interface BestOfNOptions extends Omit<GenerateOptions, "inputIds" | "inputsEmbeds" | "numReturnSequences" | "returnDictInGenerate" | "streamer"> {
  /** How many continuations to sample (≥ 1). */
  n: number;
  /** Decodes continuations and re-tokenizes prompt + text for scoring (recommended; see the file comment). */
  tokenizer?: PreferenceTokenizer & { decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string };
  /** The prompt's text (needed with `tokenizer`). */
  promptText?: string;
}

export interface BestOfNCandidate {
  /** The continuation's ids (up to, not including, its first EOS). */
  ids: number[];
  /** Its text, when a tokenizer was given. */
  text?: string;
  reward: number;
}

export interface BestOfNResult {
  best: BestOfNCandidate;
  bestIndex: number;
  /** Every candidate in sampling order. */
  candidates: BestOfNCandidate[];
}

/** Samples `n` continuations of `promptIds` from `policy` and keeps the one `reward` scores highest. */
export async function bestOfN(policy: GenerationModel, reward: RewardModel, promptIds: readonly number[], o: BestOfNOptions): Promise<BestOfNResult> {
  if (!(Number.isInteger(o.n) && o.n >= 1)) throw new InputError(`best-of-n: n = ${o.n}: expected a positive integer`);
  if (o.tokenizer && o.promptText === undefined) throw new InputError("best-of-n: give promptText with tokenizer (the prompt is re-tokenized with the continuation's text)");
  const { n, tokenizer, promptText, ...gen } = o;
  const seqs = await generate(policy, { doSample: true, ...gen, inputIds: [promptIds.slice()], numReturnSequences: n, returnDictInGenerate: false }) as number[][];
  const eosCfg = o.eosTokenId ?? policy.config.eos_token_id ?? null;
  const eosIds = eosCfg === null ? [] : Array.isArray(eosCfg) ? eosCfg : [eosCfg];
  const eos = eosIds[0] ?? tokenizer?.eosTokenId ?? null;
  if (eos === null) throw new InputError("best-of-n: no EOS id (the reward model scores prompt + continuation + EOS)");
  const candidates: BestOfNCandidate[] = seqs.map((s) => {
    const cont = s.slice(promptIds.length);
    const stop = cont.findIndex((id) => eosIds.includes(id));
    return { ids: stop < 0 ? cont : cont.slice(0, stop), reward: NaN };
  });
  const sequences = candidates.map((c) => {
    if (!tokenizer) return [...promptIds, ...c.ids, eos];
    c.text = tokenizer.decode(c.ids, { skipSpecialTokens: true });
    return tokenizeReward(tokenizer, { prompt: promptText!, chosen: c.text, rejected: c.text }).chosenIds;
  });
  const rewards = await reward.score(sequences, { batchSize: n });
  rewards.forEach((r, i) => { candidates[i]!.reward = r; });
  let bestIndex = 0;
  rewards.forEach((r, i) => { if (r > rewards[bestIndex]!) bestIndex = i; });
  return { best: candidates[bestIndex]!, bestIndex, candidates };
}
